/// `train:` the data-parallel training of the ID classifier.
public struct TrainSection: Codable, Equatable, Sendable {
    public var epochs = 10
    /// GLOBAL batch size (summed over ranks) of one forward/backward (a micro-batch when
    /// `accumulation_steps` > 1).
    public var batchSize = 128
    /// Micro-batches per optimizer step: gradients of K consecutive global batches are summed
    /// locally and allreduced once, giving the update of one batch of K x batch_size (BatchNorm
    /// statistics stay per micro-batch, as in PyTorch). Learning-rate scaling, the schedule and
    /// `max_steps` count optimizer steps; UM's flooding sign comes from the whole effective batch.
    public var accumulationSteps = 1
    /// Start each gradient bucket's allreduce during backward, as soon as its gradients are final
    /// (bitwise the same result as reducing after backward; off = reduce after backward).
    public var overlapAllreduce = true
    /// Write a per-rank timeline of the first `trace_steps` optimizer steps to this file (Chrome
    /// trace-event JSON, all ranks merged, a row per rank; empty = off).
    public var trace = ""
    public var traceSteps = 20
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
    /// Measure the OOD-validation curve every N epochs and after the last (0 = off): the ID
    /// validation split against the validation OOD sets, logged to metrics.jsonl; the best
    /// epoch is kept as `best_val_epoch` (see ``OODValidationMonitor``).
    public var oodValidationEvery = 0
    /// The scores of the curve; the first one selects `best_val_epoch` (by mean AUROC).
    /// Feature scores (knn, mahalanobis, react) refit on the training split at every point.
    public var oodValidationScores: [ScoreKind] = [.energy, .msp]
    /// At most this many samples of the ID validation split and of each validation OOD set
    /// (evenly spaced in id order, the same every time; 0 = all): bounds the curve's cost.
    public var oodValidationSamples = 1000

    /// The ranges of this section's numeric keys (see ``ConfigRange``).
    static var ranges: [ConfigRange<TrainSection>] {
        [.int(\.epochs, "train.epochs", 0...1_000_000, hint: "e.g. epochs: 10"),
         .int(\.batchSize, "train.batch_size", 1...10_000_000, hint: "the GLOBAL batch, split across ranks"),
         .int(\.accumulationSteps, "train.accumulation_steps", 1...100_000, hint: "micro-batches per optimizer step; 1 = none"),
         .int(\.traceSteps, "train.trace_steps", 1...100_000, hint: "optimizer steps recorded by train.trace"),
         .number(\.lr, "train.lr", 0, 1e6, hint: "e.g. lr: 0.1"),
         .int(\.referenceBatchSize, "train.reference_batch_size", 1...10_000_000, hint: "e.g. 256"),
         .number(\.momentum, "train.momentum", 0, 1, upperOpen: true, hint: "0.9 is standard"),
         .number(\.dampening, "train.dampening", 0, 1, hint: "0 is PyTorch's default"),
         .number(\.weightDecay, "train.weight_decay", 0, 1e3, hint: "e.g. 5e-4"),
         .int(\.stepSize, "train.step_size", 1...1_000_000, hint: "epochs between decays of the step schedule, e.g. 30"),
         .ints(\.milestones, "train.milestones", 1...1_000_000, hint: "epochs at which the multistep schedule decays, increasing, e.g. [100, 150]"),
         .number(\.gamma, "train.gamma", 0, 10, lowerOpen: true, hint: "the decay factor of step/multistep schedules, e.g. 0.1"),
         .int(\.warmupEpochs, "train.warmup_epochs", 0...1_000_000, hint: "0 disables warm-up"),
         .number(\.labelSmoothing, "train.label_smoothing", 0, 1, upperOpen: true, hint: "0 disables it"),
         .int(\.checkpointEvery, "train.checkpoint_every", 0...1_000_000, hint: "epochs; 0 = only at the end"),
         .int(\.keepCheckpoints, "train.keep_checkpoints", 1...1_000_000, hint: "the last K checkpoints are kept"),
         .int(\.consistencyEvery, "train.consistency_every", 0...1_000_000_000, hint: "steps; 0 = off, e.g. 100"),
         .number(\.bucketFirstMiB, "train.bucket_first_mib", 0, 1e5, lowerOpen: true, hint: "DDP uses 1"),
         .number(\.bucketMiB, "train.bucket_mib", 0, 1e5, lowerOpen: true, hint: "DDP uses 25"),
         .int(\.maxSteps, "train.max_steps", 0...1_000_000_000_000, hint: "0 = no limit, e.g. max_steps: 100"),
         .int(\.evalBatchSize, "train.eval_batch_size", 1...1_000_000, hint: "e.g. 500"),
         .int(\.progressLines, "train.progress_lines", 0...1_000_000, hint: "progress lines per epoch, e.g. 10"),
         .int(\.evalEvery, "train.eval_every", 0...1_000_000, hint: "epochs; 0 = only at the end"),
         .int(\.oodValidationEvery, "train.ood_validation_every", 0...1_000_000, hint: "epochs; 0 = off, e.g. 1"),
         .int(\.oodValidationSamples, "train.ood_validation_samples", 0...1_000_000_000, hint: "per set; 0 = all, e.g. 1000")]
    }

    public init() {}

    enum CodingKeys: String, CodingKey {
        case epochs, lr, momentum, dampening, nesterov, schedule, milestones, gamma
        case batchSize = "batch_size", accumulationSteps = "accumulation_steps", overlapAllreduce = "overlap_allreduce", trace, traceSteps = "trace_steps", lrScaling = "lr_scaling", referenceBatchSize = "reference_batch_size",
             weightDecay = "weight_decay", stepSize = "step_size", warmupEpochs = "warmup_epochs",
             perStepSchedule = "per_step_schedule", bnMode = "bn_mode", labelSmoothing = "label_smoothing",
             checkpointEvery = "checkpoint_every", keepCheckpoints = "keep_checkpoints",
             consistencyEvery = "consistency_every", bucketFirstMiB = "bucket_first_mib", bucketMiB = "bucket_mib",
             dropLast = "drop_last", maxSteps = "max_steps", evalBatchSize = "eval_batch_size",
             progressLines = "progress_lines", evalEvery = "eval_every", oodValidationEvery = "ood_validation_every",
             oodValidationScores = "ood_validation_scores", oodValidationSamples = "ood_validation_samples"
    }

    /// Range checks of this section.
    /// - Throws: ``ConfigError/invalidValue(file:key:expected:actual:hint:)`` naming the key.
    public func validate(file: String) throws {
        for r in Self.ranges { try r.check(self, file: file) }
        if zip(milestones, milestones.dropFirst()).contains(where: { $0 >= $1 }) {
            throw ConfigError.invalidValue(file: file, key: "train.milestones", expected: "strictly increasing epochs",
                                           actual: "\(milestones)", hint: "as PyTorch's MultiStepLR, e.g. [100, 150]")
        }
        if oodValidationEvery > 0 && (oodValidationScores.isEmpty || Set(oodValidationScores).count != oodValidationScores.count) {
            throw ConfigError.invalidValue(file: file, key: "train.ood_validation_scores", expected: "at least one score, each once",
                                           actual: "\(oodValidationScores.map(\.rawValue))",
                                           hint: "e.g. [energy, msp]; the first one selects best_val_epoch")
        }
        if nesterov && (momentum <= 0 || dampening != 0) {
            throw ConfigError.invalidValue(file: file, key: "train.nesterov", expected: "false unless momentum > 0 and dampening = 0",
                                           actual: "true (momentum \(momentum), dampening \(dampening))", hint: "PyTorch refuses the same")
        }
    }
}
