import ArgumentParser
import CommandSupport
import Foundation
import Training

/// `umtrain train`: data-parallel training of the ID classifier.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train the in-distribution classifier, data-parallel over the MPI ranks.",
        discussion: """
        train.batch_size is the GLOBAL batch (split across ranks). Writes runs/<name>/train/: \
        config.yaml, provenance.json, metrics.jsonl (one JSON object per epoch), checkpoints/ \
        (the last train.keep_checkpoints, each complete with a COMPLETE marker) and \
        model.safetensors (final weights). Without --resume an earlier run's checkpoints and \
        outputs in that folder are removed first. SIGTERM or SIGUSR1 finishes the current step, \
        writes a checkpoint, writes no final model and exits with status 75; rerun with --resume \
        to continue.
        """
    )

    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var configOptions: ConfigOptions

    @Flag(help: "Continue from the newest complete checkpoint of this run's train stage.")
    var resume = false

    @Option(help: ArgumentHelp("Stage folder name under runs/<name>/.", valueName: "stage"))
    var stage = "train"

    @Flag(help: .hidden) var debugDropMomentum = false
    @Option(help: .hidden) var debugSlowRank: Int?
    @Option(help: .hidden) var debugSlowSeconds = 0.2

    func run() throws {
        try runPreemptible(runtime) { rt in
            let (config, notes) = try configOptions.load()
            rt.log(try rt.header(command: "train"))
            for n in notes { rt.log("note: \(n)") }
            var options = TrainStage.Options(resume: resume, stage: stage)
            options.debugDropMomentum = debugDropMomentum
            options.debugSlowRank = debugSlowRank
            options.debugSlowSeconds = debugSlowSeconds
            return try TrainStage.run(config: config, context: rt.stageContext(configFile: configOptions.file), options: options).status
        }
    }
}
