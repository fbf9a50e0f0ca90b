import Foundation
import FuzzSupport
@testable import Training

/// Checkpoint metadata: the input is a checkpoint's `COMPLETE` marker (listed, then verified
/// against the files beside it) and its `state.json` (`TrainingState`, as `resumeIfPossible`
/// decodes it).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCheckpoint(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = FuzzInput.bytes(data, size)
    let root = FuzzInput.directory("checkpoints")
    let folder = FuzzInput.directory("checkpoints/step-00000001")
    FuzzInput.write(bytes, path: folder + "/COMPLETE")
    FuzzInput.write(Array("{}".utf8), path: folder + "/state.json")
    let store = CheckpointStore(directory: root, keep: 1)
    for checkpoint in store.listed() { _ = try? checkpoint.verify() }
    _ = store.newestComplete()
    _ = try? JSONDecoder().decode(TrainingState.self, from: Data(bytes))
    return 0
}
