import Foundation
import OODDetection

/// OOD evaluation of one model as a stage: every configured score on the ID test set and every
/// OOD set, with detectors fitted on the training ids (and tuned on validation data only), and
/// the reports: `<stage>/reports/` (ood.md, ood.csv, ood.json, scores/, plots, tuning.json) and
/// `reports/detector/` for `umtrain score`. Used by `umtrain evaluate` and `umtrain pipeline`.
public enum EvaluateStage {
    /// Collective. `data` and `sets` may be passed in when several models are evaluated on the
    /// same sets (the pipeline loads them once).
    /// - Parameters:
    ///   - stage: the folder under `<output_dir>/<name>/` (e.g. `evaluate/um`).
    ///   - label: the model's name in logs and report titles.
    /// - Throws: ``ConfigError`` and ``OODEvaluationError`` for missing data, weights or sets;
    ///   metric errors on non-finite scores; communicator errors.
    public static func run(config: RunConfig, context: StageContext, checkpoint: String, stage: String, label: String,
                           data preloaded: TrainingData? = nil, sets preloadedSets: [OODSet]? = nil) throws -> OODReport {
        let comm = context.comm
        let started = Date()
        let data = try preloaded ?? TrainingData.load(config, file: context.configFile, comm: comm)
        let sets = try preloadedSets ?? OODEvaluation.loadSets(config.evaluate, imageSize: config.model.imageSize,
                                                                channels: config.model.inChannels, resize: config.data.resize,
                                                                loading: config.data.loading, comm: comm)
        let model = try ModelLoader.load(config: config, checkpoint: checkpoint, comm: comm, convolution: context.convolution.algorithm)
        let validationSets = config.evaluate.tune
            ? try OODEvaluation.loadSets(config.evaluate, imageSize: config.model.imageSize, channels: config.model.inChannels,
                                         validation: true, resize: config.data.resize, loading: config.data.loading, comm: comm)
            : []
        let folder = RunFolder(config: config, stage: stage)
        if context.isRoot { try folder.create() }
        comm.phase = "evaluate \(label)"
        let report = try OODEvaluation.run(model: model, comm: comm, config: config, data: data, sets: sets, log: context.log,
                                           validationOOD: validationSets)
        let written = Date()
        try DetectorStore.write(report, config: config, to: folder.reports + "/detector", comm: comm)
        if context.isRoot {
            try OODEvaluation.write(report, to: folder.reports, title: "OOD evaluation: \(label)")
            try AtomicFile.write(try config.yaml(), to: folder.root + "/config.yaml")
        }
        let end = Date()
        context.log("\(label): ID accuracy \(pct(report.idAccuracy)); reports in \(folder.reports)/ "
            + "(stage \(fmt(end.timeIntervalSince(started), 1)) s, of which writing reports \(fmt(end.timeIntervalSince(written), 1)) s)")
        return report
    }
}
