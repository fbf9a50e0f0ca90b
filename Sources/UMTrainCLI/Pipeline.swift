import ArgumentParser
import CommandSupport
import Foundation
import Training

extension Pipeline.Stage: ExpressibleByArgument {}

/// `umtrain pipeline`: the whole method in one MPI job.
struct PipelineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "Train, estimate xi and the atypical mask, fine-tune with UM and UMAP (and the plain CE control), evaluate every OOD score on every OOD set, and write summary.md.",
        discussion: """
        Everything goes under runs/<name>/: train/, estimate/, um/, umap/, ce_finetune/, \
        evaluate/<baseline|um|umap|ce_finetune>/ and summary.md. --from STAGE reuses the outputs of \
        earlier stages (e.g. --from estimate uses runs/<name>/train/model.safetensors, or \
        --checkpoint FILE). If the estimate stage finds xi uncalibrated (not strictly between the \
        training and held-out losses) and um.force is false, UM and UMAP are skipped and summary.md \
        says why. SIGTERM or SIGUSR1 (to any rank, or SIGUSR1 to mpirun) stops a training stage \
        after its checkpoint, or the run at the next stage boundary, and exits with status 75; \
        re-run with --resume to continue: finished stages are reused, the stopped one continues \
        from its checkpoint.
        """
    )

    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var configOptions: ConfigOptions

    @Option(help: ArgumentHelp("First stage to run: \(Pipeline.Stage.allCases.map(\.rawValue).joined(separator: ", ")).", valueName: "stage"))
    var from: Pipeline.Stage = .train

    @Option(help: ArgumentHelp("Trained weights to start from instead of runs/<name>/train/model.safetensors.", valueName: "file"))
    var checkpoint: String?

    @Flag(help: "Skip the UMAP stage.")
    var skipUmap = false

    @Flag(help: "Continue a stopped run: reuse finished stages, continue the interrupted one from its checkpoint.")
    var resume = false

    @Option(help: ArgumentHelp("Run the whole pipeline once per seed (e.g. 0,1,2) as runs/<name>-s<seed>/, then write runs/<name>/seeds-summary.md with the mean and spread over seeds.", valueName: "list"))
    var seeds: String?

    @Option(help: .hidden) var debugSlowRank: Int?
    @Option(help: .hidden) var debugSlowSeconds = 0.2

    func validate() throws {
        if let seeds, parsedSeeds(seeds) == nil {
            throw ValidationError("--seeds must be a comma-separated list of integers, got '\(seeds)'.")
        }
    }

    func parsedSeeds(_ text: String) -> [Int]? {
        let v = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        return v.isEmpty || v.contains(nil) ? nil : v.map { $0! }
    }

    var options: Pipeline.Options {
        var o = Pipeline.Options()
        o.from = from
        o.checkpoint = checkpoint
        o.skipUMAP = skipUmap
        o.resume = resume
        return o
    }

    func run() throws {
        try runPreemptible(runtime) { rt in
            let (config, notes) = try configOptions.load()
            rt.log(try rt.header(command: "pipeline"))
            for n in notes { rt.log("note: \(n)") }
            try Pipeline.preflight(config: config, options: options, file: configOptions.file)
            let context = rt.stageContext(configFile: configOptions.file)
            context.debugSlowRank = debugSlowRank
            context.debugSlowSeconds = debugSlowSeconds
            let outcome: Pipeline.Outcome
            if let text = seeds, let list = parsedSeeds(text) {
                outcome = try Pipeline.runSeeds(list, config: config, context: context, options: options)
            } else {
                outcome = try Pipeline.run(config: config, context: context, options: options)
            }
            guard case .preempted(let stage) = outcome else { return .completed }
            rt.log("pipeline stopped on request (\(stage)); re-run the same command with --resume to continue")
            return .preempted
        }
    }
}
