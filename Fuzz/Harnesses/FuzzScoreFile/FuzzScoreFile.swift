import FuzzSupport
import OODDetection

/// Score files (`umtrain metrics --id/--ood`): read from a file and parsed from text.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzScoreFile(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = FuzzInput.bytes(data, size)
    let path = FuzzInput.write(bytes, name: "input-scores.txt")
    let fromFile = try? ScoreFile.read(path: path)
    let fromText = try? ScoreFile.parse(String(decoding: bytes, as: UTF8.self), fileName: "input")
    if let fromFile {
        precondition(!fromFile.isEmpty, "an accepted score file has no scores")
        // Valid UTF-8 (read accepted it): both ways must agree, NaN included.
        precondition(fromText.map { $0.count == fromFile.count && zip($0, fromFile).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) } } == true,
                     "ScoreFile.read and ScoreFile.parse disagree")
    }
    return 0
}
