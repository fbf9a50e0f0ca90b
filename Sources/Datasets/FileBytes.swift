#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CZlib

/// Reads files for the dataset readers, inflating gzip transparently.
///
/// A file whose first two bytes are the gzip magic `0x1f 0x8b` (RFC 1952) is inflated with zlib
/// in streaming fashion: the compressed input is read in 64 KiB chunks and the output grows in
/// 256 KiB chunks, so the decompressed size need not be known in advance. Concatenated gzip members
/// are decoded one after the other (as `gzip -d` does). Any other file is returned as is.
public enum FileBytes {
    /// Size of the compressed-input read buffer, in bytes.
    static let inputChunkBytes = 1 << 16
    /// Size of the inflate output buffer, in bytes.
    static let outputChunkBytes = 1 << 18

    /// Returns the file's contents, inflated if the file is gzip.
    /// - Throws: `DatasetError.cannotRead` (open/read failures), `.truncatedGzip` (the stream ends
    ///   before its end marker), `.corruptGzip` (zlib rejects the data or the CRC/length trailer).
    public static func load(_ path: String) throws -> [UInt8] {
        let file = try InputFile(path: path)
        defer { file.close() }
        var head = [UInt8](repeating: 0, count: 2)
        let got = try head.withUnsafeMutableBytes { try file.read(into: $0) }
        if got == 2 && head[0] == 0x1f && head[1] == 0x8b {
            return try inflateGzip(file: file, prefix: head)
        }
        var bytes = Array(head[0..<got])
        bytes.reserveCapacity(max(file.size, got))
        var chunk = [UInt8](repeating: 0, count: inputChunkBytes)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try file.read(into: $0) }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return bytes
    }

    /// Whether `path` starts with the gzip magic bytes `0x1f 0x8b`.
    public static func isGzip(_ path: String) throws -> Bool {
        let file = try InputFile(path: path)
        defer { file.close() }
        var head = [UInt8](repeating: 0, count: 2)
        let got = try head.withUnsafeMutableBytes { try file.read(into: $0) }
        return got == 2 && head[0] == 0x1f && head[1] == 0x8b
    }

    /// Whether a regular file or directory exists at `path`.
    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    private static func inflateGzip(file: InputFile, prefix: [UInt8]) throws -> [UInt8] {
        let path = file.path
        var stream = z_stream()
        // windowBits 15 + 16: 32 KiB window, gzip wrapper only (RFC 1952), CRC-32 and ISIZE checked.
        let initCode = inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard initCode == Z_OK else {
            throw DatasetError.corruptGzip(path: path, zlibCode: initCode, message: "inflateInit2 failed")
        }
        defer { inflateEnd(&stream) }

        var output = [UInt8]()
        // The gzip trailer's ISIZE (decompressed size mod 2^32) sizes the output once; it is only
        // a hint (a damaged or multi-member file may state anything), capped at 1032x the input
        // (deflate's maximum compression ratio).
        let hint = file.size >= 18 ? Int(try file.trailerLittleEndian32()) : 0
        output.reserveCapacity(max(min(hint, 1032 * file.size), outputChunkBytes))
        var input = [UInt8](repeating: 0, count: inputChunkBytes)
        var outChunk = [UInt8](repeating: 0, count: outputChunkBytes)
        var compressedBytes = 0
        var streamEnded = false
        var pending = prefix          // bytes already read (the magic) that inflate has not seen

        while true {
            var n = 0
            if !pending.isEmpty {
                input.replaceSubrange(0..<pending.count, with: pending)
                n = pending.count
                pending = []
            } else {
                n = try input.withUnsafeMutableBytes { try file.read(into: $0) }
            }
            if n == 0 { break }
            compressedBytes += n
            try input.withUnsafeMutableBufferPointer { inBuf in
                stream.next_in = inBuf.baseAddress
                stream.avail_in = UInt32(n)
                try outChunk.withUnsafeMutableBufferPointer { outBuf in
                    repeat {
                        if streamEnded {
                            // Another gzip member follows the one that just ended.
                            inflateReset(&stream)
                            streamEnded = false
                        }
                        stream.next_out = outBuf.baseAddress
                        stream.avail_out = UInt32(outBuf.count)
                        let code = inflate(&stream, Z_NO_FLUSH)
                        let produced = outBuf.count - Int(stream.avail_out)
                        if produced > 0 {
                            output.append(contentsOf: UnsafeBufferPointer(start: outBuf.baseAddress, count: produced))
                        }
                        switch code {
                        case Z_STREAM_END:
                            streamEnded = true
                        case Z_OK:
                            break
                        case Z_BUF_ERROR:
                            // No progress possible: needs more input (checked after the loop).
                            if stream.avail_in == 0 { return }
                            throw DatasetError.corruptGzip(path: path, zlibCode: code, message: "no progress")
                        default:
                            let message = stream.msg.map { String(cString: $0) } ?? "unknown zlib error"
                            throw DatasetError.corruptGzip(path: path, zlibCode: code, message: message)
                        }
                        // A full output buffer means more output may be pending, unless the member
                        // just ended: then only remaining input (a next member) continues. (A reset
                        // at the end of the input would forget the end and report a truncation.)
                    } while stream.avail_in > 0 || (stream.avail_out == 0 && !streamEnded)
                }
            }
        }
        guard streamEnded else {
            throw DatasetError.truncatedGzip(path: path, compressedBytes: compressedBytes,
                                             decompressedBytes: output.count)
        }
        return output
    }
}

/// A read-only file descriptor with its size, for chunked reads.
final class InputFile {
    let path: String
    let size: Int
    private var fd: Int32

    init(path: String) throws {
        self.path = path
        fd = open(path, O_RDONLY)
        if fd < 0 { throw DatasetError.cannotRead(path: path, reason: InputFile.lastError()) }
        var st = stat()
        if fstat(fd, &st) != 0 {
            let reason = InputFile.lastError()
            _ = systemClose(fd)
            throw DatasetError.cannotRead(path: path, reason: reason)
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            _ = systemClose(fd)
            throw DatasetError.cannotRead(path: path, reason: "is a directory")
        }
        size = Int(st.st_size)
    }

    /// Reads up to `buffer.count` bytes; returns 0 only at end of file. Retries on EINTR.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var total = 0
        while total < buffer.count {
            let n = systemRead(fd, buffer.baseAddress! + total, buffer.count - total)
            if n < 0 {
                if errno == EINTR { continue }
                throw DatasetError.cannotRead(path: path, reason: InputFile.lastError())
            }
            if n == 0 { break }
            total += n
        }
        return total
    }

    /// The last 4 bytes of the file as a little-endian UInt32 (positional read; the read offset
    /// is unchanged).
    func trailerLittleEndian32() throws -> UInt32 {
        var b = [UInt8](repeating: 0, count: 4)
        let n = b.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 4, off_t(size - 4)) }
        if n != 4 { throw DatasetError.cannotRead(path: path, reason: InputFile.lastError()) }
        return UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24
    }

    func close() {
        if fd >= 0 { _ = systemClose(fd); fd = -1 }
    }

    deinit { close() }

    static func lastError() -> String {
        String(cString: strerror(errno))
    }
}

#if canImport(Glibc)
private func systemClose(_ fd: Int32) -> Int32 { Glibc.close(fd) }
private func systemRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int { Glibc.read(fd, buffer, count) }
#elseif canImport(Darwin)
private func systemClose(_ fd: Int32) -> Int32 { Darwin.close(fd) }
private func systemRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int { Darwin.read(fd, buffer, count) }
#endif
