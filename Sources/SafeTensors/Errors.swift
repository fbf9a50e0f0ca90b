/// Every error this module throws. Each message names the file (or in-memory source), the tensor
/// or field concerned, the expected and the actual value, and ends with a hint.
///
/// `source` is the file path for files, or the label passed to
/// ``SafeTensorsFile/decode(_:source:allowingUnsupportedDTypes:)`` for in-memory bytes.
public enum SafeTensorsError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file could not be opened or read (`reason` is the system error text).
    case unreadableFile(path: String, reason: String)
    /// The file ends before the part it announces (`part` is "header length prefix", "header"...).
    case truncatedFile(source: String, part: String, expectedBytes: Int, actualBytes: Int)
    /// The 8-byte header length exceeds the reference library's limit (100,000,000 bytes).
    case headerTooLarge(source: String, headerLength: UInt64, limit: Int)
    /// The header is not valid UTF-8 / JSON; `byteOffset` is relative to the start of the header.
    case invalidJSON(source: String, byteOffset: Int, reason: String)
    /// The header JSON is valid but is not an object (`actual` is "array", "string", ...).
    case headerNotObject(source: String, actual: String)
    /// A tensor entry has a missing or ill-typed field (`dtype`, `shape`, `data_offsets`).
    case invalidTensorEntry(source: String, tensor: String, field: String, expected: String, actual: String)
    /// The dtype string is not one the safetensors format defines.
    case unknownDType(source: String, tensor: String, dtype: String)
    /// The dtype is valid safetensors but this module cannot convert it (only F32 and I64).
    case unsupportedDType(source: String, tensor: String, dtype: SafeTensorsDType)
    /// `data_offsets` point outside the data section (or `begin > end`).
    case offsetsOutOfRange(source: String, tensor: String, begin: Int, end: Int, dataLength: Int)
    /// Tensors, sorted by offset, do not tile the data section: `tensor` starts at `begin` but the
    /// previous tensor (`previous`, nil for the first) ends at `expectedBegin` (overlap or gap).
    case nonContiguousData(source: String, tensor: String, begin: Int, previous: String?, expectedBegin: Int)
    /// `end - begin` differs from `product(shape) * dtype size`.
    case sizeMismatch(source: String, tensor: String, dtype: SafeTensorsDType, shape: [Int], expectedBytes: Int, actualBytes: Int)
    /// The tensors cover only `coveredBytes` of a `dataLength`-byte data section (trailing bytes).
    case incompleteData(source: String, coveredBytes: Int, dataLength: Int)
    /// `__metadata__` is not an object of string -> string.
    case invalidMetadata(source: String, key: String?, reason: String)
    /// A typed accessor asked for `requested` but the tensor holds `actual`.
    case dtypeMismatch(tensor: String, requested: SafeTensorsDType, actual: SafeTensorsDType)
    /// A record is malformed (data size vs shape, reserved or duplicate name) when built or written.
    case invalidRecord(tensor: String, reason: String)
    /// Writing failed at `operation` ("open", "write", "fsync", "rename", ...).
    case writeFailed(path: String, operation: String, reason: String)
    /// A strict state-dict load found missing, unexpected or mismatched keys (all listed).
    case stateDictMismatch(source: String, report: StateDictReport)

    public var description: String {
        switch self {
        case let .unreadableFile(path, reason):
            return "\(path): cannot read safetensors file: \(reason). "
                + "Hint: check that the path exists and is readable."
        case let .truncatedFile(source, part, expectedBytes, actualBytes):
            return "\(source): truncated safetensors file: the \(part) needs \(expectedBytes) bytes "
                + "but only \(actualBytes) are present. "
                + "Hint: the file was probably cut short by an interrupted write or copy; "
                + "use the previous complete checkpoint."
        case let .headerTooLarge(source, headerLength, limit):
            return "\(source): safetensors header length is \(headerLength) bytes, expected at most \(limit). "
                + "Hint: the first 8 bytes are not a little-endian header length; "
                + "the file is corrupt or not a safetensors file."
        case let .invalidJSON(source, byteOffset, reason):
            return "\(source): safetensors header is not valid JSON at header byte \(byteOffset): \(reason). "
                + "Hint: the header is corrupt or the file is not a safetensors file."
        case let .headerNotObject(source, actual):
            return "\(source): safetensors header must be a JSON object, got a JSON \(actual). "
                + "Hint: the file is corrupt or not a safetensors file."
        case let .invalidTensorEntry(source, tensor, field, expected, actual):
            return "\(source): tensor '\(tensor)': field '\(field)' expected \(expected), got \(actual). "
                + "Hint: the header is corrupt or was written by a non-conforming tool."
        case let .unknownDType(source, tensor, dtype):
            return "\(source): tensor '\(tensor)': unknown dtype '\(dtype)', expected one of "
                + SafeTensorsDType.allCases.map(\.rawValue).joined(separator: ", ") + ". "
                + "Hint: the header is corrupt or uses a newer safetensors dtype."
        case let .unsupportedDType(source, tensor, dtype):
            return "\(source): tensor '\(tensor)': dtype \(dtype) is not supported, expected F32 or I64. "
                + "Hint: convert the tensor before saving (numpy: .astype(np.float32) or .astype(np.int64))."
        case let .offsetsOutOfRange(source, tensor, begin, end, dataLength):
            return "\(source): tensor '\(tensor)': data_offsets [\(begin), \(end)] out of range, expected "
                + "0 <= begin <= end <= \(dataLength) (data section length). "
                + "Hint: the file is truncated or its header is corrupt."
        case let .nonContiguousData(source, tensor, begin, previous, expectedBegin):
            let after = previous.map { "tensor '\($0)' ends" } ?? "the data section starts"
            let kind = begin < expectedBegin ? "overlaps the previous tensor" : "leaves a gap"
            return "\(source): tensor '\(tensor)': data \(kind): begins at byte \(begin), expected \(expectedBegin) "
                + "(\(after) there). Hint: tensors must tile the data section exactly; the header is corrupt."
        case let .sizeMismatch(source, tensor, dtype, shape, expectedBytes, actualBytes):
            return "\(source): tensor '\(tensor)': \(dtype) shape \(shape) needs \(expectedBytes) bytes "
                + "but data_offsets span \(actualBytes). Hint: the header is corrupt or inconsistent."
        case let .incompleteData(source, coveredBytes, dataLength):
            return "\(source): tensors cover \(coveredBytes) bytes of the data section, expected all \(dataLength). "
                + "Hint: the file has trailing bytes (corrupt, or appended to after writing)."
        case let .invalidMetadata(source, key, reason):
            let what = key.map { "__metadata__ key '\($0)'" } ?? "__metadata__"
            return "\(source): \(what): \(reason). "
                + "Hint: metadata must be a JSON object mapping strings to strings."
        case let .dtypeMismatch(tensor, requested, actual):
            return "tensor '\(tensor)': requested \(requested) values but the tensor holds \(actual). "
                + "Hint: use the accessor matching the stored dtype."
        case let .invalidRecord(tensor, reason):
            return "tensor '\(tensor)': \(reason). Hint: fix the tensor record before saving."
        case let .writeFailed(path, operation, reason):
            return "\(path): writing safetensors file failed at \(operation): \(reason). "
                + "Hint: check free space and permissions of the directory; the previous file, if any, is unchanged."
        case let .stateDictMismatch(source, report):
            return "\(source): state dict does not match the model (strict load): \(report.summary). "
                + "Hint: check that the checkpoint was saved from the same architecture and arguments "
                + "(see its __metadata__), or load non-strictly to keep only the matching tensors."
        }
    }
}
