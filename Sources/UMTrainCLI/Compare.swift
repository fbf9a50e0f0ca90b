import ArgumentParser
import Distributed
import Foundation
import Training

/// `umtrain compare`: paired statistics over existing run folders (one per seed).
struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Paired differences over seeds (UM, UMAP and the CE control against the baseline and the control) from run folders.",
        discussion: """
        Give one run folder per seed (e.g. runs/fmnist-full-s0 runs/fmnist-full-s1 runs/fmnist-full-s2, \
        as `pipeline --seeds` writes them, or runs of different commits with the same seeds). Each \
        folder's evaluate/<model>/reports/ood.json is read; for every score, each method is compared \
        with the reference of the same seed: mean difference in percentage points, a 95% Student-t \
        interval over seeds, and the seeds that improved. See docs/metrics.md.
        """
    )

    @Argument(help: ArgumentHelp("Run folders, one per seed.", valueName: "folder"))
    var folders: [String]

    @Option(help: ArgumentHelp("Also write the table to this Markdown file.", valueName: "file"))
    var output: String?

    func validate() throws {
        if folders.isEmpty { throw ValidationError("give at least one run folder, e.g. runs/fmnist-quick-s0") }
    }

    func run() throws {
        do {
            let runs = try folders.map { try Comparison.Run(folder: $0) }
            var md = "# Comparison\n\n" + Comparison.markdown(runs: runs, title: "Paired differences over seeds")
            let detectors = Comparison.detectorTable(runs: runs)
            if !detectors.isEmpty { md += "\n## Detectors per model\n\n" + detectors }
            if runs.contains(where: { $0.models.keys.contains { $0.contains("-") } }) {
                md += "\n## Regime map\n\n" + Comparison.regimeMap(runs: runs, kinds: runs.first?.scoreOrder ?? [],
                                                                    xi: Comparison.xiByLabel(runRoots: folders))
            }
            print(md)
            if let output { try AtomicFile.write(md, to: output) }
        } catch {
            writeToStandardError("error: \(error)\n")
            throw ExitCode(1)
        }
    }
}
