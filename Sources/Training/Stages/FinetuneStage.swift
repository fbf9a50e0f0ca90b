import Foundation
import NeuralNetwork
import SafeTensors
import UnleashingMask

/// The fine-tuning methods of the pipeline.
public enum FinetuneMethod: String, CaseIterable, Sendable {
    /// Flooding at xi with the sign from the global batch loss (UM).
    case um
    /// Learned weight masks under the same objective (UMAP).
    case umap
    /// The same schedule with plain cross-entropy: the matched control.
    case ce

    /// The stage folder under `<output_dir>/<name>/`.
    public var stage: String { self == .ce ? "ce_finetune" : rawValue }

    /// The pipeline stage (`--from`) that runs this method's cells.
    public var pipelineStage: Pipeline.Stage {
        switch self {
        case .um: return .um
        case .umap: return .umap
        case .ce: return .ce
        }
    }
}

/// Errors of the fine-tuning stage.
public enum FinetuneError: Error, CustomStringConvertible {
    case uncalibrated(String)
    public var description: String {
        switch self {
        case .uncalibrated(let m):
            return "refusing UM: \(m). Hint: re-estimate with a larger estimate.keep_ratio, or pass --force (um.force: true) to use it anyway."
        }
    }
}

/// The fine-tuning stage: UM, UMAP or the cross-entropy control, from trained weights, on the
/// `finetune` schedule (batch size, momentum, weight decay and BN mode from `train`).
public enum FinetuneStage {
    public struct Options: Sendable {
        public var method: FinetuneMethod
        /// The trained weights to start from.
        public var baseWeights: String
        /// estimate.json to read xi from (default `<output_dir>/<name>/estimate/estimate.json`).
        public var estimatePath: String?
        /// Continue from the newest complete checkpoint of this stage.
        public var resume = false
        /// The stage folder under `<output_dir>/<name>/` (default: the method's, e.g. `um`;
        /// sweep cells use their label, e.g. `um-short-p0.1`).
        public var stage: String?

        public init(method: FinetuneMethod, baseWeights: String, estimatePath: String? = nil, resume: Bool = false, stage: String? = nil) {
            self.method = method
            self.baseWeights = baseWeights
            self.estimatePath = estimatePath
            self.resume = resume
            self.stage = stage
        }
    }

    public struct Outcome: Sendable {
        public var status: StageStatus
        public var folder: RunFolder
        /// `<stage>/model.safetensors`; nil when pre-empted.
        public var weights: String?
        public var testAccuracy: Double?
    }

    /// The config with the fine-tuning schedule in place of the training one.
    public static func scheduleConfig(_ config: RunConfig) -> RunConfig {
        var c = config
        c.train.epochs = config.finetune.epochs
        c.train.lr = config.finetune.lr
        c.train.schedule = config.finetune.schedule
        c.train.warmupEpochs = config.finetune.warmupEpochs
        c.train.maxSteps = 0
        return c
    }

    /// Fine-tunes the model in `options.baseWeights` and writes `<stage>/` (checkpoints,
    /// metrics.jsonl, and when it completes model.safetensors and stage.json). UM and UMAP
    /// refuse an uncalibrated xi unless `um.force`. On SIGTERM/SIGUSR1 the outcome is
    /// `.preempted` after a checkpoint, with no final model. Collective.
    ///
    /// - Throws: ``FinetuneError/uncalibrated(_:)``, ``ConfigError`` for a missing
    ///   estimate.json or atypical.csv, ``TrainingError``, ``CheckpointError``, UMAP errors.
    public static func run(config: RunConfig, context: StageContext, options: Options) throws -> Outcome {
        let method = options.method, stage = options.stage ?? method.stage, comm = context.comm
        // Inputs first, so a failed launch writes nothing.
        let data = try TrainingData.load(config, file: context.configFile, comm: comm)
        let model = try ModelLoader.load(config: config, checkpoint: options.baseWeights, comm: comm,
                                         convolution: context.convolution.algorithm)
        let folder = try context.openStage(config: config, stage: stage, fresh: !options.resume)
        let ft = scheduleConfig(config)
        let before = try Evaluator.evaluate(model: model, comm: comm, data: data, dataset: data.testSet, ids: data.testSet.ids,
                                            batchSize: config.train.evalBatchSize)
        context.log("before \(stage): test accuracy \(pct(before.accuracy)) (loss \(f6(before.loss)))")

        var transform: LossTransform?
        var umap: UMAPState?
        if method == .um || method == .umap {
            transform = try flooding(config: config, context: context, model: model, data: data, estimatePath: options.estimatePath)
            if method == .umap {
                let u = config.umap
                let state = try UMAPState(model: model, options: UMAPOptions(keepRatio: u.keepRatio, modelWise: u.selection == .model,
                                                                             freezeWeights: u.freezeWeights, nonAffineBN: u.nonAffineBN),
                                          seed: UInt64(config.seed), comm: comm)
                context.log("UMAP: \(state.layerWeights.count) score-masked layers keeping \(u.keepRatio) "
                    + "(\(u.selection)-wise), weights \(u.freezeWeights ? "frozen" : "trained jointly")")
                umap = state
            }
        }
        let trainer = try Trainer(config: ft, comm: comm, model: model, data: data, folder: folder, log: context.log, hooks: umap,
                                  stopRequest: context.stopRequest)
        trainer.lossTransform = transform
        if context.debugSlowRank == comm.rank { trainer.debugStepDelay = context.debugSlowSeconds }
        if options.resume, try trainer.resumeIfPossible() == nil {
            context.log("note: --resume given but no complete checkpoint in \(folder.checkpoints); starting \(stage) fresh")
        }
        context.log("fine-tuning schedule: \(ft.train.epochs) epochs, lr \(ft.train.lr), \(ft.train.schedule)")
        try trainer.train()
        if trainer.preempted {
            context.log("\(stage): stopped on request after step \(trainer.globalStep); checkpoint \(trainer.lastCheckpoint ?? "none"); "
                + "no final model written; re-run with --resume to continue")
            return Outcome(status: .preempted, folder: folder, weights: nil, testAccuracy: nil)
        }
        try trainer.checkFinite(includeBuffers: true, when: "at the end of training")
        let after = try trainer.evaluate(data.testSet, ids: data.testSet.ids)
        let weights = folder.root + "/model.safetensors"
        if let umap {
            try umap.checkMasksAcrossRanks()
            umap.exportDense()
        }
        if context.isRoot {
            let file = SafeTensorsFile(records: StateDict.records(of: model), metadata: ModelFactory.metadata(config.model))
            try AtomicFile.write(try file.encode(), to: weights)
            try StageRecord(stage: stage, inputWeights: options.baseWeights, config: config, outputs: ["model.safetensors"]).write(to: folder)
        }
        context.log("after \(stage): test accuracy \(pct(after.accuracy)) (loss \(f6(after.loss))); was \(pct(before.accuracy))")
        context.log("weights: \(weights)")
        return Outcome(status: .completed, folder: folder, weights: weights, testAccuracy: after.accuracy)
    }

    /// UM's objective: xi from `um.xi` (its first value) or estimate.json, checked against the
    /// training and held-out losses of the starting model (UM requires train < xi/beta < held-out), and the
    /// atypical ids for the `um.atypical_only` ablation. Collective.
    static func flooding(config: RunConfig, context: StageContext, model: Classifier, data: TrainingData,
                         estimatePath: String?) throws -> Flooding {
        let comm = context.comm
        var xi = config.um.xi.first ?? 0
        let estimateFolder = RunFolder(config: config, stage: "estimate")
        if xi == 0 {
            let path = estimatePath ?? estimateFolder.root + "/estimate.json"
            let report = try EstimateReport.read(path)
            xi = report.xi
            context.log("xi \(f6(xi)) from \(path) (keep \(report.keepRatio), \(report.rule))")
        } else {
            context.log("xi \(f6(xi)) given explicitly")
        }
        let train = try Evaluator.evaluate(model: model, comm: comm, data: data, dataset: data.trainSet, ids: data.trainIds,
                                           batchSize: config.train.evalBatchSize)
        let held = data.validationIds.isEmpty ? nil
            : try Evaluator.evaluate(model: model, comm: comm, data: data, dataset: data.trainSet, ids: data.validationIds,
                                     batchSize: config.train.evalBatchSize)
        let level = xi / config.um.beta
        let ok = held.map { train.loss < level && level < $0.loss } ?? false
        let detail = "flood level \(f6(level)) vs training loss \(f6(train.loss)) and held-out loss \(held.map { f6($0.loss) } ?? "n/a")"
        if !ok {
            if !config.um.force { throw FinetuneError.uncalibrated(detail) }
            context.log("WARNING: uncalibrated (\(detail)); continuing because forced")
        } else {
            context.log("calibrated: \(detail)")
        }
        let atypical = config.um.atypicalOnly ? try AtypicalTable.read(estimateFolder.root + "/atypical.csv").atypicalIDs : nil
        return Flooding(xi: xi, beta: config.um.beta, atypicalIDs: atypical)
    }
}
