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
        abstract: "AUROC, AUPR-In, AUPR-Out and FPR95 from files of scores (higher = ID): one ID file and one or more OOD files, with averages over them and per group.",
        discussion: """
        ID is the positive class for AUROC, AUPR-In and the strict/reference FPR95 modes; AUPR-Out \
        uses OOD as positive with negated scores. FPR95 modes: strict (default; fraction of OOD \
        accepted at the largest threshold whose ID recall reaches 0.95), reference (the UM / \
        energy-OOD code's closest-recall rule), openood (OOD positive, OpenOOD's convention). \
        AUPR: average_precision (default; scikit-learn average_precision_score) or trapezoid \
        (auc(recall, precision), what OpenOOD and pytorch-ood print). With several --ood files, \
        each is reported, then their unweighted average, then the average of each --group. \
        Non-finite scores are an error unless --exclude-non-finite is given. All values are \
        fractions in [0, 1]. See docs/metrics.md. Example (OpenOOD's conventions, near/far): \
        umtrain metrics --id id.csv --ood mnist.csv --ood photos.csv --column energy \
        --fpr-mode openood --aupr trapezoid --group near=mnist.csv --group far=photos.csv
        """
    )

    @Option(name: .customLong("id"), help: ArgumentHelp("File of in-distribution scores.", valueName: "file"))
    var idFile: String

    @Option(name: .customLong("ood"), help: ArgumentHelp("File of out-of-distribution scores (repeat for several sets).", valueName: "file"))
    var oodFiles: [String]

    @Option(name: .customLong("fpr-mode"), help: ArgumentHelp("FPR95 convention: strict, reference or openood.", valueName: "mode"))
    var fprMode: FPRMode = .strict

    @Option(name: .customLong("aupr"), help: ArgumentHelp("AUPR convention: average_precision or trapezoid.", valueName: "mode"))
    var auprMode: AUPRMode = .averagePrecision

    @Option(name: .customLong("group"), help: ArgumentHelp("A group of --ood files averaged together, NAME=FILE[,FILE...] (repeat for several groups).",
                                                          valueName: "name=files"))
    var groups: [String] = []

    @Flag(name: .customLong("exclude-non-finite"), help: "Drop NaN/inf scores (their counts are reported) instead of failing.")
    var excludeNonFinite = false

    @Flag(help: "Print JSON: one object (keys auroc, aupr_in, aupr_out, fpr95, n_id, n_ood, fpr_mode, aupr_mode, ...) for one --ood file; with several, {sets: {file: ...}, average: ..., groups: {name: ...}}.")
    var json = false

    @Option(help: ArgumentHelp("Read this column of CSV files with a header (e.g. the reports/scores/*.csv that evaluate writes: --column energy).",
                               valueName: "name"))
    var column: String?

    func validate() throws {
        guard !oodFiles.isEmpty else { throw ValidationError("give at least one --ood file.") }
        _ = try parsedGroups()
    }

    /// The groups in the order given, each a list of --ood files.
    /// - Throws: `ValidationError` naming the malformed entry or a file that is not an --ood file.
    func parsedGroups() throws -> [(name: String, files: [String])] {
        try groups.map { g in
            let parts = g.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw ValidationError("--group '\(g)': expected NAME=FILE[,FILE...], e.g. near=mnist.csv,letters.csv")
            }
            let files = parts[1].split(separator: ",").map(String.init)
            for f in files where !oodFiles.contains(f) {
                throw ValidationError("--group \(parts[0]): '\(f)' is not one of the --ood files (\(oodFiles.joined(separator: ", "))); give it with --ood as well.")
            }
            return (parts[0], files)
        }
    }

    func read(_ path: String) throws -> [Double] {
        guard let column else { return try ScoreFile.read(path: path) }
        return try ScoreFile.readColumn(path: path, column: column)
    }

    func run() throws {
        do {
            let id = try read(idFile)
            var perSet: [(file: String, metrics: OODMetrics)] = []
            for f in oodFiles {
                perSet.append((f, try OODMetrics.compute(idScores: id, oodScores: try read(f), fprMode: fprMode,
                                                         nonFinite: excludeNonFinite ? .exclude : .error, auprMode: auprMode)))
            }
            let groupAverages = try parsedGroups().map { g in
                (g.name, OODMetrics.average(g.files.map { f in perSet.first { $0.file == f }!.metrics }))
            }
            if perSet.count == 1 && groupAverages.isEmpty {
                if json {
                    print(try perSet[0].metrics.jsonString())
                } else {
                    print("positive class: ID for AUROC and AUPR-In, OOD for AUPR-Out (negated scores)")
                    print(perSet[0].metrics.summaryLine)
                }
                return
            }
            let average = OODMetrics.average(perSet.map(\.metrics))
            if json {
                func object(_ m: OODMetrics) throws -> Any { try JSONSerialization.jsonObject(with: Data(try m.jsonString().utf8)) }
                let out: [String: Any] = [
                    "sets": Dictionary(uniqueKeysWithValues: try perSet.map { ($0.file, try object($0.metrics)) }),
                    "set_order": perSet.map(\.file),
                    "average": try object(average),
                    "groups": Dictionary(uniqueKeysWithValues: try groupAverages.map { ($0.0, try object($0.1)) }),
                    "group_order": groupAverages.map(\.0),
                ]
                print(String(decoding: try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys]), as: UTF8.self))
            } else {
                print("positive class: ID for AUROC and AUPR-In, OOD for AUPR-Out (negated scores)")
                for (f, m) in perSet { print("\(f): \(m.summaryLine)") }
                print("average of \(perSet.count) sets (unweighted): \(average.summaryLine)")
                for (g, m) in groupAverages { print("group \(g): \(m.summaryLine)") }
            }
        } catch {
            writeToStandardError("error: \(error)\n")
            throw ExitCode(1)
        }
    }
}

extension FPRMode: ExpressibleByArgument {}
extension AUPRMode: ExpressibleByArgument {}
