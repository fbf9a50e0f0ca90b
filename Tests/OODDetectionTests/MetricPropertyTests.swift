// Property tests: the O(n log n) metrics against naive twins on random scores with many ties.
import XCTest
@testable import OODDetection

final class MetricPropertyTests: XCTestCase {
    /// Scores drawn from a small set of `levels` values so ties within and across sets are common.
    private func tiedScores(_ n: Int, levels: Int, shift: Int, _ rng: inout SplitMix64) -> [Double] {
        (0..<n).map { _ in Double(Int.random(in: 0..<levels, using: &rng) + shift) * 0.1 }
    }

    private let cases: [(nID: Int, nOOD: Int, levels: Int)] = [
        (1, 1, 2), (3, 5, 2), (10, 7, 3), (40, 60, 5), (97, 23, 8), (150, 310, 12), (500, 20, 4),
    ]

    func testAUROCMatchesPairwiseExactly() throws {
        for seed in UInt64(1)...6 {
            var rng = SplitMix64(seed: seed)
            for c in cases {
                let id = tiedScores(c.nID, levels: c.levels, shift: 1, &rng)
                let ood = tiedScores(c.nOOD, levels: c.levels, shift: 0, &rng)
                let fast = OODMetricFunctions.auroc(idScores: id, oodScores: ood)
                XCTAssertEqual(fast, Naive.auroc(id, ood), "seed \(seed) case \(c)")
                // order independence
                let shuffled = OODMetricFunctions.auroc(idScores: id.shuffled(using: &rng),
                                                        oodScores: ood.shuffled(using: &rng))
                XCTAssertEqual(shuffled, fast)
            }
        }
    }

    func testAUROCOnContinuousScores() {
        var rng = SplitMix64(seed: 99)
        let id = (0..<300).map { _ in Double.random(in: -1..<2, using: &rng) }
        let ood = (0..<200).map { _ in Double.random(in: -2..<1, using: &rng) }
        XCTAssertEqual(OODMetricFunctions.auroc(idScores: id, oodScores: ood), Naive.auroc(id, ood))
    }

    func testAveragePrecisionMatchesPerThresholdScan() throws {
        for seed in UInt64(11)...16 {
            var rng = SplitMix64(seed: seed)
            for c in cases {
                let id = tiedScores(c.nID, levels: c.levels, shift: 1, &rng)
                let ood = tiedScores(c.nOOD, levels: c.levels, shift: 0, &rng)
                let m = try OODMetrics.compute(idScores: id, oodScores: ood)
                XCTAssertEqual(m.auprIn, Naive.averagePrecision(positive: id, negative: ood),
                               accuracy: 1e-12, "seed \(seed) case \(c)")
                XCTAssertEqual(m.auprOut, Naive.averagePrecision(positive: ood.map { -$0 }, negative: id.map { -$0 }),
                               accuracy: 1e-12, "seed \(seed) case \(c)")
            }
        }
    }

    func testStrictFPRMatchesThresholdScan() throws {
        for seed in UInt64(21)...26 {
            var rng = SplitMix64(seed: seed)
            for c in cases {
                let id = tiedScores(c.nID, levels: c.levels, shift: 1, &rng)
                let ood = tiedScores(c.nOOD, levels: c.levels, shift: 0, &rng)
                let m = try OODMetrics.compute(idScores: id, oodScores: ood)
                XCTAssertEqual(m.fpr95, Naive.strictFPR(id, ood), "seed \(seed) case \(c)")
                // any recall level
                for level in [0.5, 0.8, 0.9, 1.0] {
                    XCTAssertEqual(OODMetricFunctions.fpr(idScores: id, oodScores: ood, recallLevel: level),
                                   Naive.strictFPR(id, ood, level: level), "seed \(seed) case \(c) level \(level)")
                }
            }
        }
    }

    /// Reference mode against a direct transcription of the reference's rule by counting.
    func testReferenceModeMatchesNaiveClosestRecallScan() throws {
        for seed in UInt64(31)...36 {
            var rng = SplitMix64(seed: seed)
            for c in cases {
                let id = tiedScores(c.nID, levels: c.levels, shift: 1, &rng)
                let ood = tiedScores(c.nOOD, levels: c.levels, shift: 0, &rng)
                let reference = try OODMetrics.compute(idScores: id, oodScores: ood, fprMode: .reference).fpr95
                XCTAssertEqual(reference, Naive.referenceFPR(id, ood), "seed \(seed) case \(c)")
            }
            let id = (0..<100).map { _ in Double.random(in: 0..<1, using: &rng) + 0.2 }
            let ood = (0..<80).map { _ in Double.random(in: 0..<1, using: &rng) }
            XCTAssertEqual(try OODMetrics.compute(idScores: id, oodScores: ood, fprMode: .reference).fpr95,
                           Naive.referenceFPR(id, ood))
        }
    }

    /// Gathered scores arrive in rank order, not sample order (F1): all four metrics must be
    /// bitwise identical for every permutation of the inputs.
    func testAllMetricsBitwiseInvariantToInputOrder() throws {
        var rng = SplitMix64(seed: 51)
        let id = tiedScores(400, levels: 30, shift: 2, &rng) + (0..<100).map { _ in Double.random(in: 0..<3, using: &rng) }
        let ood = tiedScores(300, levels: 30, shift: 0, &rng)
        for mode in FPRMode.allCases {
            let base = try OODMetrics.compute(idScores: id, oodScores: ood, fprMode: mode)
            for _ in 0..<5 {
                let m = try OODMetrics.compute(idScores: id.shuffled(using: &rng), oodScores: ood.shuffled(using: &rng), fprMode: mode)
                XCTAssertEqual(m.auroc.bitPattern, base.auroc.bitPattern)
                XCTAssertEqual(m.auprIn.bitPattern, base.auprIn.bitPattern)
                XCTAssertEqual(m.auprOut.bitPattern, base.auprOut.bitPattern)
                XCTAssertEqual(m.fpr95.bitPattern, base.fpr95.bitPattern)
            }
        }
    }

    /// Mirror symmetry: swapping the sets and negating the scores swaps AUPR-In and AUPR-Out and
    /// keeps AUROC.
    func testSwapSymmetry() throws {
        var rng = SplitMix64(seed: 41)
        let id = tiedScores(120, levels: 6, shift: 1, &rng)
        let ood = tiedScores(80, levels: 6, shift: 0, &rng)
        let a = try OODMetrics.compute(idScores: id, oodScores: ood)
        let b = try OODMetrics.compute(idScores: ood.map { -$0 }, oodScores: id.map { -$0 })
        XCTAssertEqual(a.auroc, b.auroc)
        XCTAssertEqual(a.auprIn, b.auprOut, accuracy: 1e-15)
        XCTAssertEqual(a.auprOut, b.auprIn, accuracy: 1e-15)
    }

    /// 64-bit counts: a large tied set whose pair count exceeds 2^32, exact 1/2 + known value.
    func testLargeTiedSetsUse64BitCounts() throws {
        // 100_000 ID at 1.0 and 50_000 at 0.0; 60_000 OOD at 0.0: pairs = 150k * 60k = 9e9 > 2^32.
        let id = [Double](repeating: 1, count: 100_000) + [Double](repeating: 0, count: 50_000)
        let ood = [Double](repeating: 0, count: 60_000)
        let m = try OODMetrics.compute(idScores: id, oodScores: ood)
        // (100k * 60k + 0.5 * 50k * 60k) / (150k * 60k) = (2 + 0.5) / 3
        XCTAssertEqual(m.auroc, 2.5 / 3, accuracy: 1e-15)
        XCTAssertEqual(m.nID, 150_000)
    }
}
