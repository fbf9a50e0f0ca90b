import CZlib
import Datasets
import FuzzSupport

/// IDX files through the gzip path of `FileBytes.load`: the input is the compressed file (the
/// gzip magic is prepended when missing so every input takes that path). Whatever
/// `FileBytes.load` returns must equal what zlib's own gzip reader (gzread) returns for the file.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzIDXGzip(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var bytes = FuzzInput.bytes(data, size)
    if !(bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) { bytes = [0x1f, 0x8b] + bytes }
    let path = FuzzInput.write(bytes, name: "input-idx.gz")
    do {
        let ours = try FileBytes.load(path)
        let reference = gzipReference(path)
        precondition(reference.error == nil, "FileBytes.load accepted a file zlib's gzread rejects: \(reference.error!)")
        precondition(ours == reference.bytes,
                     "FileBytes.load returned \(ours.count) bytes, gzread \(reference.bytes.count) (contents differ)")
    } catch {
        // Rejected: fine unless zlib reads the whole file cleanly (gzread also skips trailing
        // garbage after a member, which FileBytes rejects on purpose, so only a truncation
        // verdict is compared).
        if case DatasetError.truncatedGzip = error {
            let reference = gzipReference(path)
            precondition(reference.error != nil, "FileBytes.load says truncated, gzread reads \(reference.bytes.count) bytes cleanly")
        }
    }
    _ = try? IDX.readImages(path: path)
    _ = try? IDX.readLabels(path: path, classCount: 10)
    return 0
}

/// The file as zlib's gzread decodes it, and zlib's error text if it reported one.
func gzipReference(_ path: String) -> (bytes: [UInt8], error: String?) {
    guard let file = gzopen(path, "rb") else { return ([], "gzopen failed") }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    var failure: String?
    while true {
        let n = chunk.withUnsafeMutableBytes { gzread(file, $0.baseAddress, UInt32($0.count)) }
        if n < 0 { failure = "gzread error"; break }
        if n == 0 { break }
        out.append(contentsOf: chunk[0..<Int(n)])
    }
    var code: Int32 = 0
    if let message = gzerror(file, &code), code != Z_OK, failure == nil {
        failure = "zlib \(code): \(String(cString: message))"
    }
    if gzclose_r(file) != Z_OK && failure == nil { failure = "gzclose: CRC or length mismatch" }
    return (out, failure)
}
