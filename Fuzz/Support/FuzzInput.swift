#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Hands a fuzz input to readers that take a path: the bytes are written to a file in a
/// per-process folder on tmpfs (`/dev/shm` when present, else `$TMPDIR` or `/tmp`).
public enum FuzzInput {
    /// The per-process scratch folder, created on first use.
    public static let folder: String = {
        var base = "/tmp"
        if let t = getenv("TMPDIR") { base = String(cString: t) }
        var st = stat()
        if stat("/dev/shm", &st) == 0 { base = "/dev/shm" }
        let dir = base + "/umfuzz-\(getpid())"
        mkdir(dir, 0o700)
        return dir
    }()

    /// The input as an array (an empty input may come with a null pointer).
    public static func bytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
        guard let data, size > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: size))
    }

    /// Writes `bytes` to `folder/name` (replacing it) and returns the path.
    @discardableResult
    public static func write(_ bytes: [UInt8], name: String) -> String {
        let path = folder + "/" + name
        write(bytes, path: path)
        return path
    }

    /// Writes `bytes` to `path` (replacing it); traps if the file system refuses, which is a
    /// problem of the harness's machine, not of the reader under test.
    public static func write(_ bytes: [UInt8], path: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        precondition(fd >= 0, "fuzz harness: cannot create \(path)")
        var offset = 0
        bytes.withUnsafeBytes { raw in
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                precondition(n > 0, "fuzz harness: cannot write \(path)")
                offset += n
            }
        }
        close(fd)
    }

    /// Creates `folder/name` as a directory (if missing) and returns its path.
    public static func directory(_ name: String) -> String {
        let path = folder + "/" + name
        mkdir(path, 0o700)
        return path
    }
}
