import Datasets
import Distributed
import Foundation
import NeuralNetwork
import Optimizers
import SafeTensors
import TensorCore

/// Errors that stop training.
public enum TrainingError: Error, CustomStringConvertible {
    case nonFiniteLoss(step: Int, epoch: Int, rank: Int, lastCheckpoint: String?)
    case modelMismatch(String)
    case replicasDiverged(String)
    case resume(String)

    public var description: String {
        switch self {
        case let .nonFiniteLoss(step, epoch, rank, last):
            return "non-finite training loss at step \(step) (epoch \(epoch + 1)), first seen on rank \(rank). "
                + "Last good checkpoint: \(last ?? "none"). Hint: lower the learning rate or check the data normalisation."
        case let .modelMismatch(m):
            return "ranks built different models: \(m). Hint: every rank must run the same binary with the same config."
        case let .replicasDiverged(m):
            return "model replicas differ between ranks: \(m). Hint: this is a bug; please report it with the run folder."
        case let .resume(m):
            return "cannot resume: \(m)"
        }
    }
}

/// Synchronised BatchNorm over a communicator: sums the per-channel statistics across ranks.
/// A collective failure here ends the job (every rank reports and aborts), because the
/// layer API cannot propagate errors from inside a forward pass.
final class CommunicatorBatchNormReducer: BatchNormStatisticsReducer {
    let comm: Communicator
    init(comm: Communicator) { self.comm = comm }

    func sumAcrossReplicas(_ values: UnsafeMutableBufferPointer<Double>) {
        do {
            try comm.allreduce(values, op: .sum)
        } catch {
            comm.abort(code: 1, message: "[rank \(comm.rank)] error: synchronised BatchNorm: \(error)")
        }
    }
}

/// Per-epoch or per-evaluation results.
public struct EvaluationResult: Sendable, Equatable {
    /// Mean cross-entropy in nats, summed in Double in sample-id order.
    public var loss: Double
    /// Fraction correct.
    public var accuracy: Double
    public var count: Int
    /// Per-sample values in ascending id order (identical for any world size).
    public var ids: [Int64]
    public var losses: [Double]
    public var predictions: [Int64]
}

/// The data-parallel trainer (one instance per rank).
///
/// One step (rank r of W, global batch B): the sampler deals rank r its share of the step's B
/// entries; padded entries are dropped; forward in training mode (BatchNorm statistics summed
/// over ranks in `sync` mode); fused softmax cross-entropy whose gradient is scaled by
/// 1 / (real samples of the step over ALL ranks), so each rank backpropagates its local loss
/// SUM / global count; one small allreduce of (loss sum, correct, count, flags); the optional
/// loss transform rescales the logits gradient using the GLOBAL mean loss; backward
/// accumulates into the gradient arena; buckets are SUM-allreduced; SGD updates the arena.
public final class Trainer {
    public let config: RunConfig
    public let comm: Communicator
    public let model: Classifier
    public let data: TrainingData
    /// `data.fingerprint()`, computed once (saved with checkpoints, checked on resume).
    lazy var dataFingerprint: String = data.fingerprint()
    public let folder: RunFolder?
    public var lossTransform: LossTransform?
    /// Optional method hooks (UMAP).
    public let hooks: TrainingHooks?
    /// Printer for rank 0 (progress, notes). Other ranks never print.
    public var log: (String) -> Void

    let arena: ParameterArena
    var momentum: [Float]
    var momentumInitialized = false
    let reducer: GradientReducer
    let bnReducer: CommunicatorBatchNormReducer?
    let sampler: DistributedSampler
    let hp: SGDHyperparameters
    let schedule: LearningRateSchedule
    let stepsPerEpoch: Int
    let stopRequest = StopRequest()
    var lastReport = (time: Date(), wait: 0.0)
    /// Drill for the straggler report: this rank sleeps this many seconds in every step.
    public var debugStepDelay = 0.0

    /// Position: the next step to run is `stepInEpoch` of `epoch` (both 0-based).
    public private(set) var epoch = 0
    public private(set) var stepInEpoch = 0
    public private(set) var globalStep = 0
    public private(set) var lastCheckpoint: String?
    /// Set when training stopped early on SIGTERM/SIGUSR1 after writing a checkpoint.
    public private(set) var preempted = false

    public init(config: RunConfig, comm: Communicator, model: Classifier, data: TrainingData, folder: RunFolder?,
                log: @escaping (String) -> Void = { print($0) }, hooks: TrainingHooks? = nil) throws {
        self.hooks = hooks
        self.config = config
        self.comm = comm
        self.model = model
        self.data = data
        self.folder = folder
        self.log = log
        let trainable = hooks?.optimizedParameters() ?? model.parameters.filter { $0.role == .trainable }
        arena = ParameterArena(parameters: trainable)
        momentum = [Float](repeating: 0, count: config.train.momentum > 0 ? arena.count : 0)
        reducer = GradientReducer(buckets: planGradientBuckets(
            sizes: trainable.map(\.count),
            firstBucketBytes: Int(config.train.bucketFirstMiB * 1_048_576),
            bucketBytes: Int(config.train.bucketMiB * 1_048_576)))
        bnReducer = config.train.bnMode == "sync" && comm.worldSize > 1 ? CommunicatorBatchNormReducer(comm: comm) : nil
        sampler = DistributedSampler(ids: data.trainIds.map { $0 }, rank: comm.rank, worldSize: comm.worldSize,
                                     shuffle: true, seed: UInt64(config.seed), dropLast: config.train.dropLast)
        hp = SGDHyperparameters(learningRate: Float(config.effectiveLearningRate), momentum: Float(config.train.momentum),
                                dampening: Float(config.train.dampening), weightDecay: Float(config.train.weightDecay),
                                nesterov: config.train.nesterov)
        try hp.validate()
        let kind: LearningRateSchedule.Kind
        switch config.train.schedule {
        case "step": kind = .step(stepSize: config.train.stepSize, gamma: config.train.gamma)
        case "multistep": kind = .multiStep(milestones: config.train.milestones, gamma: config.train.gamma)
        case "cosine": kind = .cosine(totalEpochs: config.train.epochs)
        default: kind = .constant
        }
        schedule = LearningRateSchedule(base: config.effectiveLearningRate, kind: kind,
                                        warmupEpochs: config.train.warmupEpochs, perStep: config.train.perStepSchedule)
        stepsPerEpoch = sampler.stepsPerEpoch(globalBatchSize: config.train.batchSize)
        try verifyModelAcrossRanks()
        try broadcastState(root: 0)
    }

    // MARK: - Start-up

    /// Every rank must have built the same model: names, shapes and roles are compared.
    func verifyModelAcrossRanks() throws {
        let signature = model.stateEntries().map { name, entry -> String in
            switch entry {
            case .float(let p): return "\(name):\(p.shape):\(p.role)"
            case .int64: return "\(name):int64"
            }
        }
        let mine = Array(signature.joined(separator: "\n").utf8)
        let all = try comm.allgather(mine)
        let reference = String(decoding: all[0], as: UTF8.self).split(separator: "\n").map(String.init)
        for (r, bytes) in all.enumerated() where bytes != all[0] {
            let theirs = String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
            let onlyRef = reference.filter { !theirs.contains($0) }.prefix(5)
            let onlyTheirs = theirs.filter { !reference.contains($0) }.prefix(5)
            throw TrainingError.modelMismatch("rank \(r) differs from rank 0; rank 0 only: \(Array(onlyRef)); rank \(r) only: \(Array(onlyTheirs))")
        }
    }

    /// Broadcasts parameters (trainable, frozen), buffers and int64 buffers from `root`.
    public func broadcastState(root: Int) throws {
        guard comm.worldSize > 1 else { return }
        for p in model.parameters + model.buffers {
            var v = p.value
            try v.withUnsafeMutableBufferPointer { try comm.broadcast($0, root: root) }
            if !v.sharesStorage(with: p.value) { p.value = v }
        }
        var counters = model.int64Buffers.map(\.value)
        try comm.broadcast(&counters, root: root)
        for (b, v) in zip(model.int64Buffers, counters) { b.value = v }
    }

    // MARK: - Training

    /// Runs epochs until `config.train.epochs` (or `maxSteps` steps in total, or a stop signal).
    /// Evaluates on the test set after each epoch and checkpoints as configured.
    public func train(evaluateEachEpoch: Bool = true) throws {
        stopRequest.install()
        defer { stopRequest.uninstall() }
        let t = config.train
        log("objective: \(lossTransform?.objectiveDescription ?? "cross-entropy (mean over the global batch)")")
        log("global batch \(t.batchSize) over \(comm.worldSize) rank(s) (about \(t.batchSize / comm.worldSize) per rank); "
            + "lr \(fmt(config.effectiveLearningRate, 5)) (\(t.lrScaling == "linear" ? "linear scaling: \(t.lr) x \(t.batchSize)/\(t.referenceBatchSize)" : "not scaled with the batch")), "
            + "schedule \(t.schedule), bn \(t.bnMode), \(stepsPerEpoch) steps/epoch, \(data.trainIds.count) training images")
        log("data: training set \(data.trainSet.loadingDescription), test set \(data.testSet.loadingDescription)"
            + "; augmentation \(augmentationDescription)")
        while epoch < t.epochs {
            let ep = epoch
            let lr = schedule.learningRate(epoch: ep, step: stepInEpoch, stepsPerEpoch: stepsPerEpoch)
            let started = Date()
            let stats = try runEpoch()
            let seconds = Date().timeIntervalSince(started)
            if preempted || (t.maxSteps > 0 && globalStep >= t.maxSteps && stepInEpoch != 0) {
                try checkpoint()
                return
            }
            var record: [String: Any] = [
                "epoch": ep + 1, "lr": lr, "train_loss": stats.loss, "train_accuracy": stats.accuracy,
                "images_per_second": stats.imagesPerSecond, "wall_seconds": seconds, "steps": globalStep,
            ]
            let due = t.evalEvery > 0 ? (ep + 1) % t.evalEvery == 0 : false
            if evaluateEachEpoch && (due || epoch >= t.epochs) {
                let ev = try evaluate(data.testSet, ids: data.testSet.ids)
                record["test_loss"] = ev.loss
                record["test_accuracy"] = ev.accuracy
                log("epoch \(ep + 1)/\(t.epochs): train loss \(fmt(stats.loss, 4)) acc \(fmt(100 * stats.accuracy, 2))% | "
                    + "test loss \(fmt(ev.loss, 4)) acc \(fmt(100 * ev.accuracy, 2))% | \(fmt(stats.imagesPerSecond, 0)) img/s, \(fmt(seconds, 1)) s")
            } else {
                log("epoch \(ep + 1)/\(t.epochs): train loss \(fmt(stats.loss, 4)) acc \(fmt(100 * stats.accuracy, 2))% | \(fmt(stats.imagesPerSecond, 0)) img/s")
            }
            if comm.rank == 0 { folder?.appendMetrics(record) }
            let last = epoch >= t.epochs
            if last || (t.checkpointEvery > 0 && epoch % t.checkpointEvery == 0) || (t.maxSteps > 0 && globalStep >= t.maxSteps) {
                try checkpoint()
            }
            if t.maxSteps > 0 && globalStep >= t.maxSteps { return }
        }
    }

    struct EpochStats {
        var loss: Double
        var accuracy: Double
        var imagesPerSecond: Double
    }

    var augmentationDescription: String {
        var parts: [String] = []
        if let crop = data.trainSet.trainingCrop {
            parts.append("random-resized-crop \(crop.size) (area \(crop.scale.lowerBound)-\(crop.scale.upperBound))\(crop.horizontalFlip ? " + flip" : "")")
        }
        if let a = data.augmentation {
            if a.cropPadding > 0 { parts.append("random crop (zero padding \(a.cropPadding))") }
            if a.horizontalFlip { parts.append("flip") }
        }
        return parts.isEmpty ? "off" : parts.joined(separator: " + ")
    }

    /// Runs the rest of the current epoch (from `stepInEpoch`).
    func runEpoch() throws -> EpochStats {
        let t = config.train
        let batches = sampler.batches(epoch: epoch, globalBatchSize: t.batchSize)
        var lossSum = 0.0, correct = 0.0, count = 0.0
        let started = Date()
        var imagesThisRun = 0.0
        let printEvery = max(1, stepsPerEpoch / max(1, t.progressLines))
        // Batches are assembled (normalised, augmented) on a background thread, a few steps ahead.
        let plans = batches[min(stepInEpoch, batches.count)...].map { b in
            BatchPlan(epoch: epoch, step: b.step, positions: zip(b.positions, b.isPadding).filter { !$0.1 }.map(\.0))
        }
        let loader = BatchLoader(source: data.trainSet.trainingSource(augmentation: data.augmentation), plans: plans,
                                 normalizer: data.normalizer, prefetch: 3)
        defer { loader.cancel() }
        while stepInEpoch < batches.count {
            if t.maxSteps > 0 && globalStep >= t.maxSteps { break }
            let b = batches[stepInEpoch]
            comm.phase = "epoch \(epoch + 1) step \(stepInEpoch + 1)/\(batches.count)"
            let lr = schedule.learningRate(epoch: epoch, step: stepInEpoch, stepsPerEpoch: stepsPerEpoch)
            if debugStepDelay > 0 { Thread.sleep(forTimeInterval: debugStepDelay) }
            guard let loaded = try loader.next() else {
                throw TrainingError.resume("the batch loader ended early at step \(stepInEpoch + 1) of epoch \(epoch + 1)")
            }
            let s = try step(batch: b, loaded: loaded, learningRate: Float(lr))
            lossSum += s.lossSum
            correct += s.correct
            count += s.count
            imagesThisRun += s.count
            stepInEpoch += 1
            globalStep += 1
            if t.consistencyEvery > 0 && globalStep % t.consistencyEvery == 0 {
                try checkConsistency(includeBuffers: false)
                // Straggler report: compare how long each rank computed vs waited since the last one.
                let now = Date(), wait = comm.collectiveWaitSeconds
                let elapsed = now.timeIntervalSince(lastReport.time)
                let waited = wait - lastReport.wait
                if let line = try StragglerReport.check(busySeconds: elapsed - waited, waitSeconds: waited, comm: comm) {
                    log(line)
                }
                lastReport = (now, wait)
            }
            if stepInEpoch % printEvery == 0 || stepInEpoch == batches.count {
                let elapsed = Date().timeIntervalSince(started)
                let ips = imagesThisRun / max(elapsed, 1e-9)
                let remaining = Double(batches.count - stepInEpoch) * Double(t.batchSize) / max(ips, 1e-9)
                log("  epoch \(epoch + 1) step \(stepInEpoch)/\(batches.count) loss \(fmt(lossSum / max(count, 1), 4)) "
                    + "acc \(fmt(100 * correct / max(count, 1), 2))% \(fmt(ips, 0)) img/s ETA \(fmt(remaining, 0)) s")
            }
            if s.stop {
                preempted = true
                log("stop requested (SIGTERM/SIGUSR1): writing a checkpoint at step \(globalStep)")
                break
            }
        }
        let elapsed = Date().timeIntervalSince(started)
        if stepInEpoch >= batches.count {
            epoch += 1
            stepInEpoch = 0
        }
        return EpochStats(loss: lossSum / max(count, 1), accuracy: correct / max(count, 1),
                          imagesPerSecond: imagesThisRun / max(elapsed, 1e-9))
    }

    struct StepResult {
        var lossSum: Double
        var correct: Double
        var count: Double
        var stop: Bool
    }

    /// One SGD step on the rank's share of a global batch. Collective.
    func step(batch: SamplerBatch, loaded: LoadedBatch, learningRate: Float) throws -> StepResult {
        let ids = loaded.ids.map(Int64.init)
        let labels = loaded.labels
        let x = Tensor(shape: [loaded.count, loaded.channels, loaded.height, loaded.width], values: loaded.images)
        arena.zeroGradients()
        hooks?.beforeForward()
        let ctx = ForwardContext(mode: .train, seed: UInt64(config.seed), epoch: epoch, sampleIDs: ids,
                                 batchNormReducer: bnReducer)
        let logits = model.forward(x, context: ctx)
        let globalCount = batch.globalRealCount
        let ce = softmaxCrossEntropy(logits: logits, labels: labels, labelSmoothing: Float(config.train.labelSmoothing),
                                     gradientScale: globalCount > 0 ? 1 / Float(globalCount) : 0)
        let correct = Double(zip(argmaxRows(logits), labels).filter { $0 == $1 }.count)
        // [loss sum, correct, count, non-finite rank + 1 (max), stop request]
        var stats: [Double] = [ce.lossSum, correct, Double(labels.count),
                               ce.lossSum.isFinite ? 0 : Double(comm.rank + 1), stopRequest.isRequested ? 1 : 0]
        var flags = [stats[3], stats[4]]
        var sums = [stats[0].isFinite ? stats[0] : 0, stats[1], stats[2]]
        try comm.allreduce(&sums, op: .sum)
        try comm.allreduce(&flags, op: .max)
        stats = sums + flags
        if flags[0] > 0 {
            throw TrainingError.nonFiniteLoss(step: globalStep + 1, epoch: epoch, rank: Int(flags[0]) - 1,
                                              lastCheckpoint: lastCheckpoint)
        }
        var logitsGradient = ce.logitsGradient
        if let transform = lossTransform {
            let globalMean = sums[0] / max(sums[2], 1)
            let perSampleMultipliers = transform.perSampleMultipliers(globalMeanLoss: globalMean, sampleIDs: ids)
            if let perSample = perSampleMultipliers {
                precondition(perSample.count == labels.count, "perSampleMultipliers: \(perSample.count) for \(labels.count) samples")
                let k = logitsGradient.count / max(labels.count, 1)
                logitsGradient.withUnsafeMutableBufferPointer { g in
                    for i in 0..<labels.count { for j in 0..<k { g[i * k + j] *= perSample[i] } }
                }
            }
            let m = perSampleMultipliers == nil ? transform.gradientMultiplier(globalMeanLoss: globalMean) : 1
            if m != 1 {
                let f = Float(m)
                logitsGradient.withUnsafeMutableBufferPointer { g in
                    for i in 0..<g.count { g[i] *= f }
                }
            }
        }
        _ = model.backward(logitsGradient)
        hooks?.afterBackward()
        var grads = arena.gradients
        try grads.withUnsafeMutableBufferPointer { try reducer.reduce($0, comm: comm) }
        var step = hp
        step.learningRate = learningRate
        var values = arena.values
        values.withUnsafeMutableBufferPointer { v in
            grads.withUnsafeBufferPointer { g in
                if step.momentum > 0 {
                    momentum.withUnsafeMutableBufferPointer { m in
                        sgdUpdate(parameters: v, gradients: g, momentumBuffer: m, momentumInitialized: momentumInitialized, hp: step)
                    }
                } else {
                    sgdUpdate(parameters: v, gradients: g, momentumBuffer: nil, momentumInitialized: false, hp: step)
                }
            }
        }
        momentumInitialized = true
        // Global (all ranks) sums, so progress lines and metrics describe the whole global batch.
        return StepResult(lossSum: sums[0], correct: sums[1], count: sums[2], stop: flags[1] > 0)
    }

    // MARK: - Evaluation

    /// Evaluates on `ids` of `dataset` with fixed batches of consecutive ids dealt round-robin
    /// to ranks; per-sample results are gathered by id, so the result is identical for any
    /// world size. Collective. Running statistics are synchronised first.
    public func evaluate(_ dataset: SampleSet, ids: [Int]) throws -> EvaluationResult {
        try hooks?.prepareForEvaluation()
        try synchronizeBuffers()
        try checkConsistency(includeBuffers: true)
        return try Evaluator.evaluate(model: model, comm: comm, data: data, dataset: dataset, ids: ids,
                                      batchSize: config.train.evalBatchSize)
    }

    // MARK: - Consistency

    /// Makes BatchNorm running statistics identical on every rank. With `sync` BN they already
    /// are (every rank normalised with the same global statistics); with `local` BN the rule is
    /// the arithmetic mean over ranks of `running_mean` and `running_var`, and the maximum of
    /// `num_batches_tracked`.
    public func synchronizeBuffers() throws {
        guard comm.worldSize > 1, config.train.bnMode == "local" else { return }
        for b in model.buffers {
            var v = b.value
            try v.withUnsafeMutableBufferPointer { p in
                try comm.allreduce(p, op: .sum)
                let inv = 1 / Float(comm.worldSize)
                for i in 0..<p.count { p[i] *= inv }
            }
            if !v.sharesStorage(with: b.value) { b.value = v }
        }
        var counters = model.int64Buffers.map(\.value)
        try comm.allreduce(&counters, op: .max)
        for (b, v) in zip(model.int64Buffers, counters) { b.value = v }
    }

    /// Compares per-tensor checksums across ranks; throws naming the first differing tensors.
    public func checkConsistency(includeBuffers: Bool) throws {
        guard comm.worldSize > 1 else { return }
        let (names, sums) = checksums(includeBuffers: includeBuffers)
        if let diff = try RankConsistency.compare(names: names, checksums: sums, comm: comm) {
            throw TrainingError.replicasDiverged(diff)
        }
    }

    /// Per-tensor checksums (parameters, then optionally buffers and int64 buffers).
    public func checksums(includeBuffers: Bool) -> (names: [String], sums: [UInt64]) {
        var names: [String] = [], sums: [UInt64] = []
        for p in model.parameters + (includeBuffers ? model.buffers : []) {
            names.append(p.name)
            sums.append(p.value.withUnsafeBufferPointer { RankConsistency.checksum($0) })
        }
        if includeBuffers {
            for b in model.int64Buffers {
                names.append(b.name)
                sums.append(RankConsistency.checksum([b.value]))
            }
        }
        for (name, values) in hooks?.extraState() ?? [] {
            names.append(name)
            sums.append(values.withUnsafeBufferPointer { RankConsistency.checksum($0) })
        }
        return (names, sums)
    }

    /// One checksum over all parameters and buffers (what tests compare across runs).
    public var stateChecksum: UInt64 { RankConsistency.combine(checksums(includeBuffers: true).sums) }

    // MARK: - Checkpoints

    /// Writes a checkpoint of the model and the training state (collective; rank 0 writes).
    public func checkpoint() throws {
        guard let folder else { return }
        try hooks?.prepareForEvaluation()
        try synchronizeBuffers()
        try checkConsistency(includeBuffers: true)
        var files: [String: [UInt8]] = [:]
        if comm.rank == 0 {
            files["model.safetensors"] = try SafeTensorsFile(records: StateDict.records(of: model),
                                                             metadata: ModelFactory.metadata(config.model)).encode()
            let opt = SafeTensorsFile(records: [SafeTensorsRecord(name: "momentum", shape: [momentum.count], floats: momentum)],
                                      metadata: ["momentum_initialized": momentumInitialized ? "true" : "false"])
            files["optimizer.safetensors"] = try opt.encode()
            if let extra = hooks?.extraState(), !extra.isEmpty {
                files["method_state.safetensors"] = try SafeTensorsFile(
                    records: extra.map { SafeTensorsRecord(name: $0.name, shape: [$0.values.count], floats: $0.values) }).encode()
            }
            let state: [String: Any] = [
                "epoch": epoch, "step_in_epoch": stepInEpoch, "global_step": globalStep, "world_size": comm.worldSize,
                "seed": config.seed, "momentum_initialized": momentumInitialized,
                "rng": "counter-based Philox/SplitMix64 keyed by (seed, epoch, sample id, layer): no per-rank state to save",
                "config_yaml": (try? config.yaml()) ?? "",
                "data_fingerprint": dataFingerprint, "train_count": data.trainIds.count, "validation_count": data.validationIds.count,
            ]
            files["state.json"] = [UInt8](try JSONSerialization.data(withJSONObject: state, options: [.prettyPrinted, .sortedKeys]))
        }
        let store = CheckpointStore(directory: folder.checkpoints, keep: config.train.keepCheckpoints)
        let path = try store.write(step: globalStep, files: files, comm: comm)
        lastCheckpoint = path
        log("checkpoint: \(path)")
    }

    /// Resumes from the newest complete checkpoint of this stage, if any. Collective.
    ///
    /// - Parameter dropMomentum: negative control for tests: resume without the momentum
    ///   buffers (the result must then differ from an uninterrupted run).
    /// - Returns: the checkpoint used, or nil when there is none.
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
        guard let state = try JSONSerialization.jsonObject(with: Data(stateBytes)) as? [String: Any],
              let ep = state["epoch"] as? Int, let sie = state["step_in_epoch"] as? Int, let gs = state["global_step"] as? Int,
              let ws = state["world_size"] as? Int else {
            throw TrainingError.resume("\(chosen)/state.json lacks epoch/step_in_epoch/global_step/world_size")
        }
        if let saved = state["data_fingerprint"] as? String, saved != dataFingerprint {
            let then = "\(state["train_count"] as? Int ?? -1) training / \(state["validation_count"] as? Int ?? -1) held-out ids"
            throw TrainingError.resume("\(chosen) was written for other training data (fingerprint \(saved), \(then); now \(dataFingerprint), "
                + "\(data.trainIds.count) / \(data.validationIds.count)): files were added, removed or renamed, or data.* settings changed, "
                + "which reshuffles the validation split. Hint: restore the data as it was, or start a new run (another --name).")
        }
        if !dropMomentum, momentum.count > 0 {
            guard let rec = optFile.record(named: "momentum"), rec.shape == [momentum.count] else {
                throw TrainingError.resume("\(chosen)/optimizer.safetensors has no momentum of \(momentum.count) values")
            }
            momentum = try rec.floats()
            momentumInitialized = optFile.metadata["momentum_initialized"] == "true"
        } else {
            momentum = [Float](repeating: 0, count: momentum.count)
            momentumInitialized = false
        }
        epoch = ep
        stepInEpoch = sie
        globalStep = gs
        lastCheckpoint = chosen
        if ws != comm.worldSize {
            log("warning: resuming a world-size-\(ws) checkpoint on \(comm.worldSize) ranks: the data is re-sharded; "
                + "results will differ from an uninterrupted \(ws)-rank run in the last bits")
        }
        log("resumed from \(chosen) (epoch \(ep + 1), step \(sie) of the epoch, \(gs) steps done)")
        try checkConsistency(includeBuffers: true)
        return chosen
    }
}

/// Row-wise argmax of `[N, K]` logits (first maximum on ties, as torch.argmax).
public func argmaxRows(_ logits: Tensor) -> [Int] {
    let n = logits.shape[0], k = logits.shape[1]
    return logits.withUnsafeBufferPointer { z in
        (0..<n).map { i in
            var best = 0
            for j in 1..<k where z[i * k + j] > z[i * k + best] { best = j }
            return best
        }
    }
}

func fmt(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }

/// SIGTERM / SIGUSR1 (what Slurm sends before a time limit) turn into a stop request that the
/// training loop sees at the next step; every rank agrees through the step's allreduce.
final class StopRequest: @unchecked Sendable {
    private let lock = NSLock()
    private var requested = false
    private var sources: [DispatchSourceSignal] = []

    var isRequested: Bool { lock.lock(); defer { lock.unlock() }; return requested }

    func install() {
        for sig in [SIGTERM, SIGUSR1] {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { [weak self] in
                guard let self else { return }
                self.lock.lock()
                self.requested = true
                self.lock.unlock()
            }
            s.resume()
            sources.append(s)
        }
    }

    func uninstall() {
        for s in sources { s.cancel() }
        sources = []
        signal(SIGTERM, SIG_DFL)
        signal(SIGUSR1, SIG_DFL)
    }
}
