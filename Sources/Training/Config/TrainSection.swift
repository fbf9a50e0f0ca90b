/// `train:` the data-parallel training of the ID classifier.
public struct TrainSection: Codable, Equatable, Sendable {
    public var epochs = 10
    /// GLOBAL batch size (summed over ranks).
    public var batchSize = 128
    /// Base learning rate.
    public var lr = 0.1
    /// `none`: lr is used as given; `linear`: lr x batch_size / reference_batch_size.
    public var lrScaling = LearningRateScaling.unscaled
    public var referenceBatchSize = 256
    public var momentum = 0.9
    public var dampening = 0.0
    public var nesterov = false
    public var weightDecay = 5e-4
    /// `constant`, `step`, `multistep` or `cosine`.
    public var schedule = ScheduleKind.cosine
    public var stepSize = 30
    public var milestones: [Int] = []
    public var gamma = 0.1
    public var warmupEpochs = 0
    /// Update the learning rate every step (cosine, warm-up) instead of once per epoch.
    public var perStepSchedule = false
    /// `sync` (statistics over the global batch) or `local` (per rank, DDP's default).
    public var bnMode = BatchNormMode.sync
    public var labelSmoothing = 0.0
    /// Checkpoint every N epochs (0 = only at the end).
    public var checkpointEvery = 1
    public var keepCheckpoints = 3
    /// Compare parameter checksums across ranks every N steps (0 = off).
    public var consistencyEvery = 100
    /// Gradient bucket sizes (MiB): the first bucket, then the others.
    public var bucketFirstMiB = 1.0
    public var bucketMiB = 25.0
    /// Drop the tail of each epoch instead of padding (padded samples never count).
    public var dropLast = false
    /// Stop after this many steps in total (0 = run all epochs); a checkpoint is written there.
    public var maxSteps = 0
    /// Evaluation batch size: fixed runs of consecutive sample ids, the same for any world size.
    public var evalBatchSize = 500
    /// Progress lines per epoch when stdout is not a terminal.
    public var progressLines = 10
    /// Evaluate on the ID test set every N epochs (0 = only after the last epoch).
    public var evalEvery = 1

    public init() {}

    enum CodingKeys: String, CodingKey {
        case epochs, lr, momentum, dampening, nesterov, schedule, milestones, gamma
        case batchSize = "batch_size", lrScaling = "lr_scaling", referenceBatchSize = "reference_batch_size",
             weightDecay = "weight_decay", stepSize = "step_size", warmupEpochs = "warmup_epochs",
             perStepSchedule = "per_step_schedule", bnMode = "bn_mode", labelSmoothing = "label_smoothing",
             checkpointEvery = "checkpoint_every", keepCheckpoints = "keep_checkpoints",
             consistencyEvery = "consistency_every", bucketFirstMiB = "bucket_first_mib", bucketMiB = "bucket_mib",
             dropLast = "drop_last", maxSteps = "max_steps", evalBatchSize = "eval_batch_size",
             progressLines = "progress_lines", evalEvery = "eval_every"
    }

    /// Range checks of this section.
    /// - Throws: ``ConfigError/invalidValue(file:key:expected:actual:hint:)`` naming the key.
    public func validate(file: String) throws {
        let bad = ConfigError.invalid(file: file)
        if epochs < 0 { throw bad("train.epochs", "a count >= 0", epochs, "e.g. epochs: 10") }
        if batchSize < 1 { throw bad("train.batch_size", "a GLOBAL batch size >= 1", batchSize, "it is split across ranks") }
        if !(lr >= 0) || !lr.isFinite { throw bad("train.lr", "a finite number >= 0", lr, "e.g. lr: 0.1") }
        if referenceBatchSize < 1 { throw bad("train.reference_batch_size", "a batch size >= 1", referenceBatchSize, "e.g. 256") }
        if !(0..<1).contains(momentum) { throw bad("train.momentum", "a value in [0, 1)", momentum, "0.9 is standard") }
        if weightDecay < 0 { throw bad("train.weight_decay", "a value >= 0", weightDecay, "e.g. 5e-4") }
        if !(0..<1).contains(labelSmoothing) { throw bad("train.label_smoothing", "a value in [0, 1)", labelSmoothing, "0 disables it") }
        if keepCheckpoints < 1 { throw bad("train.keep_checkpoints", "at least 1", keepCheckpoints, "the last K checkpoints are kept") }
        if checkpointEvery < 0 { throw bad("train.checkpoint_every", "epochs >= 0 (0 = only at the end)", checkpointEvery, "e.g. 1") }
        if consistencyEvery < 0 { throw bad("train.consistency_every", "steps >= 0 (0 = off)", consistencyEvery, "e.g. 100") }
        if maxSteps < 0 { throw bad("train.max_steps", "steps >= 0 (0 = no limit)", maxSteps, "e.g. max_steps: 100") }
        if evalEvery < 0 { throw bad("train.eval_every", "epochs >= 0 (0 = only at the end)", evalEvery, "e.g. 1") }
        if evalBatchSize < 1 { throw bad("train.eval_batch_size", "at least 1", evalBatchSize, "e.g. 500") }
        if !(bucketFirstMiB > 0) || !(bucketMiB > 0) {
            throw bad("train.bucket_mib", "positive sizes in MiB", "\(bucketFirstMiB), \(bucketMiB)", "DDP uses 1 and 25")
        }
    }
}
