import Foundation

/// The whole method in one MPI job: train, estimate xi and the atypical mask, fine-tune with UM,
/// UMAP and the cross-entropy control, evaluate every model, write summary.md.
public enum Pipeline {
    /// The stages in order (`--from`).
    public enum Stage: String, CaseIterable, Comparable, Sendable {
        case train, estimate, um, umap, ce, evaluate
        var order: Int { Self.allCases.firstIndex(of: self)! }
        public static func < (a: Stage, b: Stage) -> Bool { a.order < b.order }
    }

    public struct Options: Sendable {
        /// First stage to run; earlier stages' outputs are reused.
        public var from = Stage.train
        /// Trained weights to start from instead of `<run>/train/model.safetensors`.
        public var checkpoint: String?
        public var skipUMAP = false
        /// Continue a stopped run: finished stages (stage.json made from the same weights and
        /// config) are reused, an interrupted one continues from its newest checkpoint.
        public var resume = false
        public init() {}
    }

    /// How a pipeline run ended.
    public enum Outcome {
        /// Every stage ran: the evaluation report of each model (baseline, best_val_epoch, um,
        /// umap, ce_finetune).
        case completed([(label: String, report: OODReport)])
        /// A stop request (SIGTERM/SIGUSR1) ended the run after `stage` wrote its checkpoint or
        /// between stages; `--resume` continues.
        case preempted(stage: String)
    }

    /// Checks what later stages need before the first one starts, so a wrong path or an
    /// impossible setting fails in seconds, not after hours of training: the starting weights,
    /// the OOD set paths, and settings that only the estimate stage would refuse.
    /// - Throws: ``ConfigError`` / ``OODEvaluationError`` naming the key or option.
    public static func preflight(config: RunConfig, options: Options, file: String) throws {
        if let checkpoint = options.checkpoint, !FileManager.default.fileExists(atPath: checkpoint) {
            throw ConfigError.invalidValue(file: file, key: "--checkpoint", expected: "an existing safetensors file", actual: "'\(checkpoint)' (missing)",
                                           hint: "give the path of trained weights (docs/import.md converts PyTorch checkpoints).")
        }
        if options.from <= .train && options.checkpoint == nil && config.train.epochs == 0 {
            throw ConfigError.invalidValue(file: file, key: "train.epochs", expected: "at least 1, or --checkpoint FILE",
                                           actual: "0 with no --checkpoint (the model would stay at its random initialisation)",
                                           hint: "configs that start from imported weights (e.g. imagenet-resnet50-umap.yaml) need --checkpoint; see docs/import.md.")
        }
        if options.from > .train && options.checkpoint == nil {
            let weights = RunFolder(config: config, stage: "train").root + "/model.safetensors"
            if !FileManager.default.fileExists(atPath: weights) {
                throw ConfigError.invalidValue(file: file, key: "--from", expected: "a run whose train stage finished, or --checkpoint FILE",
                                               actual: "'\(options.from.rawValue)' but \(weights) is missing", hint: "run the train stage first, or pass --checkpoint.")
            }
        }
        if config.estimate.augment && !config.data.augments {
            throw ConfigError.invalidValue(file: file, key: "estimate.augment", expected: "false when no training augmentation is configured",
                                           actual: "true", hint: "enable data.random_crop, data.horizontal_flip or data.random_resized_crop, or set estimate.augment: false.")
        }
        if options.from <= .evaluate {
            let curve = options.from <= .train && options.checkpoint == nil && config.train.oodValidationEvery > 0
            try OODEvaluation.checkSetPaths(config.evaluate, validation: config.evaluate.tune || curve)
        }
    }

    /// One pipeline run (all stages) for `config`, under `<output_dir>/<name>/`. Collective.
    ///
    /// A stop request (SIGTERM/SIGUSR1 on any rank, e.g. forwarded by mpirun) ends a training
    /// stage after its checkpoint, or the run at the next stage boundary; no later stage runs.
    /// - Throws: every stage's errors.
    public static func run(config: RunConfig, context: StageContext, options: Options) throws -> Outcome {
        let root = config.outputDir + "/" + config.name
        var timings: [(String, Double)] = []
        func timed<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
            let t0 = Date()
            context.log("\n=== \(name) ===")
            let r = try body()
            timings.append((name, Date().timeIntervalSince(t0)))
            return r
        }
        /// Whether `stage` finished earlier from `input` with this config (rank 0 decides).
        func reusable(_ stage: String, input: String?) throws -> Bool {
            guard options.resume else { return false }
            var flag: [Int64] = [context.isRoot && StageRecord.isComplete(RunFolder(config: config, stage: stage), inputWeights: input,
                                                                         config: config) ? 1 : 0]
            try context.comm.broadcast(&flag, root: 0)
            if flag[0] == 1 { context.log("\n=== \(stage): finished in an earlier run (stage.json); reusing its outputs ===") }
            return flag[0] == 1
        }
        if context.isRoot {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            try AtomicFile.write(try config.yaml(), to: root + "/config.yaml")
        }
        // 1. Train.
        var baseWeights = options.checkpoint ?? root + "/train/model.safetensors"
        if options.from <= .train && options.checkpoint == nil {
            if try !reusable("train", input: nil) {
                let outcome = try timed("train") { try TrainStage.run(config: config, context: context, options: .init(resume: options.resume)) }
                if outcome.status == .preempted { return .preempted(stage: "train") }
            }
            baseWeights = root + "/train/model.safetensors"
        }
        if try context.stopAgreed() { return stopped(before: "estimate-loss", context) }
        // 2. Estimate.
        var estimate: EstimateReport?
        if options.from <= .estimate {
            if try reusable("estimate", input: baseWeights) {
                estimate = try EstimateReport.read(root + "/estimate/estimate.json")
            } else {
                estimate = try timed("estimate-loss") { try EstimateStage.run(config: config, context: context, checkpoint: baseWeights) }
            }
        } else if let e = try? EstimateReport.read(root + "/estimate/estimate.json") {
            estimate = e
        }
        let calibrated = estimate?.calibrated ?? false
        let umAllowed = config.um.enabled && (calibrated || config.um.force || config.um.xi > 0)
        var skipReason: String?
        if !config.um.enabled {
            skipReason = "um.enabled is false (the reference's UM: false)"
            context.log("skipping UM and UMAP: \(skipReason!)")
        } else if !umAllowed {
            skipReason = estimate.map { "xi uncalibrated: \($0.calibrationNote)" } ?? "no estimate.json"
            context.log("skipping UM and UMAP: \(skipReason!)")
        }
        // 3-5. Fine-tuning.
        var models: [(label: String, weights: String)] = [("baseline", baseWeights)]
        // The OOD-validation curve's kept epoch (train.ood_validation_every), beside the final model.
        let bestVal = root + "/train/best_val_epoch.safetensors"
        if options.checkpoint == nil && config.train.oodValidationEvery > 0 && FileManager.default.fileExists(atPath: bestVal) {
            models.append(("best_val_epoch", bestVal))
        }
        let finetunes: [(method: FinetuneMethod, stage: Stage, title: String, label: String, enabled: Bool)] = [
            (.um, .um, "UM fine-tuning", "um", umAllowed),
            (.umap, .umap, "UMAP", "umap", umAllowed && !options.skipUMAP),
            (.ce, .ce, "CE control", "ce_finetune", true),
        ]
        for f in finetunes where f.enabled {
            let weights = RunFolder(config: config, stage: f.method.stage).root + "/model.safetensors"
            if options.from <= f.stage {
                if try context.stopAgreed() { return stopped(before: f.title, context) }
                if try !reusable(f.method.stage, input: baseWeights) {
                    let o = try timed(f.title) {
                        try FinetuneStage.run(config: config, context: context,
                                              options: .init(method: f.method, baseWeights: baseWeights, resume: options.resume))
                    }
                    if o.status == .preempted { return .preempted(stage: f.method.stage) }
                }
                models.append((f.label, weights))
            } else if FileManager.default.fileExists(atPath: weights) {
                models.append((f.label, weights))
            }
        }
        // 6. Evaluate.
        let data = try TrainingData.load(config, file: context.configFile, comm: context.comm)
        let sets = try OODEvaluation.loadSets(config.evaluate, imageSize: config.model.imageSize, channels: config.model.inChannels,
                                              resize: config.data.resize, loading: config.data.loading, comm: context.comm)
        var reports: [(label: String, report: OODReport)] = []
        for m in models {
            if try context.stopAgreed() { return stopped(before: "evaluate \(m.label)", context) }
            let r = try timed("evaluate \(m.label)") {
                try EvaluateStage.run(config: config, context: context, checkpoint: m.weights, stage: "evaluate/\(m.label)",
                                      label: m.label, data: data, sets: sets)
            }
            reports.append((m.label, r))
        }
        // 7. Summary.
        let summary = Summary.markdown(config: config, reports: reports, estimate: estimate, skipReason: skipReason,
                                       timings: timings, worldSize: context.comm.worldSize)
        if context.isRoot { try AtomicFile.write(summary, to: root + "/summary.md") }
        context.log("\n" + summary)
        context.log("wrote \(root)/summary.md")
        return .completed(reports)
    }

    static func stopped(before stage: String, _ context: StageContext) -> Outcome {
        context.log("stop requested (\(context.stopRequest.reason.isEmpty ? "on another rank" : context.stopRequest.reason)): "
            + "stopping before \(stage); every finished stage is kept; re-run with --resume to continue")
        return .preempted(stage: stage)
    }

    /// The pipeline once per seed, as `<name>-s<seed>/`, then `<name>/seeds-summary.md` with the
    /// mean and spread over seeds. Collective. Stops at the first pre-empted seed.
    public static func runSeeds(_ seeds: [Int], config: RunConfig, context: StageContext, options: Options) throws -> Outcome {
        var results: [(seed: Int, reports: [(label: String, report: OODReport)])] = []
        for seed in seeds {
            var c = config
            c.seed = seed
            c.name = config.name + "-s\(seed)"
            context.log("\n##### seed \(seed): runs under \(c.outputDir)/\(c.name)/ #####")
            switch try run(config: c, context: context, options: options) {
            case .completed(let reports): results.append((seed, reports))
            case .preempted(let stage): return .preempted(stage: "seed \(seed) \(stage)")
            }
        }
        let runs = results.map { Comparison.Run(name: config.name + "-s\($0.seed)", reports: $0.reports) }
        let dir = config.outputDir + "/" + config.name
        let runRoots = results.map { config.outputDir + "/" + config.name + "-s\($0.seed)" }
        var md = Summary.seeds(config: config, results: results) + "\n" + Comparison.markdown(runs: runs, title: "Paired differences over seeds")
        if config.train.oodValidationEvery > 0 {
            md += "\n" + Summary.bestValidationEpochs(seeds: results.map(\.seed), runRoots: runRoots, epochs: config.train.epochs)
        }
        if context.isRoot {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try AtomicFile.write(md, to: dir + "/seeds-summary.md")
            if config.train.oodValidationEvery > 0, let kind = config.train.oodValidationScores.first {
                try AtomicFile.write(Summary.validationCurves(seeds: results.map(\.seed), runRoots: runRoots, score: kind, title: config.name),
                                     to: dir + "/seeds-ood-validation.svg")
            }
        }
        context.log("\n" + md)
        context.log("wrote \(dir)/seeds-summary.md")
        return .completed(results.last?.reports ?? [])
    }
}
