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
        /// Whether `stage` finished earlier from `input` with `stageConfig` (rank 0 decides).
        func reusable(_ stage: String, input: String?, stageConfig: RunConfig,
                      project: @escaping (RunConfig) -> RunConfig = { $0 }) throws -> Bool {
            guard options.resume else { return false }
            var flag: [Int64] = [context.isRoot && StageRecord.isComplete(RunFolder(config: config, stage: stage), inputWeights: input,
                                                                         config: stageConfig, project: project) ? 1 : 0]
            try context.comm.broadcast(&flag, root: 0)
            if flag[0] == 1 { context.log("\n=== \(stage): finished in an earlier run (stage.json); reusing its outputs ===") }
            return flag[0] == 1
        }
        let trainingConfig = SweepPlan.trainingConfig(config)
        /// Whether `local` holds on every rank (a file one rank cannot read must not send the
        /// ranks down different paths). Collective.
        func allAgree(_ local: Bool) throws -> Bool { try context.comm.allreduce(Int64(local ? 1 : 0), op: .min) == 1 }
        if context.isRoot {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            try AtomicFile.write(try config.yaml(), to: root + "/config.yaml")
            // A selection.json of an earlier sweep under this name must not describe this run.
            if !SweepPlan(config: config).isSweep, FileManager.default.fileExists(atPath: root + "/selection.json") {
                try FileManager.default.removeItem(atPath: root + "/selection.json")
            }
        }
        // 1. Train.
        var baseWeights = options.checkpoint ?? root + "/train/model.safetensors"
        if options.from <= .train && options.checkpoint == nil {
            if try !reusable("train", input: nil, stageConfig: SweepPlan.trainOnlyConfig(config), project: SweepPlan.trainOnlyConfig) {
                let outcome = try timed("train") { try TrainStage.run(config: config, context: context, options: .init(resume: options.resume)) }
                if outcome.status == .preempted { return .preempted(stage: "train") }
            }
            baseWeights = root + "/train/model.safetensors"
        }
        if try context.stopAgreed() { return stopped(before: "estimate-loss", context) }
        // 2. Estimate.
        var estimate: EstimateReport?
        if options.from <= .estimate {
            if try reusable("estimate", input: baseWeights, stageConfig: trainingConfig, project: SweepPlan.trainingConfig) {
                estimate = try EstimateReport.read(root + "/estimate/estimate.json")
            } else {
                estimate = try timed("estimate-loss") { try EstimateStage.run(config: config, context: context, checkpoint: baseWeights) }
            }
        } else {
            let e = try? EstimateReport.read(root + "/estimate/estimate.json")
            if try allAgree(e != nil) { estimate = e }
        }
        let calibrated = estimate?.calibrated ?? false
        let umAllowed = config.um.enabled && (calibrated || config.um.force || config.um.xi.contains { $0 > 0 } || !config.um.xiPositions.isEmpty)
        var skipReason: String?
        if !config.um.enabled {
            skipReason = "um.enabled is false (the reference's UM: false)"
            context.log("skipping UM and UMAP: \(skipReason!)")
        } else if !umAllowed {
            skipReason = estimate.map { "xi uncalibrated: \($0.calibrationNote)" } ?? "no estimate.json"
            context.log("skipping UM and UMAP: \(skipReason!)")
        }
        // 3-5. Fine-tuning: every cell of the sweep (the classic um, umap, ce_finetune without one).
        // The trained model's evaluations are keyed without the fine-tuning keys (a sweep that
        // gains a cell does not evaluate the baseline again).
        var models: [Model] = [Model(label: "baseline", weights: baseWeights, config: trainingConfig, cell: nil, xi: nil)]
        // The OOD-validation curve's kept epoch (train.ood_validation_every), beside the final model.
        let bestVal = root + "/train/best_val_epoch.safetensors"
        if try options.checkpoint == nil && config.train.oodValidationEvery > 0 && allAgree(FileManager.default.fileExists(atPath: bestVal)) {
            models.append(Model(label: "best_val_epoch", weights: bestVal, config: trainingConfig, cell: nil, xi: nil))
        }
        let plan = SweepPlan(config: config, includeUM: umAllowed, includeUMAP: umAllowed && !options.skipUMAP)
        if plan.isSweep {
            context.log("sweep: \(plan.cells.count) fine-tuning cells (\(plan.schedules.map(\.name).joined(separator: ", ")) x "
                + "\(plan.targets.map(\.tag).joined(separator: ", ")), each UM/UMAP cell with the CE control of its schedule)")
        }
        let titles: [FinetuneMethod: String] = [.um: "UM fine-tuning", .umap: "UMAP", .ce: "CE control"]
        var skippedCells: [String] = []
        for cell in plan.cells {
            let xi = try cell.xi.map { try $0.resolve(estimate, beta: config.um.beta) }
            // A sweep skips (and reports) a cell whose flood level is not strictly between the
            // estimate's training and held-out losses, instead of failing the whole sweep.
            if plan.isSweep, let xi, let e = estimate, !config.um.force {
                let level = xi / config.um.beta
                if !(e.trainLoss < level && level < e.heldoutLoss) {
                    context.log("skipping \(cell.label): flood level \(fmt(level, 4)) not strictly between the training loss "
                        + "\(fmt(e.trainLoss, 4)) and the held-out loss \(fmt(e.heldoutLoss, 4)) (um.force: true runs it anyway)")
                    skippedCells.append("\(cell.label) (level \(fmt(level, 4)))")
                    continue
                }
            }
            let cellConfig = SweepPlan.cellConfig(config, cell: cell, xi: xi)
            let stage = plan.isSweep ? cell.label : cell.method.stage
            let weights = RunFolder(config: config, stage: stage).root + "/model.safetensors"
            let title = plan.isSweep ? "\(titles[cell.method]!) \(cell.label)" + (xi.map { " (xi \(fmt($0, 4)) nats, \(cell.xi!))" } ?? "")
                : titles[cell.method]!
            if options.from <= cell.method.pipelineStage {
                if try context.stopAgreed() { return stopped(before: title, context) }
                if try !reusable(stage, input: baseWeights, stageConfig: cellConfig) {
                    do {
                        let o = try timed(title) {
                            try FinetuneStage.run(config: cellConfig, context: context,
                                                  options: .init(method: cell.method, baseWeights: baseWeights, resume: options.resume, stage: stage))
                        }
                        if o.status == .preempted { return .preempted(stage: stage) }
                    } catch let e as FinetuneError where plan.isSweep {
                        // The stage re-measures the losses (e.g. with estimate.augment) and refused
                        // the level: skip the cell, as above. Every rank measured the same losses.
                        context.log("skipping \(cell.label): \(e)")
                        skippedCells.append("\(cell.label) (refused by the fine-tuning stage's own calibration check)")
                        continue
                    }
                }
                models.append(Model(label: cell.label, weights: weights, config: cellConfig, cell: cell, xi: xi))
            } else if try allAgree(FileManager.default.fileExists(atPath: weights)) {
                models.append(Model(label: cell.label, weights: weights, config: cellConfig, cell: cell, xi: xi))
            }
        }
        // 6. Evaluate (a finished evaluation of the same weights and config is reused with --resume).
        let data = try TrainingData.load(config, file: context.configFile, comm: context.comm)
        let sets = try OODEvaluation.loadSets(config.evaluate, imageSize: config.model.imageSize, channels: config.model.inChannels,
                                              resize: config.data.resize, loading: config.data.loading, comm: context.comm)
        let selecting = plan.isSweep && config.train.oodValidationEvery > 0
        let validationSets = selecting
            ? try OODEvaluation.loadSets(config.evaluate, imageSize: config.model.imageSize, channels: config.model.inChannels, validation: true,
                                         resize: config.data.resize, loading: config.data.loading, comm: context.comm)
            : []
        var reports: [(label: String, report: OODReport)] = []
        var validation: [String: ValidationRecord] = [:]
        for m in models {
            if try context.stopAgreed() { return stopped(before: "evaluate \(m.label)", context) }
            let stage = "evaluate/\(m.label)"
            let folder = RunFolder(config: config, stage: stage)
            if selecting && m.cell != nil {
                validation[m.label] = try ValidationRecord.measure(config: m.config, context: context, label: m.label, weights: m.weights,
                                                                   data: data, sets: validationSets, folder: folder, xi: m.xi)
            }
            let project: (RunConfig) -> RunConfig = m.cell == nil ? { SweepPlan.trainingConfig($0) } : { $0 }
            if try reusable(stage, input: m.weights, stageConfig: m.config, project: project) {
                let r = try? OODReport.read(folder.reports + "/ood.json", settings: m.config.evaluate)
                if try allAgree(r != nil) {
                    reports.append((m.label, r!))
                    continue
                }
                context.log("evaluate/\(m.label): its ood.json is unreadable on some rank; evaluating again")
            }
            if context.isRoot { try StageRecord.remove(from: folder) }
            let r = try timed("evaluate \(m.label)") {
                try EvaluateStage.run(config: m.config, context: context, checkpoint: m.weights, stage: stage, label: m.label, data: data, sets: sets)
            }
            if context.isRoot { try StageRecord(stage: stage, inputWeights: m.weights, config: m.config, outputs: ["reports/ood.json"]).write(to: folder) }
            reports.append((m.label, r))
        }
        // 7. Summary.
        if !skippedCells.isEmpty {
            skipReason = (skipReason.map { $0 + "; " } ?? "") + "\(skippedCells.count) sweep cell(s) whose flood level is not strictly between "
                + "the training loss \(fmt(estimate?.trainLoss ?? .nan, 4)) and the held-out loss \(fmt(estimate?.heldoutLoss ?? .nan, 4)) "
                + "(um.force: true runs them): " + skippedCells.joined(separator: ", ")
        }
        var summary = Summary.markdown(config: config, reports: reports, estimate: estimate, skipReason: skipReason,
                                       timings: timings, worldSize: context.comm.worldSize)
        if plan.isSweep {
            let selection = Selection.make(plan: plan, validation: validation,
                                           score: (config.train.oodValidationScores.first ?? .energy).rawValue,
                                           ran: Set(models.compactMap { $0.cell?.label }))
            summary = Selection.markdown(selection, reports: reports) + "\n" + summary
            if context.isRoot { try selection.write(to: root + "/selection.json") }
        }
        if context.isRoot { try AtomicFile.write(summary, to: root + "/summary.md") }
        context.log("\n" + summary)
        context.log("wrote \(root)/summary.md")
        return .completed(reports)
    }

    /// A model the pipeline evaluates: its report label, weights, the config it was made with,
    /// and (for fine-tuning cells) the cell and its resolved xi in nats.
    struct Model {
        var label: String
        var weights: String
        var config: RunConfig
        var cell: SweepCell?
        var xi: Double?
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
        let selections = !SweepPlan(config: config).isSweep ? [] : zip(results, runRoots).compactMap { r, root in
            (try? Selection.read(root + "/selection.json")).map { (seed: r.seed, selection: $0, reports: r.reports) }
        }
        // The opening: UM and UMAP (the default rule's cells in a sweep) against the trained
        // model and the CE control, in plain words.
        let methods: [(label: String, control: String)] = selections.first.map { first in
            first.selection.picks.filter { $0.rule == "default" }.compactMap { p in p.control.map { (p.label, $0) } }
        } ?? [("um", "ce_finetune"), ("umap", "ce_finetune")]
        var md = Summary.seeds(config: config, results: results)
        let headline = Comparison.headline(runs: runs, methods: methods, kinds: runs.first?.scoreOrder ?? [])
        if let cut = md.range(of: "\n\n") { md.insert(contentsOf: "\n\n" + headline.trimmingCharacters(in: .newlines), at: cut.lowerBound) }
        if selections.isEmpty {
            md += "\n" + Comparison.markdown(runs: runs, title: "Paired differences over seeds")
            let detectors = Comparison.detectorTable(runs: runs)
            if !detectors.isEmpty { md += "\n## Detectors per model\n\n" + detectors }
        } else {
            // A sweep: the selection rules, then the regime map (every cell, paired by seed).
            md += "\n" + Selection.seedsMarkdown(selections)
            md += "\n## Regime map\n\nEvery cell against the baseline and the CE control of its schedule, paired by seed: mean change in "
                + "percentage points [95% t-interval over seeds], seeds improved; ** = the interval excludes zero. "
                + "`umtrain compare` over the run folders gives the full pairwise table.\n\n"
                + Comparison.regimeMap(runs: runs, kinds: runs.first?.scoreOrder ?? [], xi: Comparison.xiByLabel(runRoots: runRoots, labels: Set(runs.flatMap { $0.models.keys })))
        }
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
