// Worked values from pitfalls.md F5 (metric conventions) and F7 (non-finite values, JSON).
import XCTest
@testable import OODDetection

final class OODMetricsWorkedTests: XCTestCase {
    // F5: ID = 90 values evenly spaced in [0.90, 0.99] plus 10 in [0.00, 0.09];
    //     OOD = 100 values evenly spaced in [0.40, 0.59].
    private let directionID = linspace(0.90, 0.99, 90) + linspace(0.00, 0.09, 10)
    private let directionOOD = linspace(0.40, 0.59, 100)

    func testFPR95DirectionStrictIsOne() throws {
        let m = try OODMetrics.compute(idScores: directionID, oodScores: directionOOD)
        XCTAssertEqual(m.fprMode, .strict)
        XCTAssertEqual(m.fpr95, 1.00, accuracy: 1e-12)
        XCTAssertEqual(m.auroc, 0.90, accuracy: 1e-12)
        XCTAssertEqual(m.nID, 100)
        XCTAssertEqual(m.nOOD, 100)
    }

    func testFPR95DirectionOpenOODIsPointOne() throws {
        let m = try OODMetrics.compute(idScores: directionID, oodScores: directionOOD, fprMode: .openood)
        XCTAssertEqual(m.fpr95, 0.10, accuracy: 1e-12)
        XCTAssertEqual(m.auroc, 0.90, accuracy: 1e-12)
    }

    func testFPR95DirectionReferenceIsOne() throws {
        // ID recall reaches exactly 95/100 at the 5th low ID score, distance 0 -> all OOD accepted.
        let m = try OODMetrics.compute(idScores: directionID, oodScores: directionOOD, fprMode: .reference)
        XCTAssertEqual(m.fpr95, 1.00, accuracy: 1e-12)
    }

    func testDirectionAUPRAgainstHandDerivation() throws {
        // AUPR-In: the 90 top ID at precision 1 give 0.9; the k-th of the 10 low ID (k = 91...100)
        // comes after all 100 OOD: + 0.01 * k / (k + 100).
        var expectedIn = 0.9
        for k in 91...100 { expectedIn += 0.01 * Double(k) / Double(k + 100) }
        // AUPR-Out (OOD positive, low score first): 10 low ID come first, then all 100 OOD:
        // k-th OOD has precision k / (k + 10).
        var expectedOut = 0.0
        for k in 1...100 { expectedOut += 0.01 * Double(k) / Double(k + 10) }
        let m = try OODMetrics.compute(idScores: directionID, oodScores: directionOOD)
        XCTAssertEqual(m.auprIn, expectedIn, accuracy: 1e-12)
        XCTAssertEqual(m.auprOut, expectedOut, accuracy: 1e-12)
    }

    // F5: ID [0.9, 0.8, 0.7, 0.3], OOD [0.85, 0.2, 0.1].
    func testAUPRInAndOut() throws {
        let m = try OODMetrics.compute(idScores: [0.9, 0.8, 0.7, 0.3], oodScores: [0.85, 0.2, 0.1])
        XCTAssertEqual(m.auprIn, 0.804167, accuracy: 5e-7)
        XCTAssertEqual(m.auprIn, 0.25 * (1 + 2.0 / 3 + 3.0 / 4 + 4.0 / 5), accuracy: 1e-15)
        XCTAssertEqual(m.auprOut, 0.833333, accuracy: 5e-7)
        XCTAssertEqual(m.auprOut, 5.0 / 6, accuracy: 1e-15)
        XCTAssertEqual(m.auroc, 0.75, accuracy: 1e-15)
        // strict: all 4 ID needed (threshold 0.3) -> OOD 0.85 accepted: 1/3.
        XCTAssertEqual(m.fpr95, 1.0 / 3, accuracy: 1e-15)
        // OpenOOD: all 3 OOD flagged at threshold 0.85 -> ID 0.3, 0.7, 0.8 flagged: 3/4.
        let o = try OODMetrics.compute(idScores: [0.9, 0.8, 0.7, 0.3], oodScores: [0.85, 0.2, 0.1], fprMode: .openood)
        XCTAssertEqual(o.fpr95, 0.75, accuracy: 1e-15)
    }

    // F5: 100 samples, 1 positive, all scores 0 -> AP 0.01 (the trapezoid would give ~0.505).
    func testAveragePrecisionOfDegenerateDetector() {
        let ap = OODMetricFunctions.averagePrecision(positiveScores: [0], negativeScores: [Double](repeating: 0, count: 99))
        XCTAssertEqual(ap, 0.01, accuracy: 1e-15)
    }

    // F5: labels [1,1,0,0], scores [1,1,1,0] -> AUROC 0.75 in every input order.
    func testTiesAUROCForEveryPermutation() throws {
        let labels = [1, 1, 0, 0]
        let scores: [Double] = [1, 1, 1, 0]
        var count = 0
        for p in permutations([0, 1, 2, 3]) {
            var id = [Double]()
            var ood = [Double]()
            for i in p { if labels[i] == 1 { id.append(scores[i]) } else { ood.append(scores[i]) } }
            let m = try OODMetrics.compute(idScores: id, oodScores: ood)
            XCTAssertEqual(m.auroc, 0.75, "permutation \(p)")
            count += 1
        }
        XCTAssertEqual(count, 24)
    }

    // Reference mode: recall 0.94 (distance 0.01) beats recall 1.0 (distance 0.05); at recall 0.94
    // the loosest threshold sits just above the low ID group, so the 10 OOD tied with it are not
    // counted; strict counts them.
    func testReferenceModePicksClosestRecallBelow95() throws {
        let id = (0..<94).map { 0.9 + Double($0) * 0.001 } + [Double](repeating: 0.3, count: 6)
        let ood = [Double](repeating: 0.3, count: 10) + [Double](repeating: 0.1, count: 10)
        let strict = try OODMetrics.compute(idScores: id, oodScores: ood, fprMode: .strict)
        let reference = try OODMetrics.compute(idScores: id, oodScores: ood, fprMode: .reference)
        XCTAssertEqual(strict.fpr95, 0.5, accuracy: 1e-15)
        XCTAssertEqual(reference.fpr95, 0.0)
    }

    // Reference mode, equal recalls: the points with recall 0.94 are the last high ID score (FPR 0)
    // and the OOD group at 0.5 (FPR 0.5); the reference scans recall downwards from the loosest
    // threshold and keeps the first minimum, i.e. the loosest point: 0.5, not 0.
    func testReferenceModeEqualRecallTakesLoosestThreshold() throws {
        let id = (0..<94).map { 0.9 + Double($0) * 0.001 } + [Double](repeating: 0.3, count: 6)
        let ood = [Double](repeating: 0.5, count: 10) + [Double](repeating: 0.1, count: 10)
        XCTAssertEqual(try OODMetrics.compute(idScores: id, oodScores: ood, fprMode: .reference).fpr95, 0.5)
        XCTAssertEqual(try OODMetrics.compute(idScores: id, oodScores: ood, fprMode: .strict).fpr95, 0.5)
    }

    // Reference mode can also report MORE than strict: ID = 1...100, OOD = [5.5]. Recall 0.95 is
    // reached at ID score 6 (strict: OOD 5.5 rejected, FPR 0) and still holds at threshold 5.5,
    // the loosest point with that recall, which the reference picks (FPR 1).
    func testReferenceModeCountsOODBetweenThe95thAnd96thID() throws {
        let id = (1...100).map(Double.init)
        XCTAssertEqual(try OODMetrics.compute(idScores: id, oodScores: [5.5], fprMode: .strict).fpr95, 0.0)
        XCTAssertEqual(try OODMetrics.compute(idScores: id, oodScores: [5.5], fprMode: .reference).fpr95, 1.0)
        XCTAssertEqual(try OODMetrics.compute(idScores: id, oodScores: [5.5, 50], fprMode: .reference).fpr95, 1.0)
        XCTAssertEqual(try OODMetrics.compute(idScores: id, oodScores: [4.5, 50], fprMode: .reference).fpr95, 0.5)
    }

    // Reference mode reproduces float64 argmin: |0.9 - 0.95| = 0.04999999999999993 is smaller than
    // |1.0 - 0.95| = 0.050000000000000044, so recall 0.9 wins the apparent tie.
    func testReferenceModeFloatTieGoesToRecall90() throws {
        let id = (0..<9).map { 0.9 + Double($0) * 0.01 } + [0.3]
        let ood = [Double](repeating: 0.3, count: 5) + [Double](repeating: 0.1, count: 5)
        XCTAssertEqual(try OODMetrics.compute(idScores: id, oodScores: ood, fprMode: .reference).fpr95, 0.0)
        XCTAssertEqual(try OODMetrics.compute(idScores: id, oodScores: ood, fprMode: .strict).fpr95, 0.5)
    }

    // OpenOOD mode follows sklearn roc_curve(drop_intermediate=True): with one ID and one OOD tied
    // at each of 20 scores, every interior ROC point is collinear and dropped, so the first point
    // with OOD recall >= 0.95 is the last one (FPR 1.0), where a plain scan gives 19/20.
    func testOpenOODModeDropsCollinearPoints() throws {
        let s = (1...20).map(Double.init)
        let m = try OODMetrics.compute(idScores: s, oodScores: s, fprMode: .openood)
        XCTAssertEqual(m.fpr95, 1.0)
        let plain = OODMetricFunctions.fpr(idScores: s.map { -$0 }, oodScores: s.map { -$0 }, mode: .strict)
        XCTAssertEqual(plain, 0.95, accuracy: 1e-15)
        XCTAssertEqual(m.auroc, 0.5)
    }

    // OpenOOD equals strict FPR with the roles swapped and scores negated whenever no point is dropped.
    func testOpenOODIsStrictWithRolesSwapped() throws {
        var rng = SplitMix64(seed: 7)
        let id = (0..<200).map { _ in Double.random(in: 0..<1, using: &rng) + 0.3 }
        let ood = (0..<150).map { _ in Double.random(in: 0..<1, using: &rng) }
        let openood = try OODMetrics.compute(idScores: id, oodScores: ood, fprMode: .openood).fpr95
        let swapped = Naive.strictFPR(ood.map { -$0 }, id.map { -$0 })
        XCTAssertEqual(openood, swapped)
    }

    // F5 near-ties: distinct doubles are distinct thresholds (no epsilon), equal ones tie exactly.
    func testNearTiesAreExact() throws {
        XCTAssertEqual(try OODMetrics.compute(idScores: [Double(1).nextUp], oodScores: [1.0]).auroc, 1.0)
        XCTAssertEqual(try OODMetrics.compute(idScores: [0.1 + 0.2], oodScores: [0.3]).auroc, 1.0)
        XCTAssertEqual(try OODMetrics.compute(idScores: [1.0], oodScores: [1.0]).auroc, 0.5)
        XCTAssertEqual(try OODMetrics.compute(idScores: [0.0], oodScores: [-0.0]).auroc, 0.5)
    }

    // MARK: F7 non-finite scores

    func testNonFiniteScoresAreACountedError() {
        let id: [Double] = [0.9, .nan, 0.8, .infinity, .nan]
        let ood: [Double] = [0.1, -.infinity, 0.2]
        XCTAssertThrowsError(try OODMetrics.compute(idScores: id, oodScores: ood)) { error in
            guard case let OODMetricsError.nonFiniteScores(idc, oodc, nID, nOOD) = error else {
                return XCTFail("unexpected error \(error)")
            }
            XCTAssertEqual(idc, NonFiniteCounts(nan: 2, positiveInfinity: 1, negativeInfinity: 0))
            XCTAssertEqual(oodc, NonFiniteCounts(nan: 0, positiveInfinity: 0, negativeInfinity: 1))
            XCTAssertEqual(nID, 5)
            XCTAssertEqual(nOOD, 3)
            let text = String(describing: error)
            XCTAssertTrue(text.contains("ID has 3 (2 NaN, 1 +inf, 0 -inf) of 5"), text)
            XCTAssertTrue(text.contains("OOD has 1 (0 NaN, 0 +inf, 1 -inf) of 3"), text)
            XCTAssertTrue(text.contains("Hint:"), text)
        }
    }

    func testExcludeRecordsCountsAndRanksTheRest() throws {
        let id: [Double] = [0.9, .nan, 0.8, .infinity, .nan]
        let ood: [Double] = [0.1, -.infinity, 0.2]
        let m = try OODMetrics.compute(idScores: id, oodScores: ood, nonFinite: .exclude)
        XCTAssertEqual(m.excludedID, 3)
        XCTAssertEqual(m.excludedOOD, 1)
        XCTAssertEqual(m.nID, 2)
        XCTAssertEqual(m.nOOD, 2)
        let clean = try OODMetrics.compute(idScores: [0.9, 0.8], oodScores: [0.1, 0.2])
        XCTAssertEqual(m.auroc, clean.auroc)
        XCTAssertEqual(m.auprIn, clean.auprIn)
        XCTAssertEqual(m.fpr95, clean.fpr95)
    }

    func testEmptySetsAreErrors() {
        XCTAssertThrowsError(try OODMetrics.compute(idScores: [], oodScores: [0.1])) {
            XCTAssertEqual($0 as? OODMetricsError, .emptyScores(set: "ID", excluded: 0))
        }
        XCTAssertThrowsError(try OODMetrics.compute(idScores: [0.1], oodScores: [.nan], nonFinite: .exclude)) {
            XCTAssertEqual($0 as? OODMetricsError, .emptyScores(set: "OOD", excluded: 1))
        }
    }

    func testJSONHasSnakeCaseKeysAndNoBareNonFinite() throws {
        let m = try OODMetrics.compute(idScores: [0.9, 0.8, 0.7, 0.3], oodScores: [0.85, 0.2, 0.1], fprMode: .openood)
        let json = try m.jsonString()
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        for key in ["auroc", "aupr_in", "aupr_out", "fpr95", "n_id", "n_ood", "fpr_mode",
                    "fpr_mode_label", "fpr_positive_class", "excluded_id", "excluded_ood"] {
            XCTAssertNotNil(object[key], "missing key \(key) in \(json)")
        }
        XCTAssertEqual(object["fpr_mode"] as? String, "openood")
        XCTAssertEqual(object["fpr_positive_class"] as? String, "OOD")
        XCTAssertEqual(object["n_id"] as? Int, 4)
        XCTAssertEqual((object["auroc"] as? Double) ?? -1, 0.75, accuracy: 1e-15)
        XCTAssertEqual(try JSONDecoder().decode(OODMetrics.self, from: Data(json.utf8)), m)

        var broken = m
        broken.auroc = .nan
        broken.fpr95 = .infinity
        let brokenJSON = try broken.jsonString()
        XCTAssertFalse(brokenJSON.lowercased().contains("nan"), brokenJSON)
        XCTAssertFalse(brokenJSON.lowercased().contains("inf"), brokenJSON)
        XCTAssertTrue(brokenJSON.contains("\"auroc\":null"), brokenJSON)
        let reparsed = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(brokenJSON.utf8)) as? [String: Any])
        XCTAssertTrue(reparsed["fpr95"] is NSNull)
    }

    func testSummaryLinePrintsPercentagesCountsAndMode() throws {
        let m = try OODMetrics.compute(idScores: [0.9, 0.8, 0.7, 0.3], oodScores: [0.85, 0.2, 0.1])
        let line = m.summaryLine
        XCTAssertTrue(line.contains("AUROC 75.00"), line)
        XCTAssertTrue(line.contains("AUPR-In 80.42"), line)
        XCTAssertTrue(line.contains("AUPR-Out 83.33"), line)
        XCTAssertTrue(line.contains("FPR95 33.33"), line)
        XCTAssertTrue(line.contains("n_id 4"), line)
        XCTAssertTrue(line.contains("n_ood 3"), line)
        XCTAssertTrue(line.contains(FPRMode.strict.label), line)
    }

    func testModeLabelsNameThePositiveClass() {
        XCTAssertEqual(FPRMode.strict.positiveClass, "ID")
        XCTAssertEqual(FPRMode.reference.positiveClass, "ID")
        XCTAssertEqual(FPRMode.openood.positiveClass, "OOD")
        for mode in FPRMode.allCases {
            XCTAssertTrue(mode.label.contains("\(mode.positiveClass) positive"), mode.label)
        }
        XCTAssertEqual(FPRMode(rawValue: "reference"), .reference)
    }

    func testAverageIsUnweightedMeanOfRows() throws {
        let a = try OODMetrics.compute(idScores: [0.9, 0.8, 0.7, 0.3], oodScores: [0.85, 0.2, 0.1])
        let b = try OODMetrics.compute(idScores: [0.9, 0.8, 0.7, 0.3], oodScores: [Double](repeating: 0.0, count: 30))
        let avg = OODMetrics.average([a, b])
        XCTAssertEqual(b.auroc, 1.0)
        XCTAssertEqual(avg.auroc, (0.75 + 1.0) / 2, accuracy: 1e-15)
        XCTAssertEqual(avg.nOOD, 33)
        XCTAssertEqual(avg.nID, 4)
    }
}

/// All permutations of a small array (Heap's algorithm is not needed at this size).
func permutations<T>(_ a: [T]) -> [[T]] {
    if a.count <= 1 { return [a] }
    var out = [[T]]()
    for i in a.indices {
        var rest = a
        let x = rest.remove(at: i)
        for p in permutations(rest) { out.append([x] + p) }
    }
    return out
}
