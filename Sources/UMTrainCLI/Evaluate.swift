import ArgumentParser
import CommandSupport
import Foundation
import OODDetection
import Datasets
import Training

/// `umtrain evaluate`: OOD scores and metrics for one model.
struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Score the ID test set and every OOD set (MSP, MaxLogit, Energy, ODIN, Mahalanobis, KNN, ReAct) and report AUROC, AUPR-In/Out and FPR95.",
        discussion: """
        Conventions (docs/metrics.md): every score is higher = more in-distribution; ID is the \
        positive class for AUROC and AUPR-In; AUPR-Out uses OOD as positive with negated scores; \
        FPR95 mode from evaluate.fpr_mode (strict | reference | openood) is printed with every table. \
        OOD sets come from evaluate.ood_manifest (launch/prepare-data.sh) and evaluate.ood_sets; sets \
        marked synthetic are listed apart and never averaged in. Detectors are fitted on the training \
        ids (never the test sets). Writes runs/<name>/<stage>/reports/: ood.md, ood.csv, ood.json, \
        scores/*.csv (per-sample scores), roc_<score>.svg and hist_<score>.svg. Results are identical \
        for any number of ranks.
        """
    )

    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var configOptions: ConfigOptions

    @Option(help: ArgumentHelp("Weights to evaluate (.safetensors).", valueName: "file"))
    var checkpoint: String

    @Option(help: ArgumentHelp("Stage folder name under runs/<name>/.", valueName: "stage"))
    var stage = "evaluate"

    func run() throws {
        runOnRanks(runtime) { rt in
            let (config, notes) = try configOptions.load()
            rt.log(try rt.header(command: "evaluate"))
            for n in notes { rt.log("note: \(n)") }
            let report = try EvaluateStage.run(config: config, context: rt.stageContext(configFile: configOptions.file),
                                               checkpoint: checkpoint, stage: stage, label: stage)
            rt.log(OODEvaluation.markdown(report, title: "OOD evaluation (\(checkpoint))"))
        }
    }
}

/// `umtrain score`: score new data with a saved detector.
struct ScoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score",
        abstract: "Score new inputs (an IDX image file or a folder of JPEG/PNG images) with a model and the detector state saved by `umtrain evaluate`.",
        discussion: """
        Writes one line per input: id, then one column per score (higher = more in-distribution), \
        in the settings the evaluation used (tuned or not); the same format as evaluate's \
        reports/scores/<set>.csv. The detector folder is runs/<name>/<stage>/reports/detector/.
        """
    )

    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var configOptions: ConfigOptions

    @Option(help: ArgumentHelp("Model weights (.safetensors).", valueName: "file"))
    var checkpoint: String

    @Option(help: ArgumentHelp("Detector folder written by evaluate (reports/detector).", valueName: "dir"))
    var detector: String

    @Option(help: ArgumentHelp("IDX image file or folder of JPEG/PNG images.", valueName: "path"))
    var input: String

    @Option(help: ArgumentHelp("Output CSV (default: stdout).", valueName: "file"))
    var output: String?

    func run() throws {
        runOnRanks(runtime) { rt in
            let (config, _) = try configOptions.load()
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: input, isDirectory: &isFolder) else {
                throw ConfigError.invalidValue(file: "command line", key: "--input", expected: "an IDX image file or a folder of JPEG/PNG images",
                                               actual: "'\(input)' (missing)", hint: "check the path.")
            }
            if !isFolder.boolValue, ["jpg", "jpeg", "png"].contains((input as NSString).pathExtension.lowercased()) {
                throw ConfigError.invalidValue(file: "command line", key: "--input", expected: "an IDX image file or a folder of JPEG/PNG images",
                                               actual: "the single image '\(input)'", hint: "put the image(s) in a folder and pass the folder.")
            }
            var e = config.evaluate
            e.oodManifest = ""
            e.oodSets = [OODSetConfig(name: "input", images: input, synthetic: false)]
            let sets = try OODEvaluation.loadSets(e, imageSize: config.model.imageSize, channels: config.model.inChannels,
                                                  resize: config.data.resize, loading: config.data.loading, comm: rt.comm)
            let model = try ModelLoader.load(config: config, checkpoint: checkpoint, comm: rt.comm, convolution: rt.convolution.algorithm)
            let (fitted, settings) = try DetectorStore.read(detector, model: model, rank: rt.comm.rank, worldSize: rt.comm.worldSize)
            let normalizer = ChannelNormalizer(mean: config.data.mean.map(Float.init), std: config.data.std.map(Float.init))
            let scores = try DetectorStore.score(model: model, comm: rt.comm, dataset: sets[0].dataset, normalizer: normalizer,
                                                 fitted: fitted, settings: settings)
            guard rt.isRoot else { return }
            let text = scores.csv(columns: settings.scores)
            if let output { try AtomicFile.write(text, to: output) } else { print(text, terminator: "") }
        }
    }
}
