import ArgumentParser
import CommandSupport
import Distributed
import Foundation
import OODDetection

/// `umtrain metrics`: OOD metrics from two score files, so numbers from other tools can be
/// checked against ours.
struct MetricsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics",
        abstract: "AUROC, AUPR-In, AUPR-Out and FPR95 from two files of scores (one number per line, higher = ID).",
        discussion: """
        ID is the positive class for AUROC, AUPR-In and the strict/reference FPR95 modes; AUPR-Out \
        uses OOD as positive with negated scores. FPR95 modes: strict (default; fraction of OOD \
        accepted at the largest threshold whose ID recall reaches 0.95), reference (the UM / \
        energy-OOD code's closest-recall rule), openood (OOD positive, OpenOOD's convention). \
        Non-finite scores are an error unless --exclude-non-finite is given. All values are \
        fractions in [0, 1]. See docs/metrics.md.
        """
    )

    @Option(name: .customLong("id"), help: ArgumentHelp("File of in-distribution scores.", valueName: "file"))
    var idFile: String

    @Option(name: .customLong("ood"), help: ArgumentHelp("File of out-of-distribution scores.", valueName: "file"))
    var oodFile: String

    @Option(name: .customLong("fpr-mode"), help: ArgumentHelp("FPR95 convention: strict, reference or openood.", valueName: "mode"))
    var fprMode: FPRMode = .strict

    @Flag(name: .customLong("exclude-non-finite"), help: "Drop NaN/inf scores (their counts are reported) instead of failing.")
    var excludeNonFinite = false

    @Flag(help: "Print one JSON object (keys auroc, aupr_in, aupr_out, fpr95, n_id, n_ood, fpr_mode, ...).")
    var json = false

    @Option(help: ArgumentHelp("Read this column of CSV files with a header (e.g. the reports/scores/*.csv that evaluate writes: --column energy).",
                               valueName: "name"))
    var column: String?

    func read(_ path: String) throws -> [Double] {
        guard let column else { return try ScoreFile.read(path: path) }
        return try ScoreFile.readColumn(path: path, column: column)
    }

    func run() throws {
        do {
            let id = try read(idFile)
            let ood = try read(oodFile)
            let m = try OODMetrics.compute(idScores: id, oodScores: ood, fprMode: fprMode,
                                           nonFinite: excludeNonFinite ? .exclude : .error)
            if json {
                print(try m.jsonString())
            } else {
                print("positive class: ID for AUROC and AUPR-In, OOD for AUPR-Out (negated scores)")
                print(m.summaryLine)
            }
        } catch {
            writeToStandardError("error: \(error)\n")
            throw ExitCode(1)
        }
    }
}

extension FPRMode: ExpressibleByArgument {}
