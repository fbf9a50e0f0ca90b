import ArgumentParser
import Distributed
import Foundation
import NeuralNetwork
import SafeTensors
import Training
import UnleashingMask

/// `umtrain finetune`: UM (flooding), UMAP (learned masks) or the plain cross-entropy control.
struct FinetuneCommand: ParsableCommand {
    enum Method: String, ExpressibleByArgument, CaseIterable { case um, umap, ce }

    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "Fine-tune a trained model with UM (flooding at xi), UMAP (learned weight masks) or plain cross-entropy (control).",
        discussion: """
        UM: loss = |CE_B - beta*xi| + beta*xi on the GLOBAL batch mean CE_B (each rank allreduces \
        (loss sum, count) before choosing the sign). xi comes from --xi, um.xi, or the estimate \
        stage's estimate.json; UM refuses an xi that is not strictly between the training loss and \
        the held-out loss unless --force. UMAP: score-masked conv and linear layers keeping \
        umap.keep_ratio (alias prune_rate: the fraction KEPT), same objective. ce: the same \
        schedule with plain cross-entropy, the control. Schedule: finetune.epochs/lr/schedule; \
        batch size, momentum, weight decay and BN mode from train. Writes runs/<name>/<um|umap|ce_finetune>/.
        """
    )

    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var configOptions: ConfigOptions

    @Option(help: ArgumentHelp("um, umap or ce.", valueName: "method"))
    var method: Method = .um

    @Option(help: ArgumentHelp("Trained weights (.safetensors).", valueName: "file"))
    var checkpoint: String

    @Option(help: ArgumentHelp("Loss constraint in nats (overrides um.xi and estimate.json).", valueName: "nats"))
    var xi: Double?

    @Option(help: ArgumentHelp("estimate.json to read xi from (default runs/<name>/estimate/estimate.json).", valueName: "file"))
    var estimate: String?

    @Flag(help: "Use xi even when it is not strictly between the training and held-out losses.")
    var force = false

    func run() throws {
        runOnRanks(runtime) { rt in
            var opts = configOptions
            if let xi { opts.overrides.append("um.xi=\(xi)") }
            if force { opts.overrides.append("um.force=true") }
            let (config, notes) = try opts.load()
            rt.log(try rt.header(command: "finetune --method \(method.rawValue)"))
            for n in notes { rt.log("note: \(n)") }
            _ = try runFinetune(config: config, method: method, checkpoint: checkpoint, estimatePath: estimate, rt: rt)
        }
    }
}

/// Result of a fine-tuning stage.
struct FinetuneOutcome {
    var stageFolder: RunFolder
    var weights: String
    var testAccuracy: Double
}

/// Errors of the fine-tuning stage.
enum FinetuneError: Error, CustomStringConvertible {
    case uncalibrated(String)
    var description: String {
        switch self {
        case .uncalibrated(let m):
            return "refusing UM: \(m). Hint: re-estimate with a larger estimate.keep_ratio, or pass --force (um.force: true) to use it anyway."
        }
    }
}

/// The config with the fine-tuning schedule in place of the training one.
func finetuneConfig(_ config: RunConfig) -> RunConfig {
    var c = config
    c.train.epochs = config.finetune.epochs
    c.train.lr = config.finetune.lr
    c.train.schedule = config.finetune.schedule
    c.train.warmupEpochs = config.finetune.warmupEpochs
    c.train.maxSteps = 0
    return c
}

func runFinetune(config: RunConfig, method: FinetuneCommand.Method, checkpoint: String, estimatePath: String?,
                 rt: Runtime) throws -> FinetuneOutcome {
    let stage = method == .ce ? "ce_finetune" : method.rawValue
    // Inputs first, so a failed launch writes nothing.
    let data = try TrainingData.load(config, file: "config", comm: rt.comm)
    let model = try ModelLoader.load(config: config, checkpoint: checkpoint, comm: rt.comm)
    let folder = try rt.openStage(config: config, stage: stage)
    let ft = finetuneConfig(config)
    let quietLog: (String) -> Void = { _ in }
    let probe = try Trainer(config: ft, comm: rt.comm, model: model, data: data, folder: nil, log: quietLog)
    let before = try probe.evaluate(data.testSet, ids: data.testSet.ids)
    rt.log("before \(stage): test accuracy \(pct(before.accuracy)) (loss \(f6(before.loss)))")

    var transform: LossTransform?
    var umap: UMAPState?
    if method == .um || method == .umap {
        var xi = config.um.xi
        var estimateReport: EstimateReport?
        let path = estimatePath ?? RunFolder(config: config, stage: "estimate").root + "/estimate.json"
        if xi == 0 {
            estimateReport = try EstimateReport.read(path)
            xi = estimateReport!.xi
            rt.log("xi \(f6(xi)) from \(path) (keep \(estimateReport!.keepRatio), \(estimateReport!.rule))")
        } else {
            rt.log("xi \(f6(xi)) given explicitly")
        }
        // Calibration: xi must lie strictly between the training loss and the held-out loss.
        let train = try Evaluator.evaluate(model: model, comm: rt.comm, data: data, dataset: data.trainSet, ids: data.trainIds,
                                           batchSize: config.train.evalBatchSize)
        let held = data.validationIds.isEmpty ? nil
            : try Evaluator.evaluate(model: model, comm: rt.comm, data: data, dataset: data.trainSet, ids: data.validationIds,
                                     batchSize: config.train.evalBatchSize)
        let level = config.um.beta * xi
        let ok = held.map { train.loss < level && level < $0.loss } ?? false
        let detail = "flood level \(f6(level)) vs training loss \(f6(train.loss)) and held-out loss \(held.map { f6($0.loss) } ?? "n/a")"
        if !ok {
            if config.um.force {
                rt.log("WARNING: uncalibrated (\(detail)); continuing because forced")
            } else {
                throw FinetuneError.uncalibrated(detail)
            }
        } else {
            rt.log("calibrated: \(detail)")
        }
        var atypical: Set<Int64>?
        if config.um.atypicalOnly {
            atypical = try readAtypicalIDs(RunFolder(config: config, stage: "estimate").root + "/atypical.csv")
        }
        transform = Flooding(xi: xi, beta: config.um.beta, atypicalIDs: atypical)
        if method == .umap {
            let options = UMAPOptions(keepRatio: config.umap.keepRatio, modelWise: config.umap.selection == "model",
                                      freezeWeights: config.umap.freezeWeights, nonAffineBN: config.umap.nonAffineBN)
            umap = try UMAPState(model: model, options: options, seed: UInt64(config.seed), comm: rt.comm)
            rt.log("UMAP: \(umap!.layerWeights.count) score-masked layers keeping \(config.umap.keepRatio) "
                + "(\(config.umap.selection)-wise), weights \(config.umap.freezeWeights ? "frozen" : "trained jointly")")
        }
    }
    let trainer = try Trainer(config: ft, comm: rt.comm, model: model, data: data, folder: folder, log: rt.log,
                              hooks: umap)
    trainer.lossTransform = transform
    rt.log("fine-tuning schedule: \(ft.train.epochs) epochs, lr \(ft.train.lr), \(ft.train.schedule)")
    try trainer.train()
    let after = try trainer.evaluate(data.testSet, ids: data.testSet.ids)
    let weights = folder.root + "/model.safetensors"
    if let umap {
        try umap.checkMasksAcrossRanks()
        umap.exportDense()
    }
    if rt.isRoot {
        let file = SafeTensorsFile(records: StateDict.records(of: model), metadata: ModelFactory.metadata(config.model))
        try AtomicFile.write(try file.encode(), to: weights)
    }
    rt.log("after \(stage): test accuracy \(pct(after.accuracy)) (loss \(f6(after.loss))); was \(pct(before.accuracy))")
    rt.log("weights: \(weights)")
    return FinetuneOutcome(stageFolder: folder, weights: weights, testAccuracy: after.accuracy)
}

func readAtypicalIDs(_ path: String) throws -> Set<Int64> {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
        throw ConfigError.invalidValue(file: path, key: "um.atypical_only", expected: "atypical.csv from estimate-loss",
                                       actual: "missing", hint: "run estimate-loss first")
    }
    var ids = Set<Int64>()
    for line in text.split(separator: "\n").dropFirst() {
        let f = line.split(separator: ",")
        if f.count == 7, f[6] == "1", let id = Int64(f[0]) { ids.insert(id) }
    }
    return ids
}

func f6(_ x: Double) -> String { String(format: "%.6f", x) }
func pct(_ x: Double) -> String { String(format: "%.2f%%", 100 * x) }
func fmtf(_ x: Double, _ d: Int) -> String { String(format: "%.\(d)f", x) }
