import ArgumentParser
import Distributed
import Foundation
import OODDetection
import Training

/// `umtrain pipeline`: the whole method in one MPI job.
struct PipelineCommand: ParsableCommand {
    enum Stage: String, ExpressibleByArgument, CaseIterable, Comparable {
        case train, estimate, um, umap, ce, evaluate
        var order: Int { Self.allCases.firstIndex(of: self)! }
        static func < (a: Stage, b: Stage) -> Bool { a.order < b.order }
    }

    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "Train, estimate xi and the atypical mask, fine-tune with UM and UMAP (and the plain CE control), evaluate every OOD score on every OOD set, and write summary.md.",
        discussion: """
        Everything goes under runs/<name>/: train/, estimate/, um/, umap/, ce_finetune/, \
        evaluate/<baseline|um|umap|ce_finetune>/ and summary.md. --from STAGE reuses the outputs of \
        earlier stages (e.g. --from estimate uses runs/<name>/train/model.safetensors, or \
        --checkpoint FILE). If the estimate stage finds xi uncalibrated (not strictly between the \
        training and held-out losses) and um.force is false, UM and UMAP are skipped and summary.md \
        says why.
        """
    )

    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var configOptions: ConfigOptions

    @Option(help: ArgumentHelp("First stage to run: train, estimate, um, umap, ce or evaluate.", valueName: "stage"))
    var from: Stage = .train

    @Option(help: ArgumentHelp("Trained weights to start from instead of runs/<name>/train/model.safetensors.", valueName: "file"))
    var checkpoint: String?

    @Flag(help: "Skip the UMAP stage.")
    var skipUmap = false

    @Option(help: ArgumentHelp("Run the whole pipeline once per seed (e.g. 0,1,2) as runs/<name>-s<seed>/, then write runs/<name>/seeds-summary.md with the mean and spread over seeds.", valueName: "list"))
    var seeds: String?

    func validate() throws {
        if let seeds, parsedSeeds(seeds) == nil {
            throw ValidationError("--seeds must be a comma-separated list of integers, got '\(seeds)'.")
        }
    }

    func parsedSeeds(_ text: String) -> [Int]? {
        let v = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        return v.isEmpty || v.contains(nil) ? nil : v.map { $0! }
    }

    func run() throws {
        runOnRanks(runtime) { rt in
            let (config, notes) = try configOptions.load()
            rt.log(try rt.header(command: "pipeline"))
            for n in notes { rt.log("note: \(n)") }
            try preflight(config: config, file: configOptions.config ?? "<defaults>")
            guard let seedText = seeds, let list = parsedSeeds(seedText) else {
                _ = try runPipeline(config: config, rt: rt)
                return
            }
            var results: [(seed: Int, reports: [(String, OODReport)])] = []
            for seed in list {
                var c = config
                c.seed = seed
                c.name = config.name + "-s\(seed)"
                rt.log("\n##### seed \(seed): runs under \(c.outputDir)/\(c.name)/ #####")
                results.append((seed, try runPipeline(config: c, rt: rt)))
            }
            let md = Summary.seeds(config: config, results: results)
            let dir = config.outputDir + "/" + config.name
            if rt.isRoot {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                try AtomicFile.write(md, to: dir + "/seeds-summary.md")
            }
            rt.log("\n" + md)
            rt.log("wrote \(dir)/seeds-summary.md")
        }
    }

    /// Checks what later stages need before the first one starts, so a wrong path or an
    /// impossible setting fails in seconds, not after hours of training: the starting weights,
    /// the OOD set paths, and settings that only the estimate stage would refuse.
    /// - Throws: `ConfigError` / `OODEvaluationError` naming the key or option.
    func preflight(config: RunConfig, file: String) throws {
        if let checkpoint, !FileManager.default.fileExists(atPath: checkpoint) {
            throw ConfigError.invalidValue(file: file, key: "--checkpoint", expected: "an existing safetensors file", actual: "'\(checkpoint)' (missing)",
                                           hint: "give the path of trained weights (docs/import.md converts PyTorch checkpoints).")
        }
        if from <= .train && checkpoint == nil && config.train.epochs == 0 {
            throw ConfigError.invalidValue(file: file, key: "train.epochs", expected: "at least 1, or --checkpoint FILE",
                                           actual: "0 with no --checkpoint (the model would stay at its random initialisation)",
                                           hint: "configs that start from imported weights (e.g. imagenet-resnet50-umap.yaml) need --checkpoint; see docs/import.md.")
        }
        if from > .train && checkpoint == nil {
            let weights = config.outputDir + "/" + config.name + "/train/model.safetensors"
            if !FileManager.default.fileExists(atPath: weights) {
                throw ConfigError.invalidValue(file: file, key: "--from", expected: "a run whose train stage finished, or --checkpoint FILE",
                                               actual: "'\(from.rawValue)' but \(weights) is missing", hint: "run the train stage first, or pass --checkpoint.")
            }
        }
        let d = config.data
        if config.estimate.augment && !(d.randomCrop || d.horizontalFlip || d.randomResizedCrop) {
            throw ConfigError.invalidValue(file: file, key: "estimate.augment", expected: "false when no training augmentation is configured",
                                           actual: "true", hint: "enable data.random_crop, data.horizontal_flip or data.random_resized_crop, or set estimate.augment: false.")
        }
        if from <= .evaluate { try OODEvaluation.checkSetPaths(config.evaluate) }
    }

    /// One pipeline run (all stages) for `config`. Collective.
    func runPipeline(config: RunConfig, rt: Runtime) throws -> [(String, OODReport)] {
        let root = config.outputDir + "/" + config.name
        var timings: [(String, Double)] = []
        func timed<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
            let t0 = Date()
            rt.log("\n=== \(name) ===")
            let r = try body()
            timings.append((name, Date().timeIntervalSince(t0)))
            return r
        }
        if rt.isRoot {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            try AtomicFile.write(try config.yaml(), to: root + "/config.yaml")
        }
        // 1. Train.
        var baseWeights = checkpoint ?? root + "/train/model.safetensors"
        if from <= .train && checkpoint == nil {
            try timed("train") { try trainStage(config: config, rt: rt) }
            baseWeights = root + "/train/model.safetensors"
        }
        // 2. Estimate.
        var estimate: EstimateReport?
        if from <= .estimate {
            estimate = try timed("estimate-loss") { try runEstimate(config: config, checkpoint: baseWeights, rt: rt) }
        } else if let e = try? EstimateReport.read(root + "/estimate/estimate.json") {
            estimate = e
        }
        let calibrated = estimate?.calibrated ?? false
        let umAllowed = config.um.enabled && (calibrated || config.um.force || config.um.xi > 0)
        var skipReason: String?
        if !config.um.enabled {
            skipReason = "um.enabled is false (the reference's UM: false)"
            rt.log("skipping UM and UMAP: \(skipReason!)")
        } else if !umAllowed {
            skipReason = estimate.map { "xi uncalibrated: \($0.calibrationNote)" } ?? "no estimate.json"
            rt.log("skipping UM and UMAP: \(skipReason!)")
        }
        // 3-5. Fine-tuning.
        var models: [(label: String, weights: String)] = [("baseline", baseWeights)]
        if umAllowed && from <= .um {
            let o = try timed("UM fine-tuning") { try runFinetune(config: config, method: .um, checkpoint: baseWeights, estimatePath: nil, rt: rt) }
            models.append(("um", o.weights))
        } else if umAllowed, FileManager.default.fileExists(atPath: root + "/um/model.safetensors") {
            models.append(("um", root + "/um/model.safetensors"))
        }
        if umAllowed && !skipUmap && from <= .umap {
            let o = try timed("UMAP") { try runFinetune(config: config, method: .umap, checkpoint: baseWeights, estimatePath: nil, rt: rt) }
            models.append(("umap", o.weights))
        } else if umAllowed && !skipUmap, FileManager.default.fileExists(atPath: root + "/umap/model.safetensors") {
            models.append(("umap", root + "/umap/model.safetensors"))
        }
        if from <= .ce {
            let o = try timed("CE control") { try runFinetune(config: config, method: .ce, checkpoint: baseWeights, estimatePath: nil, rt: rt) }
            models.append(("ce_finetune", o.weights))
        } else if FileManager.default.fileExists(atPath: root + "/ce_finetune/model.safetensors") {
            models.append(("ce_finetune", root + "/ce_finetune/model.safetensors"))
        }
        // 6. Evaluate.
        let data = try TrainingData.load(config, file: configOptions.config ?? "<defaults>", comm: rt.comm)
        let sets = try OODEvaluation.loadSets(config.evaluate, imageSize: config.model.imageSize, channels: config.model.inChannels,
                                              resize: config.data.resize, loading: config.data.loadingMode, comm: rt.comm)
        var reports: [(String, OODReport)] = []
        for m in models {
            let r = try timed("evaluate \(m.label)") {
                try runEvaluation(config: config, checkpoint: m.weights, stage: "evaluate/\(m.label)", label: m.label, rt: rt,
                                  data: data, sets: sets)
            }
            reports.append((m.label, r))
        }
        // 7. Summary.
        let summary = Summary.markdown(config: config, reports: reports, estimate: estimate, skipReason: skipReason,
                                       timings: timings, worldSize: rt.worldSize)
        if rt.isRoot { try AtomicFile.write(summary, to: root + "/summary.md") }
        rt.log("\n" + summary)
        rt.log("wrote \(root)/summary.md")
        return reports
    }
}

/// Shared by `train` and `pipeline`.
func trainStage(config: RunConfig, rt: Runtime) throws {
    let data = try TrainingData.load(config, file: "config", comm: rt.comm)
    let folder = try rt.openStage(config: config, stage: "train")
    let model = try ModelFactory.make(config.model, seed: UInt64(config.seed))
    let trainer = try Trainer(config: config, comm: rt.comm, model: model, data: data, folder: folder, log: rt.log)
    try trainer.train()
    if rt.isRoot {
        let file = SafeTensorsFileWriter.model(model, config: config)
        try AtomicFile.write(try file.encode(), to: folder.root + "/model.safetensors")
    }
}

/// summary.md: baseline vs UM vs UMAP vs the plain fine-tuning control.
enum Summary {
    /// Mean and spread (sample standard deviation) over seeds of ID accuracy and the averaged
    /// metrics, per score and model.
    static func seeds(config: RunConfig, results: [(seed: Int, reports: [(String, OODReport)])]) -> String {
        func ms(_ v: [Double]) -> String {
            let finite = v.filter(\.isFinite)
            guard !finite.isEmpty else { return "n/a" }
            let m = finite.reduce(0, +) / Double(finite.count)
            let sd = finite.count > 1 ? (finite.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(finite.count - 1)).squareRoot() : 0
            return String(format: "%.2f ± %.2f", 100 * m, 100 * sd)
        }
        var s = "# Summary over seeds: \(config.name)\n\n"
        s += "Seeds \(results.map { String($0.seed) }.joined(separator: ", ")) (runs \(config.name)-s<seed>/). "
            + "Mean ± sample standard deviation over seeds, in percent; metrics averaged over the real OOD sets "
            + "(ID positive; FPR95 \(results.first?.reports.first?.1.fprMode.label ?? "strict")).\n\n"
        let kinds = results.first?.reports.first?.1.scoreOrder ?? []
        let models = results.first?.reports.map(\.0) ?? []
        s += "| score | model | ID acc | AUROC | AUPR-In | FPR95 | seeds |\n|---|---|---|---|---|---|---|\n"
        for k in kinds {
            for model in models {
                var acc: [Double] = [], auroc: [Double] = [], aupr: [Double] = [], fpr: [Double] = []
                for r in results {
                    guard let rep = r.reports.first(where: { $0.0 == model })?.1, let m = rep.averages[k] else { continue }
                    acc.append(rep.idAccuracy); auroc.append(m.auroc); aupr.append(m.auprIn); fpr.append(m.fpr95)
                }
                guard !acc.isEmpty else { continue }
                s += "| \(k) | \(model) | \(ms(acc)) | \(ms(auroc)) | \(ms(aupr)) | \(ms(fpr)) | \(acc.count) |\n"
            }
        }
        s += "\nModels missing from a seed (UM/UMAP skipped as uncalibrated) are averaged over the seeds that have them; see each run's summary.md.\n"
        return s
    }

    static func markdown(config: RunConfig, reports: [(String, OODReport)], estimate: EstimateReport?, skipReason: String?,
                         timings: [(String, Double)], worldSize: Int) -> String {
        func p2(_ x: Double) -> String { x.isFinite ? String(format: "%.2f", 100 * x) : "n/a" }
        var s = "# Summary: \(config.name)\n\n"
        s += "Model \(config.model.arch), ID data format \(config.data.format) (\(config.data.trainImages)); \(worldSize) MPI rank(s). "
        if let e = estimate {
            s += "Loss constraint xi = \(String(format: "%.4f", e.xi)) nats (median of \(e.ratios.first { $0.keepRatio == e.keepRatio }?.xiPerMask.count ?? 0) masks at keep \(e.keepRatio)); "
                + "training loss \(String(format: "%.4f", e.trainLoss)), held-out loss \(String(format: "%.4f", e.heldoutLoss)); "
                + "\(e.atypicalCount) atypical samples (\(e.rule)).\n\n"
        }
        if let r = skipReason { s += "**UM and UMAP were skipped:** \(r)\n\n" }
        let mode = reports.first?.1.fprMode ?? .strict
        s += "Metrics in percent, averaged (unweighted) over the real OOD sets; ID is the positive class for AUROC and AUPR-In; "
            + "FPR95: \(mode.label). Synthetic noise sets are shown apart.\n\n"
        let kinds = reports.first?.1.scoreOrder ?? []
        s += "| score | model | ID acc | AUROC | AUPR-In | FPR95 |\n|---|---|---|---|---|---|\n"
        for k in kinds {
            for (label, r) in reports {
                guard let m = r.averages[k] else { continue }
                s += "| \(k) | \(label) | \(p2(r.idAccuracy)) | \(p2(m.auroc)) | \(p2(m.auprIn)) | \(p2(m.fpr95)) |\n"
            }
        }
        let synthetic = Set(reports.first?.1.rows.filter(\.synthetic).map(\.set) ?? [])
        if !synthetic.isEmpty {
            s += "\nSynthetic sets (\(synthetic.sorted().joined(separator: ", "))), AUROC / FPR95 per model, Energy score:\n\n"
            s += "| model | " + synthetic.sorted().joined(separator: " | ") + " |\n|---|" + synthetic.map { _ in "---|" }.joined() + "\n"
            for (label, r) in reports {
                let cells = synthetic.sorted().map { name -> String in
                    guard let row = r.rows.first(where: { $0.set == name && $0.score == "energy" }) else { return "n/a" }
                    return "\(p2(row.metrics.auroc)) / \(p2(row.metrics.fpr95))"
                }
                s += "| \(label) | " + cells.joined(separator: " | ") + " |\n"
            }
        }
        s += "\nStage wall times: " + timings.map { "\($0.0) \(String(format: "%.0f", $0.1)) s" }.joined(separator: ", ") + ".\n"
        s += "\nPer-set tables, per-sample scores and plots: evaluate/<model>/reports/.\n"
        return s
    }
}
