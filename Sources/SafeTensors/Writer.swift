#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension SafeTensorsFile {
    /// Serialises the file to safetensors bytes, deterministically and in the same layout as the
    /// reference library (huggingface/safetensors `serialize`, checked byte-for-byte in tests).
    ///
    /// Layout: 8-byte little-endian header length; compact JSON header with `__metadata__` first
    /// (omitted when empty; keys sorted), then one entry per tensor; the header is padded with
    /// spaces to a multiple of 8 bytes. Tensors are ordered by dtype, widest first (the reference
    /// `Dtype` order: U64, I64, F64, C64, F32, ...), then by name; header entries and data follow
    /// that order, so every tensor starts at a multiple of its element size in the file.
    /// The same records and metadata always give the same bytes, whatever the record order.
    ///
    /// - Throws: ``SafeTensorsError/invalidRecord(tensor:reason:)`` for a duplicate name, the
    ///   reserved name `__metadata__`, or a byte count that does not match shape and dtype.
    public func encode() throws(SafeTensorsError) -> [UInt8] {
        var seen = Set<String>()
        for record in records {
            guard record.name != "__metadata__" else {
                throw .invalidRecord(tensor: record.name, reason: "the name __metadata__ is reserved by the format")
            }
            guard seen.insert(record.name).inserted else {
                throw .invalidRecord(tensor: record.name, reason: "duplicate tensor name, expected each name once")
            }
            // Re-validate: the fields are mutable.
            _ = try SafeTensorsRecord(name: record.name, dtype: record.dtype, shape: record.shape, bytes: record.bytes)
        }
        let dataOrder = records.sorted {
            ($0.dtype.referenceRank, $1.name) > ($1.dtype.referenceRank, $0.name)
        }
        var offsets: [String: (Int, Int)] = [:]
        var position = 0
        for record in dataOrder {
            offsets[record.name] = (position, position + record.bytes.count)
            position += record.bytes.count
        }

        var members: [JSONMember] = []
        if !metadata.isEmpty {
            members.append(JSONMember("__metadata__", .object(metadata.keys.sorted().map { JSONMember($0, .string(metadata[$0] ?? "")) })))
        }
        for record in dataOrder {
            let (begin, end) = offsets[record.name] ?? (0, 0)
            members.append(JSONMember(record.name, .object([
                JSONMember("dtype", .string(record.dtype.rawValue)),
                JSONMember("shape", .array(record.shape.map { .integer($0) })),
                JSONMember("data_offsets", .array([.integer(begin), .integer(end)])),
            ])))
        }
        var header = Array(JSONWriter.render(.object(members)).utf8)
        let padding = (8 - header.count % 8) % 8
        header.append(contentsOf: repeatElement(UInt8(ascii: " "), count: padding))

        var output: [UInt8] = []
        output.reserveCapacity(8 + header.count + position)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { output.append(contentsOf: $0) }
        output.append(contentsOf: header)
        for record in dataOrder { output.append(contentsOf: record.bytes) }
        return output
    }

    /// Writes the file to `path` atomically: the bytes go to a temporary file in the same
    /// directory, which is fsynced and then renamed over `path`, and the directory is fsynced.
    /// If the process dies at any point, `path` holds either the previous file or the new one,
    /// never a partial file (a stray `.<name>.tmp.*` file may remain).
    ///
    /// - Throws: ``SafeTensorsError/invalidRecord(tensor:reason:)`` (see ``encode()``; nothing
    ///   is written), or ``SafeTensorsError/writeFailed(path:operation:reason:)``.
    public func write(to path: String) throws(SafeTensorsError) {
        try SafeTensorsFile.writeAtomically(try encode(), to: path)
    }

    /// Atomic write of `bytes` to `path`. `crashAfterBytes` is a test hook: it stops after writing
    /// that many bytes to the temporary file and returns without renaming or cleaning up,
    /// as if the process had been killed.
    static func writeAtomically(_ bytes: [UInt8], to path: String, crashAfterBytes: Int? = nil) throws(SafeTensorsError) {
        func systemError() -> String { String(cString: strerror(errno)) }
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let baseName = slash.map { String(path[path.index(after: $0)...]) } ?? path
        guard !baseName.isEmpty else {
            throw .writeFailed(path: path, operation: "path check", reason: "expected a file name, got a directory path")
        }
        let temporary = (directory == "/" ? "" : directory) + "/.\(baseName).tmp.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"

        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw .writeFailed(path: path, operation: "create temporary file \(temporary)", reason: systemError())
        }
        var closed = false
        func abandon(_ operation: String) -> SafeTensorsError {
            let error = SafeTensorsError.writeFailed(path: path, operation: operation, reason: systemError())
            if !closed { close(descriptor) }
            unlink(temporary)
            return error
        }

        let limit = min(bytes.count, crashAfterBytes ?? bytes.count)
        var written = 0
        let writeError: Bool = bytes.withUnsafeBytes { buffer -> Bool in
            while written < limit {
                guard let base = buffer.baseAddress else { return false }
                let result = Glibc_write(descriptor, base + written, limit - written)
                if result < 0 {
                    if errno == EINTR { continue }
                    return true
                }
                written += result
            }
            return false
        }
        if writeError { throw abandon("write") }
        if crashAfterBytes != nil {
            close(descriptor)
            return
        }
        guard fsync(descriptor) == 0 else { throw abandon("fsync") }
        closed = true
        guard close(descriptor) == 0 else { throw abandon("close") }
        guard rename(temporary, path) == 0 else { throw abandon("rename to \(path)") }

        let directoryDescriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryDescriptor >= 0 {
            let status = fsync(directoryDescriptor)
            let fsyncErrno = errno
            close(directoryDescriptor)
            // Some file systems do not support fsync on directories (EINVAL); the rename stands.
            guard status == 0 || fsyncErrno == EINVAL || fsyncErrno == ENOTSUP else {
                throw .writeFailed(path: path, operation: "fsync directory \(directory)",
                                   reason: String(cString: strerror(fsyncErrno)))
            }
        }
    }
}

/// `write(2)`, named apart from the `write(to:)` method.
@inline(__always)
private func Glibc_write(_ descriptor: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(descriptor, buffer, count)
    #else
    return Darwin.write(descriptor, buffer, count)
    #endif
}
