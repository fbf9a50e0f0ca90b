import ArgumentParser
import CommandSupport
import Foundation
import Training

extension FinetuneMethod: ExpressibleByArgument {}

/// `umtrain finetune`: UM (flooding), UMAP (learned masks) or the plain cross-entropy control.
struct FinetuneCommand: ParsableCommand {
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
        batch size, momentum, weight decay and BN mode from train. Writes runs/<name>/<um|umap|ce_finetune>/. \
        SIGTERM or SIGUSR1 writes a checkpoint, no final model, and exits with status 75; rerun \
        with --resume to continue.
        """
    )

    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var configOptions: ConfigOptions

    @Option(help: ArgumentHelp("um, umap or ce.", valueName: "method"))
    var method: FinetuneMethod = .um

    @Option(help: ArgumentHelp("Trained weights (.safetensors).", valueName: "file"))
    var checkpoint: String

    @Option(help: ArgumentHelp("Loss constraint in nats (overrides um.xi and estimate.json).", valueName: "nats"))
    var xi: Double?

    @Option(help: ArgumentHelp("estimate.json to read xi from (default runs/<name>/estimate/estimate.json).", valueName: "file"))
    var estimate: String?

    @Flag(help: "Use xi even when it is not strictly between the training and held-out losses.")
    var force = false

    @Flag(help: "Continue from the newest complete checkpoint of this run's fine-tuning stage.")
    var resume = false

    func run() throws {
        try runPreemptible(runtime) { rt in
            var opts = configOptions
            if let xi { opts.overrides.append("um.xi=\(xi)") }
            if force { opts.overrides.append("um.force=true") }
            let (config, notes) = try opts.load()
            rt.log(try rt.header(command: "finetune --method \(method.rawValue)"))
            for n in notes { rt.log("note: \(n)") }
            return try FinetuneStage.run(config: config, context: rt.stageContext(configFile: opts.file),
                                         options: .init(method: method, baseWeights: checkpoint, estimatePath: estimate,
                                                        resume: resume)).status
        }
    }
}
