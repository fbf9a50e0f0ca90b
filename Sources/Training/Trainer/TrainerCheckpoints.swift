import Distributed
import Foundation
import NeuralNetwork
import Optimizers
import SafeTensors

/// Where training stands, saved as `state.json` in every checkpoint. Random streams are
/// counter-based (keyed by seed, epoch, sample id and layer), so the position is the whole state
/// besides the weights, the optimizer and the method's extra tensors.
struct TrainingState: Codable {
    /// The next step to run is `stepInEpoch` of `epoch` (both 0-based).
    var epoch: Int
    var stepInEpoch: Int
    var globalStep: Int
    /// Ranks that wrote it (resuming on another count re-shards the data).
    var worldSize: Int
    var seed: Int
    var momentumInitialized: Bool
    var rng = "counter-based Philox/SplitMix64 keyed by (seed, epoch, sample id, layer): no per-rank state to save"
    var configYAML: String
    /// `TrainingData.fingerprint()`; nil in checkpoints written before it existed.
    var dataFingerprint: String?
    var trainCount: Int?
    var validationCount: Int?

    enum CodingKeys: String, CodingKey {
        case epoch, seed, rng
        case stepInEpoch = "step_in_epoch", globalStep = "global_step", worldSize = "world_size",
             momentumInitialized = "momentum_initialized", configYAML = "config_yaml", dataFingerprint = "data_fingerprint",
             trainCount = "train_count", validationCount = "validation_count"
    }
}

extension TrainingState {
    /// Largest position accepted from a file: far beyond any run, and far enough below `Int.max`
    /// that the trainer's step arithmetic cannot overflow.
    static let maximumPosition = 1 << 48

    /// Decodes `state.json` and checks that it names a position the trainer can continue from
    /// (a negative step or epoch would index the epoch's batches out of range; a step near
    /// `Int.max` would overflow when counted on).
    /// - Throws: ``TrainingError/resume(_:)`` naming `source`, for unparsable JSON, missing keys
    ///   or a position out of range.
    static func decode(_ bytes: [UInt8], source: String) throws -> TrainingState {
        let state: TrainingState
        do {
            state = try JSONDecoder().decode(TrainingState.self, from: Data(bytes))
        } catch {
            throw TrainingError.resume("\(source) lacks epoch/step_in_epoch/global_step/world_size (\(error))")
        }
        let range = 0...maximumPosition
        guard range.contains(state.epoch), range.contains(state.stepInEpoch), range.contains(state.globalStep),
              (1...maximumPosition).contains(state.worldSize) else {
            throw TrainingError.resume("\(source): position out of range: epoch \(state.epoch), step_in_epoch \(state.stepInEpoch), "
                + "global_step \(state.globalStep), world_size \(state.worldSize); expected epoch, step_in_epoch and global_step in "
                + "0...\(maximumPosition) and world_size in 1...\(maximumPosition). Hint: the file was edited or damaged; "
                + "remove this checkpoint folder to resume from an earlier one, or start a new run.")
        }
        return state
    }
}

/// Checkpoints: writing one (collective; global rank 0 writes, see ``CheckpointStore``) and
/// resuming from the newest complete one.
extension Trainer {
    /// Writes a checkpoint of the model, the optimizer, the method's extra state and the
    /// training position. Collective: every rank calls it; replicas are verified identical
    /// first; rank 0 writes.
    /// - Throws: ``TrainingError/replicasDiverged(_:)``, ``CheckpointError`` when the write fails.
    public func checkpoint() throws {
        guard let folder else { return }
        try hooks?.prepareForEvaluation()
        try synchronizeBuffers()
        try checkConsistency(includeBuffers: true)
        try checkFinite(includeBuffers: true, when: "before the checkpoint of step \(globalStep)")
        var files: [String: [UInt8]] = [:]
        if comm.rank == 0 {
            files["model.safetensors"] = try SafeTensorsFile(records: StateDict.records(of: model),
                                                             metadata: ModelFactory.metadata(config.model)).encode()
            files["optimizer.safetensors"] = try optimizer.stateFile().encode()
            if let extra = hooks?.extraState(), !extra.isEmpty {
                files["method_state.safetensors"] = try SafeTensorsFile(
                    records: extra.map { SafeTensorsRecord(name: $0.name, shape: [$0.values.count], floats: $0.values) }).encode()
            }
            let state = TrainingState(epoch: epoch, stepInEpoch: stepInEpoch, globalStep: globalStep, worldSize: comm.worldSize,
                                      seed: config.seed, momentumInitialized: optimizer.momentumInitialized,
                                      configYAML: (try? config.yaml()) ?? "", dataFingerprint: dataFingerprint,
                                      trainCount: data.trainIds.count, validationCount: data.validationIds.count)
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            files["state.json"] = [UInt8](try enc.encode(state))
        }
        let store = CheckpointStore(directory: folder.checkpoints, keep: config.train.keepCheckpoints)
        let path = try store.write(step: globalStep, files: files, comm: comm)
        lastCheckpoint = path
        log("checkpoint: \(path)")
    }

    /// Resumes from the newest complete checkpoint of this stage, if any. Collective: rank 0
    /// chooses and reads it, every rank receives the bytes.
    ///
    /// - Parameter dropMomentum: negative control for tests: resume without the momentum
    ///   buffers (the result must then differ from an uninterrupted run).
    /// - Returns: the checkpoint used, or nil when there is none.
    /// - Throws: ``TrainingError/resume(_:)`` for a checkpoint of other training data or an
    ///   unreadable state; safetensors and optimizer errors naming the file.
    @discardableResult
    public func resumeIfPossible(dropMomentum: Bool = false) throws -> String? {
        guard let folder else { return nil }
        let store = CheckpointStore(directory: folder.checkpoints, keep: config.train.keepCheckpoints)
        // Rank 0 chooses; everyone reads the same folder (shared file system) or gets it broadcast.
        var chosen = ""
        if comm.rank == 0 {
            chosen = store.newestComplete { self.log("warning: \($0)") }?.path ?? ""
        }
        chosen = try comm.broadcast(string: chosen, root: 0)
        guard !chosen.isEmpty else { return nil }
        var modelBytes: [UInt8] = [], optBytes: [UInt8] = [], stateBytes: [UInt8] = [], extraBytes: [UInt8] = []
        if comm.rank == 0 {
            guard let c = store.listed().first(where: { $0.path == chosen }) else {
                throw TrainingError.resume("checkpoint \(chosen) vanished")
            }
            modelBytes = try c.read("model.safetensors")
            optBytes = try c.read("optimizer.safetensors")
            stateBytes = try c.read("state.json")
            if hooks != nil { extraBytes = try c.read("method_state.safetensors") }
        }
        try comm.broadcastResizing(&modelBytes, root: 0)
        try comm.broadcastResizing(&optBytes, root: 0)
        try comm.broadcastResizing(&stateBytes, root: 0)
        if let hooks {
            try comm.broadcastResizing(&extraBytes, root: 0)
            let f = try SafeTensorsFile.decode(extraBytes, source: chosen + "/method_state.safetensors")
            var state: [String: [Float]] = [:]
            for r in f.records { state[r.name] = try r.floats() }
            try hooks.restoreExtraState(state)
        }
        let modelFile = try SafeTensorsFile.decode(modelBytes, source: chosen + "/model.safetensors")
        try StateDict.load(modelFile, into: model, strict: true, source: chosen + "/model.safetensors")
        let optFile = try SafeTensorsFile.decode(optBytes, source: chosen + "/optimizer.safetensors")
        let state = try TrainingState.decode(stateBytes, source: chosen + "/state.json")
        if let saved = state.dataFingerprint, saved != dataFingerprint {
            let then = "\(state.trainCount ?? -1) training / \(state.validationCount ?? -1) held-out ids"
            throw TrainingError.resume("\(chosen) was written for other training data (fingerprint \(saved), \(then); now \(dataFingerprint), "
                + "\(data.trainIds.count) / \(data.validationIds.count)): files were added, removed or renamed, or data.* settings changed, "
                + "which reshuffles the validation split. Hint: restore the data as it was, or start a new run (another --name).")
        }
        if dropMomentum {
            optimizer.resetState()
        } else {
            try optimizer.restore(from: optFile, source: chosen + "/optimizer.safetensors")
        }
        epoch = state.epoch
        stepInEpoch = state.stepInEpoch
        globalStep = state.globalStep
        lastCheckpoint = chosen
        if comm.rank == 0, let removed = try? folder.truncateMetrics(afterStep: state.globalStep), removed > 0 {
            log("metrics.jsonl: removed \(removed) record(s) written after step \(state.globalStep) by the interrupted run")
        }
        if state.worldSize != comm.worldSize {
            log("warning: resuming a world-size-\(state.worldSize) checkpoint on \(comm.worldSize) ranks: the data is re-sharded; "
                + "results will differ from an uninterrupted \(state.worldSize)-rank run in the last bits")
        }
        log("resumed from \(chosen) (epoch \(state.epoch + 1), step \(state.stepInEpoch) of the epoch, \(state.globalStep) steps done)")
        try checkConsistency(includeBuffers: true)
        return chosen
    }
}
