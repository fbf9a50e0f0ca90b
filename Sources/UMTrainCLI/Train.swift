import ArgumentParser
import Distributed
import Foundation
import NeuralNetwork
import SafeTensors
import Training

/// Options shared by subcommands that read a run configuration.
struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("YAML run configuration (snake_case keys; see docs/configuration.md).", valueName: "file"))
    var config: String?

    @Option(name: .customLong("set"), parsing: .singleValue,
            help: ArgumentHelp("Override a config key, e.g. --set train.epochs=5 (repeatable; applied after the file).",
                               valueName: "key=value"))
    var overrides: [String] = []

    @Option(help: ArgumentHelp("Run name (same as --set name=...).", valueName: "name"))
    var name: String?

    /// Loads the config on every rank (identical input gives identical results everywhere).
    func load() throws -> (RunConfig, [String]) {
        var o = overrides
        if let name { o.append("name=\(name)") }
        return try RunConfig.load(file: config, overrides: o)
    }
}

/// `umtrain train`: data-parallel training of the ID classifier.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train the in-distribution classifier, data-parallel over the MPI ranks.",
        discussion: """
        train.batch_size is the GLOBAL batch (split across ranks). Writes runs/<name>/train/: \
        config.yaml, provenance.json, metrics.jsonl (one JSON object per epoch), checkpoints/ \
        (the last train.keep_checkpoints, each complete with a COMPLETE marker) and \
        model.safetensors (final weights). SIGTERM or SIGUSR1 finishes the current step, writes a \
        checkpoint and exits with status 75; rerun with --resume to continue.
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
        var exitStatus: Int32 = 0
        runOnRanks(runtime) { rt in
            let (config, notes) = try configOptions.load()
            // Check the data before anything is written, so a failed launch leaves no folder.
            let data = try TrainingData.load(config, file: configOptions.config ?? "<defaults>", comm: rt.comm)
            rt.log(try rt.header(command: "train"))
            for n in notes { rt.log("note: \(n)") }
            let folder = try rt.openStage(config: config, stage: stage)
            if rt.isRoot {
                let ids: [String: Any] = ["validation_ids": data.validationIds, "validation_seed": config.data.validationSeed,
                                          "train_count": data.trainIds.count]
                try AtomicFile.write([UInt8](try JSONSerialization.data(withJSONObject: ids)), to: folder.root + "/validation_ids.json")
            }
            let model = try ModelFactory.make(config.model, seed: UInt64(config.seed))
            rt.log("model \(config.model.arch): \(model.trainableParameterCount) trainable parameters")
            let trainer = try Trainer(config: config, comm: rt.comm, model: model, data: data, folder: folder, log: rt.log)
            if debugSlowRank == rt.rank { trainer.debugStepDelay = debugSlowSeconds }
            if resume {
                if try trainer.resumeIfPossible(dropMomentum: debugDropMomentum) == nil {
                    rt.log("note: --resume given but no complete checkpoint in \(folder.checkpoints); starting fresh")
                }
            }
            let started = Date()
            try trainer.train()
            if trainer.preempted {
                rt.log("stopped on request after step \(trainer.globalStep); resume with --resume")
                exitStatus = 75
                return
            }
            let final = try trainer.evaluate(data.testSet, ids: data.testSet.ids)
            if rt.isRoot {
                let file = SafeTensorsFile(records: StateDict.records(of: model), metadata: ModelFactory.metadata(config.model))
                try AtomicFile.write(try file.encode(), to: folder.root + "/model.safetensors")
            }
            rt.log("final: test accuracy \(String(format: "%.2f", 100 * final.accuracy))% "
                + "(loss \(String(format: "%.4f", final.loss)), \(final.count) images), "
                + "\(trainer.globalStep) steps in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
            rt.log("state checksum: \(String(trainer.stateChecksum, radix: 16))")
            rt.log("weights: \(folder.root)/model.safetensors")
        }
        if exitStatus != 0 { throw ExitCode(exitStatus) }
    }
}
