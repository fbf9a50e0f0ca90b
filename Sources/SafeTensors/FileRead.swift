#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads the whole regular file at `path` into memory (one copy, no Foundation `Data`).
/// - Throws: ``SafeTensorsError/unreadableFile(path:reason:)`` with the system error text.
func readEntireFile(path: String) throws(SafeTensorsError) -> [UInt8] {
    func failure(_ what: String) -> SafeTensorsError {
        .unreadableFile(path: path, reason: "\(what): \(String(cString: strerror(errno)))")
    }
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { throw failure("open") }
    defer { close(descriptor) }
    var status = stat()
    guard fstat(descriptor, &status) == 0 else { throw failure("fstat") }
    guard (status.st_mode & S_IFMT) == S_IFREG else {
        throw .unreadableFile(path: path, reason: "not a regular file")
    }
    let size = Int(status.st_size)
    var readError: SafeTensorsError? = nil
    var total = 0
    let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
        while total < size, let base = buffer.baseAddress {
            let count = read(descriptor, base + total, size - total)
            if count < 0 {
                if errno == EINTR { continue }
                readError = failure("read")
                break
            }
            if count == 0 { break }  // the file shrank while being read
            total += count
        }
        initialized = total
    }
    if let readError { throw readError }
    return bytes
}
