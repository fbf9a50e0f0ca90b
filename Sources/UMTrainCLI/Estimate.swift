import ArgumentParser
import CommandSupport
import Foundation
import Training

/// `umtrain estimate-loss`: UM stage 1.
struct EstimateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "estimate-loss",
        abstract: "Estimate the loss constraint xi and the atypical-sample mask (UM stage 1) from a trained model.",
        discussion: """
        Applies seeded random weight masks (each conv and the final linear keep estimate.keep_ratio of \
        their weights), runs the model in inference mode over the training ids, gathers per-sample \
        losses by sample id and derives xi = the mean masked loss (Double, id order: bitwise identical \
        for any world size). With several masks and kept fractions it reports the mean, median and \
        spread of xi per fraction, next to the unmasked training loss and the held-out (validation \
        split) loss, and recommends the median xi of estimate.keep_ratio. Writes runs/<name>/estimate/: \
        estimate.json, atypical.csv (id,label,loss,masked_loss,predicted,masked_predicted,atypical) and \
        reports/loss_histogram.svg.
        """
    )

    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var configOptions: ConfigOptions

    @Option(help: ArgumentHelp("Trained weights (.safetensors).", valueName: "file"))
    var checkpoint: String

    @Option(help: ArgumentHelp("Random masks per kept fraction (overrides estimate.masks).", valueName: "K"))
    var masks: Int?

    @Option(name: .customLong("keep-ratios"), help: ArgumentHelp("Kept fractions to try, e.g. 0.99,0.98,0.965.", valueName: "list"))
    var keepRatios: String?

    @Option(help: ArgumentHelp("Atypical rule: \(AtypicalRuleName.validValues) (overrides estimate.rule).", valueName: "rule"))
    var rule: String?

    func run() throws {
        runOnRanks(runtime) { rt in
            var opts = configOptions
            if let masks { opts.overrides.append("estimate.masks=\(masks)") }
            if let keepRatios { opts.overrides.append("estimate.keep_ratios=[\(keepRatios)]") }
            if let rule { opts.overrides.append("estimate.rule=\(rule)") }
            let (config, notes) = try opts.load()
            rt.log(try rt.header(command: "estimate-loss"))
            for n in notes { rt.log("note: \(n)") }
            let report = try EstimateStage.run(config: config, context: rt.stageContext(configFile: opts.file), checkpoint: checkpoint)
            if !report.calibrated { rt.log("WARNING: xi is uncalibrated; `umtrain finetune --method um` will refuse it unless forced.") }
        }
    }
}
