import Foundation
import SafeTensors

/// Which ids were held out of training (`train/validation_ids.json`).
public struct ValidationSplitRecord: Codable, Equatable, Sendable {
    public var validationIds: [Int]
    public var validationSeed: Int
    public var trainCount: Int

    enum CodingKeys: String, CodingKey {
        case validationIds = "validation_ids", validationSeed = "validation_seed", trainCount = "train_count"
    }
}

/// The train stage: data-parallel training of the ID classifier from its initialisation.
/// Used by `umtrain train` and `umtrain pipeline`.
public enum TrainStage {
    public struct Options: Sendable {
        /// Continue from the newest complete checkpoint of this stage (a fresh start otherwise).
        public var resume = false
        /// The stage folder under `<output_dir>/<name>/`.
        public var stage = "train"
        /// Drills: resume without momentum (negative control), slow one rank down.
        public var debugDropMomentum = false
        public var debugSlowRank: Int?
        public var debugSlowSeconds = 0.2
        public init(resume: Bool = false, stage: String = "train") {
            self.resume = resume
            self.stage = stage
        }
    }

    public struct Outcome: Sendable {
        public var status: StageStatus
        /// The final weights (`<stage>/model.safetensors`); nil when pre-empted.
        public var weights: String?
        /// The newest complete checkpoint.
        public var checkpoint: String?
        public var testAccuracy: Double?
        public var steps: Int
        /// One checksum over all parameters and buffers (identical on every rank).
        public var stateChecksum: UInt64
    }

    /// Trains `config.model` on `config.data` and writes `<stage>/`: config.yaml,
    /// provenance.json, validation_ids.json, metrics.jsonl, checkpoints/, and when training
    /// completes model.safetensors and stage.json. On SIGTERM/SIGUSR1 every rank finishes its
    /// step, a checkpoint is written and the outcome is `.preempted` (no final model).
    /// Collective.
    ///
    /// - Throws: ``ConfigError`` for data that does not fit the config (before anything is
    ///   written), ``TrainingError`` (non-finite loss, diverged replicas, resume refused),
    ///   ``CheckpointError`` and communicator errors.
    public static func run(config: RunConfig, context: StageContext, options: Options = Options()) throws -> Outcome {
        // The data first, so a failed launch writes nothing.
        let data = try TrainingData.load(config, file: context.configFile, comm: context.comm)
        let validationSets = config.train.oodValidationEvery > 0
            ? try OODEvaluation.loadSets(config.evaluate, imageSize: config.model.imageSize, channels: config.model.inChannels,
                                         validation: true, resize: config.data.resize, loading: config.data.loading, comm: context.comm)
            : []
        let folder = try context.openStage(config: config, stage: options.stage, fresh: !options.resume)
        if context.isRoot {
            let split = ValidationSplitRecord(validationIds: data.validationIds, validationSeed: config.data.validationSeed,
                                              trainCount: data.trainIds.count)
            try AtomicFile.write([UInt8](try JSONEncoder().encode(split)), to: folder.root + "/validation_ids.json")
        }
        let model = try ModelFactory.make(config.model, seed: UInt64(config.seed), convolution: context.convolution.algorithm)
        context.log("model \(config.model.arch): \(model.trainableParameterCount) trainable parameters")
        let trainer = try Trainer(config: config, comm: context.comm, model: model, data: data, folder: folder, log: context.log,
                                  stopRequest: context.stopRequest)
        if options.debugSlowRank == context.comm.rank { trainer.debugStepDelay = options.debugSlowSeconds }
        if context.debugSlowRank == context.comm.rank { trainer.debugStepDelay = context.debugSlowSeconds }
        var monitor: OODValidationMonitor?
        if config.train.oodValidationEvery > 0 {
            let m = try OODValidationMonitor(config: config, sets: validationSets, validationCount: data.validationIds.count,
                                             folder: folder, comm: context.comm, resume: options.resume)
            trainer.epochEnded = { [unowned trainer] epoch, record in
                try m.epochEnded(epoch: epoch, trainer: trainer, record: &record)
                if context.isRoot && m.isDue(epoch: epoch) { try m.writePlot(pending: record) }
            }
            let cap = { (n: Int) in config.train.oodValidationSamples > 0 ? min(n, config.train.oodValidationSamples) : n }
            context.log("OOD validation every \(m.every) epoch(s): \(m.kinds.map(\.rawValue).joined(separator: ", ")) on the ID validation split "
                + "(\(cap(data.validationIds.count)) of \(data.validationIds.count)) vs "
                + "\(validationSets.filter { !$0.synthetic }.map { "\($0.name) (\(cap($0.dataset.count)))" }.joined(separator: ", ")); "
                + "the best \(m.kinds[0].rawValue) AUROC is kept as best_val_epoch")
            monitor = m
        }
        if options.resume, try trainer.resumeIfPossible(dropMomentum: options.debugDropMomentum) == nil {
            context.log("note: --resume given but no complete checkpoint in \(folder.checkpoints); starting fresh")
        }
        let started = Date()
        try trainer.train()
        if trainer.preempted {
            context.log("\(options.stage): stopped on request after step \(trainer.globalStep); checkpoint \(trainer.lastCheckpoint ?? "none"); "
                + "no final model written; re-run with --resume to continue")
            return Outcome(status: .preempted, weights: nil, checkpoint: trainer.lastCheckpoint, testAccuracy: nil,
                           steps: trainer.globalStep, stateChecksum: trainer.stateChecksum)
        }
        try trainer.checkFinite(includeBuffers: true, when: "at the end of training")
        let final = try trainer.evaluate(data.testSet, ids: data.testSet.ids)
        let weights = folder.root + "/model.safetensors"
        if context.isRoot {
            let file = SafeTensorsFile(records: StateDict.records(of: model), metadata: ModelFactory.metadata(config.model))
            try AtomicFile.write(try file.encode(), to: weights)
            let outputs = ["model.safetensors"] + (monitor?.best != nil ? ["best_val_epoch.safetensors"] : [])
            // The record's config leaves out what only fine-tuning reads, so a sweep that gains a
            // cell reuses this training (SweepPlan.trainingConfig).
            try StageRecord(stage: options.stage, inputWeights: nil, config: SweepPlan.trainingConfig(config), outputs: outputs).write(to: folder)
        }
        if let m = monitor {
            let total = Date().timeIntervalSince(started)
            context.log("OOD validation: \(fmt(m.seconds, 1)) s of \(fmt(total, 1)) s of training (\(fmt(100 * m.seconds / max(total, 1e-9), 1))%)"
                + (m.best.map { "; best_val_epoch = epoch \($0.epoch) (\($0.score) AUROC \(fmt(100 * $0.auroc, 2)))" } ?? ""))
        }
        let checksum = trainer.stateChecksum
        context.log("final: test accuracy \(fmt(100 * final.accuracy, 2))% (loss \(fmt(final.loss, 4)), \(final.count) images), "
            + "\(trainer.globalStep) steps in \(fmt(Date().timeIntervalSince(started), 1)) s")
        context.log("state checksum: \(String(checksum, radix: 16))")
        context.log("weights: \(weights)")
        return Outcome(status: .completed, weights: weights, checkpoint: trainer.lastCheckpoint, testAccuracy: final.accuracy,
                       steps: trainer.globalStep, stateChecksum: checksum)
    }
}
