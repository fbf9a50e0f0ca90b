import Foundation

/// UM stage 1 as a stage: loads the data and the trained weights, runs ``LossEstimation`` and
/// writes `estimate/` (estimate.json, atypical.csv, reports/loss_histogram.svg, stage.json).
/// Used by `umtrain estimate-loss` and `umtrain pipeline`.
public enum EstimateStage {
    /// Collective.
    /// - Parameter checkpoint: the trained weights.
    /// - Returns: the report (also written as estimate.json).
    /// - Throws: ``ConfigError`` for missing data or weights (before anything is written),
    ///   estimation and communicator errors.
    public static func run(config: RunConfig, context: StageContext, checkpoint: String) throws -> EstimateReport {
        // Inputs first, so a failed launch writes nothing.
        let data = try TrainingData.load(config, file: context.configFile, comm: context.comm)
        let model = try ModelLoader.load(config: config, checkpoint: checkpoint, comm: context.comm,
                                         convolution: context.convolution.algorithm)
        let folder = try context.openStage(config: config, stage: "estimate", fresh: true)
        context.comm.phase = "estimate-loss"
        let (report, table) = try LossEstimation.run(config: config, comm: context.comm, model: model, data: data, log: context.log)
        if context.isRoot {
            try EstimateArtifacts.write(report, table, to: folder)
            try StageRecord(stage: "estimate", inputWeights: checkpoint, config: SweepPlan.trainingConfig(config),
                            outputs: ["estimate.json", "atypical.csv"]).write(to: folder)
        }
        context.log(EstimateArtifacts.calibrationTable(report))
        context.log("wrote \(folder.root)/estimate.json, atypical.csv, reports/loss_histogram.svg")
        return report
    }
}
