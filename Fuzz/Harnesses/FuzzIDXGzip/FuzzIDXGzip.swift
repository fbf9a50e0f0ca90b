import CZlib
import Datasets
import FuzzSupport

/// IDX files through the gzip path of `FileBytes.load`: the input is the compressed file (the
/// gzip magic is prepended when missing so every input takes that path).
///
/// Differential checks: `FileBytes.load` (64 KiB input chunks, 256 KiB output chunks) must give
/// the same verdict as a one-shot reference over the whole input with another output chunk size
/// (same bytes, or both "truncated", or both "corrupt"), and whatever it accepts must equal what
/// zlib's own gzip reader (gzread) returns.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzIDXGzip(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var bytes = FuzzInput.bytes(data, size)
    if !(bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) { bytes = [0x1f, 0x8b] + bytes }
    let path = FuzzInput.write(bytes, name: "input-idx.gz")
    let ours: Verdict
    do {
        ours = .accepted(try FileBytes.load(path))
    } catch DatasetError.truncatedGzip {
        ours = .truncated
    } catch DatasetError.corruptGzip {
        ours = .corrupt
    } catch {
        preconditionFailure("FileBytes.load threw an unexpected error: \(error)")
    }
    let reference = oneShotReference(bytes)
    precondition(ours == reference, "FileBytes.load: \(ours), one-shot reference: \(reference)")
    if case let .accepted(output) = ours {
        let z = gzreadReference(path)
        precondition(z.error == nil, "FileBytes.load accepted a file zlib's gzread rejects: \(z.error!)")
        precondition(output == z.bytes, "FileBytes.load returned \(output.count) bytes, gzread \(z.bytes.count) (contents differ)")
    }
    _ = try? IDX.readImages(path: path)
    _ = try? IDX.readLabels(path: path, classCount: 10)
    return 0
}

enum Verdict: Equatable, CustomStringConvertible {
    case accepted([UInt8])
    case truncated
    case corrupt

    var description: String {
        switch self {
        case let .accepted(b): return "accepted \(b.count) bytes"
        case .truncated: return "truncated"
        case .corrupt: return "corrupt"
        }
    }
}

/// Gzip members one after the other, all input given to zlib at once, output in 7,777-byte
/// pieces: accepted only if the input is a sequence of complete members.
func oneShotReference(_ input: [UInt8]) -> Verdict {
    var stream = z_stream()
    guard inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else { return .corrupt }
    defer { inflateEnd(&stream) }
    var output: [UInt8] = []
    var piece = [UInt8](repeating: 0, count: 7777)
    var source = input
    return source.withUnsafeMutableBufferPointer { inBuf -> Verdict in
        stream.next_in = inBuf.baseAddress
        stream.avail_in = UInt32(inBuf.count)
        var ended = false
        while true {
            if ended {
                if stream.avail_in == 0 { return .accepted(output) }
                inflateReset(&stream)
                ended = false
            }
            let code = piece.withUnsafeMutableBufferPointer { out -> Int32 in
                stream.next_out = out.baseAddress
                stream.avail_out = UInt32(out.count)
                let code = inflate(&stream, Z_NO_FLUSH)
                output.append(contentsOf: out[0 ..< (out.count - Int(stream.avail_out))])
                return code
            }
            switch code {
            case Z_STREAM_END: ended = true
            case Z_OK: continue
            case Z_BUF_ERROR: return stream.avail_in == 0 ? .truncated : .corrupt
            default: return .corrupt
            }
        }
    }
}

/// The file as zlib's gzread decodes it, and zlib's error text if it reported one.
func gzreadReference(_ path: String) -> (bytes: [UInt8], error: String?) {
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
