import Foundation

extension SafeTensorsFile {
    /// Largest header accepted, in bytes (the reference library's `MAX_HEADER_SIZE`).
    public static let maximumHeaderLength = 100_000_000

    /// Reads and fully validates the safetensors file at `path`.
    ///
    /// Validation follows huggingface/safetensors: 8-byte little-endian header length
    /// (at most ``maximumHeaderLength``), a UTF-8 JSON object header (trailing space padding
    /// allowed), every `data_offsets` in range with `end - begin == product(shape) * size(dtype)`,
    /// and the tensors tiling the data section with no gap, overlap or trailing byte. In
    /// addition, duplicate JSON keys are rejected (the reference silently keeps the last one).
    ///
    /// - Parameter allowingUnsupportedDTypes: when `false` (default), a tensor whose dtype is not
    ///   F32 or I64 is an error; when `true` such tensors are returned as raw bytes.
    /// - Returns: the records in data-section order, and the `__metadata__` strings.
    /// - Throws: ``SafeTensorsError`` (`unreadableFile`, `truncatedFile`, `headerTooLarge`,
    ///   `invalidJSON`, `headerNotObject`, `invalidTensorEntry`, `unknownDType`,
    ///   `unsupportedDType`, `offsetsOutOfRange`, `sizeMismatch`, `nonContiguousData`,
    ///   `incompleteData`, `invalidMetadata`), each naming `path`.
    public static func read(path: String, allowingUnsupportedDTypes: Bool = false) throws(SafeTensorsError) -> SafeTensorsFile {
        try decode(try readEntireFile(path: path), source: path, allowingUnsupportedDTypes: allowingUnsupportedDTypes)
    }

    /// Decodes an in-memory safetensors file; see ``read(path:allowingUnsupportedDTypes:)``.
    public static func decode(_ data: Data, source: String = "<memory>",
                              allowingUnsupportedDTypes: Bool = false) throws(SafeTensorsError) -> SafeTensorsFile {
        try decode([UInt8](data), source: source, allowingUnsupportedDTypes: allowingUnsupportedDTypes)
    }

    /// Decodes an in-memory safetensors file; `source` names it in error messages.
    /// See ``read(path:allowingUnsupportedDTypes:)`` for the rules and errors.
    public static func decode(_ bytes: [UInt8], source: String = "<memory>",
                              allowingUnsupportedDTypes: Bool = false) throws(SafeTensorsError) -> SafeTensorsFile {
        guard bytes.count >= 8 else {
            throw .truncatedFile(source: source, part: "8-byte header length prefix", expectedBytes: 8, actualBytes: bytes.count)
        }
        var rawLength: UInt64 = 0
        for index in 0..<8 { rawLength |= UInt64(bytes[index]) << (8 * UInt64(index)) }
        guard rawLength <= UInt64(maximumHeaderLength) else {
            throw .headerTooLarge(source: source, headerLength: rawLength, limit: maximumHeaderLength)
        }
        let headerLength = Int(rawLength)
        guard headerLength <= bytes.count - 8 else {
            throw .truncatedFile(source: source, part: "header (length from the prefix)",
                                 expectedBytes: headerLength, actualBytes: bytes.count - 8)
        }
        let dataStart = 8 + headerLength
        let dataLength = bytes.count - dataStart

        let header: JSONValue
        do {
            header = try JSONParser.parse(Array(bytes[8..<dataStart]))
        } catch {
            throw .invalidJSON(source: source, byteOffset: error.offset, reason: error.reason)
        }
        guard case let .object(members) = header else {
            throw .headerNotObject(source: source, actual: header.kindName)
        }

        struct Entry {
            var name: String
            var dtype: SafeTensorsDType
            var shape: [Int]
            var begin: Int
            var end: Int
        }
        var entries: [Entry] = []
        var metadata: [String: String] = [:]
        entries.reserveCapacity(members.count)

        for member in members {
            let (name, value) = (member.key, member.value)
            if name == "__metadata__" {
                metadata = try parseMetadata(value, source: source)
                continue
            }
            guard case let .object(fields) = value else {
                throw .invalidTensorEntry(source: source, tensor: name, field: "(entry)",
                                          expected: "an object with dtype, shape, data_offsets",
                                          actual: "a JSON \(value.kindName) \(value.brief())")
            }
            func field(_ key: String) throws(SafeTensorsError) -> JSONValue {
                guard let found = fields.first(where: { $0.key == key }) else {
                    throw .invalidTensorEntry(source: source, tensor: name, field: key,
                                              expected: "a value (the field is required)", actual: "nothing (field missing)")
                }
                return found.value
            }
            // dtype
            let dtypeValue = try field("dtype")
            guard case let .string(dtypeText) = dtypeValue else {
                throw .invalidTensorEntry(source: source, tensor: name, field: "dtype",
                                          expected: "a string such as \"F32\"", actual: dtypeValue.brief())
            }
            guard let dtype = SafeTensorsDType(rawValue: dtypeText) else {
                throw .unknownDType(source: source, tensor: name, dtype: dtypeText)
            }
            if !allowingUnsupportedDTypes && !dtype.isSupported {
                throw .unsupportedDType(source: source, tensor: name, dtype: dtype)
            }
            // shape
            let shape = try nonNegativeIntegers(try field("shape"), count: nil, source: source,
                                                tensor: name, field: "shape")
            // data_offsets
            let offsets = try nonNegativeIntegers(try field("data_offsets"), count: 2, source: source,
                                                  tensor: name, field: "data_offsets")
            let (begin, end) = (offsets[0], offsets[1])
            guard begin <= end, end <= dataLength else {
                throw .offsetsOutOfRange(source: source, tensor: name, begin: begin, end: end, dataLength: dataLength)
            }
            guard let count = safeTensorsElementCount(shape: shape) else {
                throw .invalidTensorEntry(source: source, tensor: name, field: "shape",
                                          expected: "dimensions whose product fits in a 64-bit Int",
                                          actual: "\(shape)")
            }
            guard let expectedBytes = dtype.byteCount(elementCount: count) else {
                throw .invalidTensorEntry(source: source, tensor: name, field: "shape",
                                          expected: "an element count filling whole bytes for \(dtype)",
                                          actual: "\(shape) (\(count) elements)")
            }
            guard expectedBytes == end - begin else {
                throw .sizeMismatch(source: source, tensor: name, dtype: dtype, shape: shape,
                                    expectedBytes: expectedBytes, actualBytes: end - begin)
            }
            entries.append(Entry(name: name, dtype: dtype, shape: shape, begin: begin, end: end))
        }

        // The tensors must tile [0, dataLength) exactly (reference: sort by offsets, check chain).
        entries.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        var covered = 0
        var previous: String? = nil
        for entry in entries {
            guard entry.begin == covered else {
                throw .nonContiguousData(source: source, tensor: entry.name, begin: entry.begin,
                                         previous: previous, expectedBegin: covered)
            }
            covered = entry.end
            previous = entry.name
        }
        guard covered == dataLength else {
            throw .incompleteData(source: source, coveredBytes: covered, dataLength: dataLength)
        }

        let records = entries.map { entry in
            SafeTensorsRecord(uncheckedName: entry.name, dtype: entry.dtype, shape: entry.shape,
                              bytes: Array(bytes[(dataStart + entry.begin)..<(dataStart + entry.end)]))
        }
        return SafeTensorsFile(records: records, metadata: metadata)
    }

    private static func parseMetadata(_ value: JSONValue, source: String) throws(SafeTensorsError) -> [String: String] {
        switch value {
        case .null:
            return [:]
        case let .object(members):
            var metadata: [String: String] = [:]
            for member in members {
                let (key, entry) = (member.key, member.value)
                guard case let .string(text) = entry else {
                    throw .invalidMetadata(source: source, key: key,
                                           reason: "expected a string value, got a JSON \(entry.kindName) \(entry.brief())")
                }
                metadata[key] = text
            }
            return metadata
        default:
            throw .invalidMetadata(source: source, key: nil,
                                   reason: "expected a JSON object, got a JSON \(value.kindName) \(value.brief())")
        }
    }

    private static func nonNegativeIntegers(_ value: JSONValue, count: Int?, source: String, tensor: String,
                                            field: String) throws(SafeTensorsError) -> [Int] {
        let expected = count.map { "an array of \($0) non-negative integers" } ?? "an array of non-negative integers"
        guard case let .array(elements) = value, count == nil || elements.count == count else {
            throw .invalidTensorEntry(source: source, tensor: tensor, field: field, expected: expected, actual: value.brief())
        }
        var result: [Int] = []
        result.reserveCapacity(elements.count)
        for element in elements {
            guard case let .integer(number) = element, number >= 0 else {
                throw .invalidTensorEntry(source: source, tensor: tensor, field: field, expected: expected,
                                          actual: value.brief())
            }
            result.append(number)
        }
        return result
    }
}

extension SafeTensorsError: LocalizedError {
    public var errorDescription: String? { description }
}
