import ArgumentParser
import CommandSupport
import Foundation
import OODDetection
import TensorCore

/// `umtrain bench bootstrap`: the cost of the bootstrap intervals of one score.
struct BenchBootstrap: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bootstrap",
        abstract: "Bootstrap confidence intervals of one score: seconds for B replicates over an ID set and several OOD sets (one rank).",
        discussion: """
        Synthetic Gaussian scores (ID N(1, 1), OOD N(0, 1)), the sizes of the Fashion-MNIST \
        benchmark by default (10000 ID test samples, 8 OOD sets of 5000). The evaluate stage \
        runs this once per score, with the replicates split over the ranks; its log line \
        'bootstrap intervals: ... in S s (P% of the evaluation)' is the figure in context.
        """
    )

    @Option(help: "ID samples.") var id: Int = 10_000
    @Option(help: "OOD samples per set.") var ood: Int = 5_000
    @Option(help: "OOD sets.") var sets: Int = 8
    @Option(help: "Replicates (B).") var replicates: Int = 2_000
    @Option(help: "Timed repeats.") var repeats: Int = 3
    @Option(help: "FPR95 convention: strict, reference or openood.") var fprMode: String = "strict"
    @Flag(help: "Strict mode: one pass per OOD set instead of one pass over all sets (the same results; for comparison).")
    var perSet = false

    func validate() throws {
        guard id > 0, ood > 0, sets > 0, replicates > 0, repeats > 0 else {
            throw ValidationError("--id, --ood, --sets, --replicates and --repeats must be positive.")
        }
        guard FPRMode(rawValue: fprMode) != nil else { throw ValidationError("--fpr-mode must be strict, reference or openood, got '\(fprMode)'.") }
    }

    func run() throws {
        var rng = SplitMix64(seed: 7)
        func gauss(_ mean: Double) -> Double {
            let u1 = max(Double(rng.next() >> 11) / Double(1 << 53), 1e-300), u2 = Double(rng.next() >> 11) / Double(1 << 53)
            return mean + (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
        }
        let idScores = (0..<id).map { _ in gauss(1) }
        let oodScores = (0..<sets).map { s in ("set\(s)", (0..<ood).map { _ in gauss(0) }) }
        let mode = FPRMode(rawValue: fprMode)!
        print("bootstrap: \(id) ID, \(sets) OOD set(s) of \(ood), B = \(replicates), fpr_mode \(fprMode)\(fprMode == "strict" ? (perSet ? ", one pass per set" : ", one pass over all sets") : ", one pass per set"), 1 rank; median of \(repeats)")
        var times: [Double] = []
        for _ in 0..<repeats {
            let t0 = now()
            let r = BootstrapIntervals.compute(idScores: idScores, oodScores: oodScores, inAverage: Array(repeating: true, count: sets),
                                               fprMode: mode, replicates: replicates, stream: ResampleStream(seed: 0), scoreKey: 1,
                                               onePass: !perSet)
            times.append(now() - t0)
            precondition(r.perSet.count == sets)
        }
        let t = median(times)
        let perReplicateSet = t / Double(replicates * sets) * 1e6
        print(String(format: "seconds %.3f (min %.3f) | %.2f us per replicate and set | %.2f ns per sample visit",
                     t, times.min()!, perReplicateSet, t / Double(replicates) / Double(sets * (id + ood) + id) * 1e9))
    }
}
