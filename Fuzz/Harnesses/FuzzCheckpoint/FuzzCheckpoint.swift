import Foundation
import FuzzSupport
@testable import Training

/// Checkpoint metadata: the input is a checkpoint's `COMPLETE` marker (listed, then verified
/// against the files beside it) and its `state.json` (`TrainingState`, as `resumeIfPossible`
/// decodes it, then what the trainer does with the position).
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
    if let state = try? TrainingState.decode(bytes, source: "state.json") {
        // What the trainer does with the position must not trap: index an epoch's batches from
        // step_in_epoch, count steps on from global_step.
        let batches = Array(0..<7)
        _ = batches[min(state.stepInEpoch, batches.count)...]
        _ = state.globalStep + 1
        _ = state.epoch + 1
        precondition(state.worldSize >= 1, "world_size \(state.worldSize) accepted")
    }
    return 0
}
