import Datasets
import Distributed
import Foundation
import NeuralNetwork
import Optimizers
import SafeTensors
import TensorCore

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
    /// SGD over the arena; owns the momentum state (saved in checkpoints).
    let optimizer: SGD
    let reducer: GradientReducer
    /// The allreduce overlapped with backward (`train.overlap_allreduce`), or nil.
    let overlapped: OverlappedReduction?
    /// The timeline of the first steps (`train.trace`), or nil.
    let trace: StepTrace?
    /// Gradient buckets started before backward ended in the last step (0 without overlap).
    package var bucketsStartedDuringBackward: Int { overlapped?.startedDuringBackward ?? 0 }
    /// Gradient buckets per step.
    package var bucketCount: Int { reducer.buckets.count }
    let bnReducer: CommunicatorBatchNormReducer?
    let sampler: DistributedSampler
    let schedule: LearningRateSchedule
    let stepsPerEpoch: Int
    /// Pre-emption requests (SIGTERM/SIGUSR1). Given by the caller for a whole command, or the
    /// trainer's own, installed only while `train()` runs.
    let stopRequest: StopRequest
    let ownsStopRequest: Bool
    var lastReport = (time: Date(), wait: 0.0)
    /// Drill for the straggler report: this rank sleeps this many seconds in every step.
    public var debugStepDelay = 0.0
    /// Called on every rank after each completed epoch (1-based), before its `metrics.jsonl`
    /// record is written and before its checkpoint: it may add fields to the record (the
    /// OOD-validation curve does). Collective when the hook is.
    public var epochEnded: ((_ epoch: Int, _ record: inout [String: Any]) throws -> Void)?

    /// Position: the next step to run is `stepInEpoch` of `epoch` (both 0-based).
    public internal(set) var epoch = 0
    public internal(set) var stepInEpoch = 0
    public internal(set) var globalStep = 0
    public internal(set) var lastCheckpoint: String?
    /// Set when training stopped early on SIGTERM/SIGUSR1 after writing a checkpoint.
    public private(set) var preempted = false

    /// Builds the trainer on every rank. Collective: verifies that every rank built the same
    /// model (names, shapes, roles) and broadcasts rank 0's parameters and buffers.
    ///
    /// - Parameters:
    ///   - folder: the stage folder for checkpoints and `metrics.jsonl`; nil writes nothing.
    ///   - log: printer for rank 0 (other ranks never print).
    ///   - hooks: method hooks (UMAP's masks); they choose the optimised parameters.
    ///   - stopRequest: a command-wide pre-emption request; nil = the trainer's own.
    /// - Throws: ``TrainingError/modelMismatch(_:)``, optimizer range errors, communicator errors.
    public init(config: RunConfig, comm: Communicator, model: Classifier, data: TrainingData, folder: RunFolder?,
                log: @escaping (String) -> Void = { print($0) }, hooks: TrainingHooks? = nil,
                stopRequest: StopRequest? = nil) throws {
        self.stopRequest = stopRequest ?? StopRequest()
        ownsStopRequest = stopRequest == nil
        self.hooks = hooks
        self.config = config
        self.comm = comm
        self.model = model
        self.data = data
        self.folder = folder
        self.log = log
        let trainable = hooks?.optimizedParameters() ?? model.parameters.filter { $0.role == .trainable }
        arena = ParameterArena(parameters: trainable)
        reducer = GradientReducer(buckets: planGradientBuckets(
            sizes: trainable.map(\.count),
            firstBucketBytes: Int(config.train.bucketFirstMiB * 1_048_576),
            bucketBytes: Int(config.train.bucketMiB * 1_048_576)))
        overlapped = config.train.overlapAllreduce && comm.worldSize > 1 && hooks == nil
            ? OverlappedReduction(buckets: reducer.buckets, parameters: trainable, comm: comm) : nil
        trace = config.train.trace.isEmpty ? nil : StepTrace(path: config.train.trace, steps: config.train.traceSteps)
        if let trace, let overlapped {
            overlapped.onBucket = { [unowned trace] bucket, launch, done in
                trace.record("allreduce bucket \(bucket)", "comm", from: launch, to: done, args: "\"overlapped\":true")
            }
        }
        bnReducer = config.train.bnMode == .sync && comm.worldSize > 1 ? CommunicatorBatchNormReducer(comm: comm, trace: trace) : nil
        sampler = DistributedSampler(ids: data.trainIds.map { $0 }, rank: comm.rank, worldSize: comm.worldSize,
                                     shuffle: true, seed: UInt64(config.seed), dropLast: config.train.dropLast)
        let hp = SGDHyperparameters(learningRate: Float(config.effectiveLearningRate), momentum: Float(config.train.momentum),
                                    dampening: Float(config.train.dampening), weightDecay: Float(config.train.weightDecay),
                                    nesterov: config.train.nesterov)
        optimizer = try SGD(parameterCount: arena.count, hyperparameters: hp)
        let kind: LearningRateSchedule.Kind
        switch config.train.schedule {
        case .constant: kind = .constant
        case .step: kind = .step(stepSize: config.train.stepSize, gamma: config.train.gamma)
        case .multiStep: kind = .multiStep(milestones: config.train.milestones, gamma: config.train.gamma)
        case .cosine: kind = .cosine(totalEpochs: config.train.epochs)
        }
        schedule = LearningRateSchedule(base: config.effectiveLearningRate, kind: kind,
                                        warmupEpochs: config.train.warmupEpochs, perStep: config.train.perStepSchedule)
        // Optimizer steps per epoch: K micro-batches each (the last step of an epoch may have fewer).
        let k = max(1, config.train.accumulationSteps)
        stepsPerEpoch = (sampler.stepsPerEpoch(globalBatchSize: config.train.batchSize) + k - 1) / k
        try verifyModelAcrossRanks()
        try broadcastState(root: 0)
    }

    // MARK: - Training

    /// Runs epochs until `config.train.epochs` (or `maxSteps` steps in total, or a stop request).
    /// Evaluates on the test set after each epoch and checkpoints as configured. Collective.
    /// On a stop request (SIGTERM/SIGUSR1 on any rank) every rank finishes the same step, a
    /// checkpoint is written and `preempted` is set. Side effects: the model's parameters and
    /// buffers, `metrics.jsonl` and checkpoints (rank 0).
    /// - Throws: ``TrainingError/nonFiniteLoss(step:epoch:rank:lastCheckpoint:)``,
    ///   ``TrainingError/replicasDiverged(_:)``, ``CheckpointError``, communicator errors.
    public func train(evaluateEachEpoch: Bool = true) throws {
        try trainEpochs(evaluateEachEpoch: evaluateEachEpoch)
        // A run shorter than train.trace_steps writes its timeline at the end.
        if let trace, !trace.written {
            try trace.write(comm: comm)
            log("trace: \(min(globalStep, trace.stepLimit)) steps of \(comm.worldSize) rank(s) written to \(trace.path) (open in ui.perfetto.dev)")
        }
    }

    func trainEpochs(evaluateEachEpoch: Bool) throws {
        if ownsStopRequest { stopRequest.install() }
        defer { if ownsStopRequest { stopRequest.uninstall() } }
        let t = config.train
        try trace?.start(comm: comm)
        log("objective: \(lossTransform?.objectiveDescription ?? "cross-entropy (mean over the global batch)")")
        let accumulation = t.accumulationSteps > 1
            ? " x \(t.accumulationSteps) accumulated micro-batches = effective batch \(t.batchSize * t.accumulationSteps), one allreduce per step" : ""
        log("global batch \(t.batchSize) over \(comm.worldSize) rank(s) (about \(t.batchSize / comm.worldSize) per rank)\(accumulation); "
            + "lr \(fmt(config.effectiveLearningRate, 5)) (\(t.lrScaling == .linear ? "linear scaling: \(t.lr) x \(t.batchSize * t.accumulationSteps)/\(t.referenceBatchSize)" : "not scaled with the batch")), "
            + "schedule \(t.schedule), bn \(t.bnMode), \(stepsPerEpoch) steps/epoch, \(data.trainIds.count) training images")
        log("data: training set \(data.trainSet.loadingDescription), test set \(data.testSet.loadingDescription)"
            + "; augmentation \(augmentationDescription)")
        while epoch < t.epochs {
            let ep = epoch
            let lr = schedule.learningRate(epoch: ep, step: stepInEpoch / max(1, t.accumulationSteps), stepsPerEpoch: stepsPerEpoch)
            let started = Date()
            let stats = try runEpoch()
            let seconds = Date().timeIntervalSince(started)
            // Stopped inside the epoch (pre-emption or max_steps): checkpoint the position. A stop
            // at the epoch's last step finishes the epoch's bookkeeping first, then checkpoints.
            if stepInEpoch != 0 && (preempted || (t.maxSteps > 0 && globalStep >= t.maxSteps)) {
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
            try epochEnded?(ep + 1, &record)
            if comm.rank == 0 { folder?.appendMetrics(record) }
            let last = epoch >= t.epochs
            if last || preempted || (t.checkpointEvery > 0 && epoch % t.checkpointEvery == 0) || (t.maxSteps > 0 && globalStep >= t.maxSteps) {
                try checkpoint()
            }
            if preempted || (t.maxSteps > 0 && globalStep >= t.maxSteps) { return }
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
        let accumulation = max(1, t.accumulationSteps)
        while stepInEpoch < batches.count {
            if t.maxSteps > 0 && globalStep >= t.maxSteps { break }
            // One optimizer step: the next K micro-batches (fewer at the end of the epoch).
            let group = stepInEpoch ..< min(stepInEpoch + accumulation, batches.count)
            comm.phase = "epoch \(epoch + 1) step \(stepInEpoch / accumulation + 1)/\(stepsPerEpoch)"
            let lr = schedule.learningRate(epoch: epoch, step: stepInEpoch / accumulation, stepsPerEpoch: stepsPerEpoch)
            if debugStepDelay > 0 { Thread.sleep(forTimeInterval: debugStepDelay) }
            trace?.step = globalStep + 1
            LayerEvents.observer = trace?.active == true ? trace!.layerObserver() : nil
            defer { LayerEvents.observer = nil }
            let stepStart = StepTrace.now()
            var loadedGroup: [LoadedBatch] = []
            for micro in group {
                let t0 = StepTrace.now()
                guard let loaded = try loader.next() else {
                    throw TrainingError.resume("the batch loader ended early at batch \(micro + 1) of epoch \(epoch + 1)")
                }
                trace?.record("data wait", "data", from: t0)
                loadedGroup.append(loaded)
            }
            let s = try loadedGroup.count == 1
                ? step(batch: batches[group.lowerBound], loaded: loadedGroup[0], learningRate: Float(lr))
                : accumulatedStep(batches: group.map { batches[$0] }, loaded: loadedGroup, learningRate: Float(lr))
            trace?.record("step \(globalStep + 1)", "step", from: stepStart, args: "\"epoch\":\(epoch + 1),\"micro_batches\":\(group.count)")
            if let trace, globalStep + 1 == trace.stepLimit {
                try trace.write(comm: comm)
                log("trace: \(trace.stepLimit) steps of \(comm.worldSize) rank(s) written to \(trace.path) (open in ui.perfetto.dev)")
            }
            lossSum += s.lossSum
            correct += s.correct
            count += s.count
            imagesThisRun += s.count
            stepInEpoch = group.upperBound
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
            let optimizerSteps = (stepInEpoch + accumulation - 1) / accumulation
            if optimizerSteps % printEvery == 0 || stepInEpoch == batches.count {
                let elapsed = Date().timeIntervalSince(started)
                let ips = imagesThisRun / max(elapsed, 1e-9)
                let remaining = Double(batches.count - stepInEpoch) * Double(t.batchSize) / max(ips, 1e-9)
                log("  epoch \(epoch + 1) step \(optimizerSteps)/\(stepsPerEpoch) loss \(fmt(lossSum / max(count, 1), 4)) "
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
        let statsStart = StepTrace.now()
        try comm.allreduce(&sums, op: .sum)
        try comm.allreduce(&flags, op: .max)
        trace?.record("loss statistics allreduce", "comm", from: statsStart)
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
        var grads = arena.gradients
        if let overlapped {
            try grads.withUnsafeMutableBufferPointer { g in try overlapped.run(arena: g) { _ = model.backward(logitsGradient) } }
        } else {
            _ = model.backward(logitsGradient)
            hooks?.afterBackward()
            try reduceTraced(&grads)
        }
        try applyUpdate(grads, learningRate: learningRate)
        // Global (all ranks) sums, so progress lines and metrics describe the whole global batch.
        return StepResult(lossSum: sums[0], correct: sums[1], count: sums[2], stop: flags[1] > 0)
    }

    /// One optimizer step over K > 1 micro-batches (`train.accumulation_steps`). Each micro-batch's
    /// cross-entropy gradient is scaled by 1 / (the effective batch's global sample count) and
    /// backpropagated into the same gradient arena, so the sum is the mean gradient of the
    /// effective batch; one allreduce and one optimizer step follow. BatchNorm statistics are per
    /// micro-batch (PyTorch's accumulation semantics). UM's flooding sign needs the effective
    /// batch's mean loss, known only after the last forward: the gradient is linear in the sign,
    /// so the unsigned gradients are accumulated and the multiplier is applied to the sum before
    /// the allreduce. The atypical-only ablation's per-sample multipliers are not a single factor,
    /// so for it the micro-batches are first run forward only (BatchNorm buffers restored after)
    /// to learn the sign, then forward and backward again with the multipliers. Logged loss and
    /// accuracy are over the effective batch. Collective.
    func accumulatedStep(batches: [SamplerBatch], loaded: [LoadedBatch], learningRate: Float) throws -> StepResult {
        let globalCount = batches.map(\.globalRealCount).reduce(0, +)
        let scale: Float = globalCount > 0 ? 1 / Float(globalCount) : 0
        arena.zeroGradients()
        func input(_ l: LoadedBatch) -> Tensor { Tensor(shape: [l.count, l.channels, l.height, l.width], values: l.images) }
        func context(_ l: LoadedBatch) -> ForwardContext {
            ForwardContext(mode: .train, seed: UInt64(config.seed), epoch: epoch, sampleIDs: l.ids.map(Int64.init), batchNormReducer: bnReducer)
        }
        /// Forward and loss of one micro-batch, with the global statistics check (a non-finite
        /// loss on any rank stops every rank).
        func forward(_ l: LoadedBatch) throws -> (ce: CrossEntropyResult, sums: [Double], stop: Bool) {
            hooks?.beforeForward()
            let logits = model.forward(input(l), context: context(l))
            let ce = softmaxCrossEntropy(logits: logits, labels: l.labels, labelSmoothing: Float(config.train.labelSmoothing),
                                         gradientScale: scale)
            let correct = Double(zip(argmaxRows(logits), l.labels).filter { $0 == $1 }.count)
            var sums = [ce.lossSum.isFinite ? ce.lossSum : 0, correct, Double(l.labels.count)]
            var flags = [ce.lossSum.isFinite ? 0 : Double(comm.rank + 1), stopRequest.isRequested ? 1 : 0]
            try comm.allreduce(&sums, op: .sum)
            try comm.allreduce(&flags, op: .max)
            if flags[0] > 0 {
                throw TrainingError.nonFiniteLoss(step: globalStep + 1, epoch: epoch, rank: Int(flags[0]) - 1, lastCheckpoint: lastCheckpoint)
            }
            return (ce, sums, flags[1] > 0)
        }
        var totals = [0.0, 0.0, 0.0]
        var stop = false
        let perSample = lossTransform?.hasPerSampleMultipliers ?? false
        if perSample, let transform = lossTransform {
            // Pass 1: the effective batch's loss, with BatchNorm buffers restored afterwards.
            let saved = model.buffers.map(\.value.scalars), savedInt = model.int64Buffers.map(\.value)
            for l in loaded {
                let f = try forward(l)
                for i in 0..<3 { totals[i] += f.sums[i] }
                stop = stop || f.stop
            }
            for (b, v) in zip(model.buffers, saved) { b.value.withUnsafeMutableBufferPointer { p in for i in 0..<p.count { p[i] = v[i] } } }
            for (b, v) in zip(model.int64Buffers, savedInt) { b.value = v }
            let mean = totals[0] / max(totals[2], 1)
            // Pass 2: forward and backward with the per-sample multipliers of that sign.
            for l in loaded {
                let f = try forward(l)
                var g = f.ce.logitsGradient
                let multipliers = transform.perSampleMultipliers(globalMeanLoss: mean, sampleIDs: l.ids.map(Int64.init))!
                let k = g.count / max(l.labels.count, 1)
                g.withUnsafeMutableBufferPointer { p in
                    for i in 0..<l.labels.count { for j in 0..<k { p[i * k + j] *= multipliers[i] } }
                }
                _ = model.backward(g)
                hooks?.afterBackward()
            }
        } else {
            for l in loaded {
                let f = try forward(l)
                for i in 0..<3 { totals[i] += f.sums[i] }
                stop = stop || f.stop
                _ = model.backward(f.ce.logitsGradient)
                hooks?.afterBackward()
            }
            if let transform = lossTransform {
                let m = Float(transform.gradientMultiplier(globalMeanLoss: totals[0] / max(totals[2], 1)))
                if m != 1 {
                    var g = arena.gradients
                    g.withUnsafeMutableBufferPointer { p in for i in 0..<p.count { p[i] *= m } }
                }
            }
        }
        var grads = arena.gradients
        try reduceTraced(&grads)
        try applyUpdate(grads, learningRate: learningRate)
        return StepResult(lossSum: totals[0], correct: totals[1], count: totals[2], stop: stop)
    }

    /// The optimizer step on the reduced gradients (a timeline event when tracing). An update
    /// that overflowed stops training here, before anything is written with it.
    func applyUpdate(_ grads: Tensor, learningRate: Float) throws {
        var values = arena.values
        let optimizerStart = StepTrace.now()
        let nonFinite = values.withUnsafeMutableBufferPointer { v in
            grads.withUnsafeBufferPointer { g in optimizer.step(parameters: v, gradients: g, learningRate: learningRate) }
            return v.contains { !$0.isFinite }
        }
        trace?.record("optimizer", "optimizer", from: optimizerStart)
        if nonFinite {
            try checkFinite(includeBuffers: false, when: "after step \(globalStep + 1) (epoch \(epoch + 1))")
        }
    }

    /// The gradient allreduce after backward, bucket by bucket; each bucket is an event of the
    /// timeline when tracing.
    func reduceTraced(_ grads: inout Tensor) throws {
        guard let trace, trace.active, comm.worldSize > 1 else {
            try grads.withUnsafeMutableBufferPointer { try reducer.reduce($0, comm: comm) }
            return
        }
        try grads.withUnsafeMutableBufferPointer { g in
            for (i, b) in reducer.buckets.enumerated() {
                let t0 = StepTrace.now()
                try comm.allreduce(UnsafeMutableBufferPointer(rebasing: g[b.offset..<(b.offset + b.count)]), op: .sum)
                trace.record("allreduce bucket \(i)", "comm", from: t0, args: "\"bytes\":\(b.count * 4)")
            }
        }
    }

    // MARK: - Evaluation

    /// Evaluates on `ids` of `dataset` with fixed batches of consecutive ids dealt round-robin
    /// to ranks; per-sample results are gathered by id, so the result is identical for any
    /// world size. Collective. Running statistics are synchronised first.
    public func evaluate(_ dataset: SampleSet, ids: [Int]) throws -> EvaluationResult {
        try prepareEvaluation()
        return try Evaluator.evaluate(model: model, comm: comm, data: data, dataset: dataset, ids: ids,
                                      batchSize: config.train.evalBatchSize)
    }
}

extension Trainer {
    /// Makes the model ready for inference on every rank: the method hooks' evaluation state,
    /// running statistics synchronised (`bn_mode: local`), replicas checked identical
    /// (parameters and buffers). Collective.
    /// - Throws: ``TrainingError/replicasDiverged(_:)``, communicator errors.
    public func prepareEvaluation() throws {
        try hooks?.prepareForEvaluation()
        try synchronizeBuffers()
        try checkConsistency(includeBuffers: true)
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


