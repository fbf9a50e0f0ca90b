import Foundation
@testable import OODDetection
import XCTest

/// The bootstrap's O(n) replicate against the naive twin (the full metric computation on the
/// expanded, resampled score lists), and the interval's coverage on problems with a known AUROC.
final class BootstrapTests: XCTestCase {
    /// Deterministic uniforms and normals for the tests.
    struct Draws {
        var rng: BootstrapRNG
        init(_ seed: UInt64) { rng = BootstrapRNG(seed: seed, stream: 7) }
        mutating func uniform() -> Double { Double(rng.next() >> 11) / Double(1 << 53) }
        mutating func normal() -> Double {
            let u = max(uniform(), 1e-300), v = uniform()
            return (-2 * log(u)).squareRoot() * cos(2 * Double.pi * v)
        }
        mutating func int(_ n: Int) -> Int { rng.below(n) }
    }

    /// Every replicate equals OODMetrics.compute on the samples repeated by their counts: random
    /// sizes, heavy ties (scores on a coarse grid), counts including zeros, all three FPR95 rules.
    func testReplicateEqualsTheNaiveTwinGivenTheSameCounts() throws {
        var d = Draws(11)
        for trial in 0..<300 {
            let nID = 1 + d.int(25), nOOD = 1 + d.int(25)
            let grid = 1 + d.int(8)
            let id = (0..<nID).map { _ in Double(d.int(grid)) + (d.int(2) == 0 ? 0.5 : 0) }
            let ood = (0..<nOOD).map { _ in Double(d.int(grid)) - 1 }
            let table = BootstrapTable(idScores: id, oodScores: ood)
            var idCounts = (0..<nID).map { _ in Int32(d.int(3)) }
            var oodCounts = (0..<nOOD).map { _ in Int32(d.int(3)) }
            if idCounts.allSatisfy({ $0 == 0 }) { idCounts[0] = 1 }
            if oodCounts.allSatisfy({ $0 == 0 }) { oodCounts[nOOD - 1] = 2 }
            if trial % 10 == 0 {   // the unresampled data too
                idCounts = [Int32](repeating: 1, count: nID)
                oodCounts = [Int32](repeating: 1, count: nOOD)
            }
            let expandedID = zip(id, idCounts).flatMap { [Double](repeating: $0, count: Int($1)) }
            let expandedOOD = zip(ood, oodCounts).flatMap { [Double](repeating: $0, count: Int($1)) }
            for mode in FPRMode.allCases {
                let fast = table.metrics(idCounts: idCounts, oodCounts: oodCounts, fprMode: mode)
                let naive = try OODMetrics.compute(idScores: expandedID, oodScores: expandedOOD, fprMode: mode)
                XCTAssertEqual(fast, naive, "trial \(trial) \(mode): id \(id) x \(idCounts), ood \(ood) x \(oodCounts)")
            }
        }
    }

    /// The one-pass table of several sets equals the per-set table (and so the naive twin) bit
    /// for bit under strict FPR95: ties within and across sets, zero counts, sets of size 1.
    func testOnePassOverAllSetsEqualsThePerSetReplicate() throws {
        var d = Draws(23)
        for trial in 0..<300 {
            let nID = 1 + d.int(30)
            let grid = 1 + d.int(10)
            let id = (0..<nID).map { _ in Double(d.int(grid)) + (d.int(3) == 0 ? 0.5 : 0) }
            let sets = (0..<(1 + d.int(4))).map { _ in (0..<(1 + d.int(20))).map { _ in Double(d.int(grid)) - (d.int(2) == 0 ? 0.5 : 0) } }
            var idCounts = (0..<nID).map { _ in Int32(d.int(3)) }
            if idCounts.allSatisfy({ $0 == 0 }) { idCounts[0] = 1 }
            var setCounts = sets.map { s in s.map { _ in Int32(d.int(3)) } }
            for k in setCounts.indices where setCounts[k].allSatisfy({ $0 == 0 }) { setCounts[k][0] = 2 }
            let merged = BootstrapSetsTable(idScores: id, oodScores: sets)
            var scratch = BootstrapSetsTable.Scratch()
            let combined = idCounts + setCounts.flatMap { $0 }
            let fast = combined.withUnsafeBufferPointer { merged.metrics(counts: $0, scratch: &scratch) }
            for (k, set) in sets.enumerated() {
                let reference = BootstrapTable(idScores: id, oodScores: set).metrics(idCounts: idCounts, oodCounts: setCounts[k], fprMode: .strict)
                XCTAssertEqual(fast[k], reference, "trial \(trial) set \(k): id \(id) x \(idCounts), ood \(set) x \(setCounts[k])")
            }
        }
        // Through the public entry point: strict replicates equal the per-set path's.
        let id = (0..<300).map { _ in d.normal() + 1 }
        let sets = [("a", (0..<200).map { _ in d.normal() }), ("b", (0..<120).map { _ in (d.normal() * 4).rounded() })]
        let stream = ResampleStream(seed: 5)
        let one = BootstrapIntervals.replicateMetrics(idScores: id, oodScores: sets, inAverage: [true, true], fprMode: .strict,
                                                      range: 3..<40, stream: stream, scoreKey: 77)
        for r in 3..<40 {
            let ic = stream.counts(n: 300, key: 77, replicate: r)
            for (k, set) in sets.enumerated() {
                let oc = stream.counts(n: set.1.count, key: 77 ^ ResampleStream.key(set.0), replicate: r)
                XCTAssertEqual(one.perSet[k][r - 3], BootstrapTable(idScores: id, oodScores: set.1).metrics(idCounts: ic, oodCounts: oc, fprMode: .strict))
            }
        }
    }

    /// Resample counts are a pure function of (seed, key, replicate), sum to n, and differ
    /// between replicates and keys.
    func testResampleStreamIsDeterministicAndMultinomial() {
        let s = ResampleStream(seed: 3)
        XCTAssertEqual(s.counts(n: 50, key: 9, replicate: 4), s.counts(n: 50, key: 9, replicate: 4))
        XCTAssertEqual(s.counts(n: 50, key: 9, replicate: 4).reduce(0, +), 50)
        XCTAssertNotEqual(s.counts(n: 50, key: 9, replicate: 4), s.counts(n: 50, key: 9, replicate: 5))
        XCTAssertNotEqual(s.counts(n: 50, key: 9, replicate: 4), s.counts(n: 50, key: 10, replicate: 4))
        XCTAssertNotEqual(s.counts(n: 50, key: 9, replicate: 4), ResampleStream(seed: 4).counts(n: 50, key: 9, replicate: 4))
    }

    /// 200 synthetic problems with a known AUROC (ID ~ N(1, 1), OOD ~ N(0, 1): AUROC =
    /// Phi(1 / sqrt 2) = 0.76025), 100 samples per class: the 95% percentile interval must cover
    /// the true value in 92-98% of them.
    func testCoverageOfTheAUROCIntervalOnKnownProblems() {
        let truth = 0.5 * (1 + erf(1.0 / 2.0))   // Phi(1/sqrt(2)) = (1 + erf(1/2)) / 2
        var d = Draws(23)
        var covered = 0
        let problems = 200
        for problem in 0..<problems {
            let id = (0..<100).map { _ in d.normal() + 1 }
            let ood = (0..<100).map { _ in d.normal() }
            let r = BootstrapIntervals.compute(idScores: id, oodScores: [("ood", ood)], inAverage: [true], fprMode: .strict,
                                               replicates: 400, stream: ResampleStream(seed: UInt64(problem)),
                                               scoreKey: ResampleStream.key("synthetic"))
            let ci = r.perSet[0].auroc
            XCTAssertLessThan(ci.lower, ci.upper)
            if ci.lower <= truth && truth <= ci.upper { covered += 1 }
        }
        let coverage = Double(covered) / Double(problems)
        print("bootstrap coverage of the true AUROC \(truth): \(coverage) over \(problems) problems")
        XCTAssertGreaterThanOrEqual(coverage, 0.92)
        XCTAssertLessThanOrEqual(coverage, 0.98)
    }

    /// The average's interval comes from averaging each replicate's per-set metrics (the ID
    /// resample shared), so it is narrower than the widest per-set interval and centred on the
    /// average of the point estimates within its width.
    func testAverageIntervalIsTheIntervalOfTheReplicateAverages() throws {
        var d = Draws(5)
        let id = (0..<60).map { _ in d.normal() + 1.5 }
        let a = (0..<40).map { _ in d.normal() }, b = (0..<80).map { _ in d.normal() + 0.5 }
        let stream = ResampleStream(seed: 1), key = ResampleStream.key("energy")
        let r = BootstrapIntervals.compute(idScores: id, oodScores: [("a", a), ("b", b)], inAverage: [true, true],
                                           fprMode: .strict, replicates: 300, stream: stream, scoreKey: key)
        // The same replicates by hand.
        var averages: [OODMetrics] = []
        for rep in 0..<300 {
            let ic = stream.counts(n: 60, key: key, replicate: rep)
            let ma = BootstrapTable(idScores: id, oodScores: a).metrics(idCounts: ic, oodCounts: stream.counts(n: 40, key: key ^ ResampleStream.key("a"), replicate: rep), fprMode: .strict)
            let mb = BootstrapTable(idScores: id, oodScores: b).metrics(idCounts: ic, oodCounts: stream.counts(n: 80, key: key ^ ResampleStream.key("b"), replicate: rep), fprMode: .strict)
            averages.append(OODMetrics.average([ma, mb]))
        }
        XCTAssertEqual(r.average, BootstrapIntervals.intervals(averages, level: 0.95))
        let point = OODMetrics.average([try OODMetrics.compute(idScores: id, oodScores: a), try OODMetrics.compute(idScores: id, oodScores: b)])
        XCTAssertTrue(r.average!.auroc.lower < point.auroc && point.auroc < r.average!.auroc.upper)
        XCTAssertEqual(BootstrapIntervals.quantile([1, 2, 3, 4], 0.5), 2.5)
        XCTAssertEqual(BootstrapIntervals.quantile([1, 2, 3, 4, 5], 0.025), 1.1, accuracy: 1e-12)
    }
}

/// Student-t quantiles, the CDF and paired intervals against scipy (fixture made by
/// Tests/Fixtures/statistics/make_fixture.py).
final class StatisticsTests: XCTestCase {
    struct Fixture: Decodable {
        struct Q: Decodable { var df: Double; var p: Double; var t: Double }
        struct C: Decodable { var df: Double; var t: Double; var cdf: Double }
        struct P: Decodable { var method: [Double]; var reference: [Double]; var mean: Double; var sd: Double; var lower: Double; var upper: Double }
        var quantiles: [Q]
        var cdfs: [C]
        var pairs: [P]
    }

    func fixture() throws -> Fixture {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/statistics/scipy.json")
        return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }

    func testStudentTQuantilesAndCDFMatchScipy() throws {
        let f = try fixture()
        XCTAssertGreaterThan(f.quantiles.count, 50)
        for q in f.quantiles {
            let t = StudentT.quantile(q.p, df: q.df)
            XCTAssertEqual(t, q.t, accuracy: 1e-9 * max(1, abs(q.t)), "t_{\(q.p), \(q.df)}")
        }
        for c in f.cdfs {
            XCTAssertEqual(StudentT.cdf(c.t, df: c.df), c.cdf, accuracy: 1e-12, "F(\(c.t); \(c.df))")
        }
    }

    func testPairedIntervalMatchesScipy() throws {
        for p in try fixture().pairs {
            let d = PairedDifference(method: p.method, reference: p.reference, higherIsBetter: true)
            XCTAssertEqual(d.mean, p.mean, accuracy: 1e-12)
            XCTAssertEqual(d.standardDeviation!, p.sd, accuracy: 1e-12)
            XCTAssertEqual(d.interval!.lower, p.lower, accuracy: 1e-9)
            XCTAssertEqual(d.interval!.upper, p.upper, accuracy: 1e-9)
            XCTAssertEqual(d.significant, p.lower > 0 || p.upper < 0)
        }
        let one = PairedDifference(method: [0.8], reference: [0.7], higherIsBetter: true)
        XCTAssertNil(one.interval)
        XCTAssertFalse(one.significant, "one seed is an anecdote")
        let fpr = PairedDifference(method: [0.2, 0.3], reference: [0.25, 0.28], higherIsBetter: false)
        XCTAssertEqual(fpr.improved, 1, "lower FPR95 is better")
    }
}
