import Foundation
@testable import OODDetection
import XCTest

/// The two AUPR conventions against scikit-learn (Tests/Fixtures/metrics/make_aupr_fixture.py ->
/// aupr.json): average_precision_score and auc(recall, precision) over precision_recall_curve,
/// AUPR-In with ID positive, AUPR-Out with OOD positive on negated scores; and the bootstrap's
/// O(n) replicate under the trapezoid rule against the naive twin.
final class AUPRConventionTests: XCTestCase {
    struct Fixture: Decodable {
        struct Case: Decodable {
            let name: String
            let id: [Double], ood: [Double]
            let trapezoid_in: Double, trapezoid_out: Double, ap_in: Double, ap_out: Double
        }
        let sklearn_version: String
        let cases: [Case]
    }

    func testBothConventionsMatchScikitLearn() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/metrics/aupr.json")
        let fixture = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
        XCTAssertEqual(fixture.cases.count, 6)
        for c in fixture.cases {
            let ap = try OODMetrics.compute(idScores: c.id, oodScores: c.ood)
            let trap = try OODMetrics.compute(idScores: c.id, oodScores: c.ood, auprMode: .trapezoid)
            XCTAssertEqual(ap.auprIn, c.ap_in, accuracy: 1e-12, c.name)
            XCTAssertEqual(ap.auprOut, c.ap_out, accuracy: 1e-12, c.name)
            XCTAssertEqual(trap.auprIn, c.trapezoid_in, accuracy: 1e-12, c.name)
            XCTAssertEqual(trap.auprOut, c.trapezoid_out, accuracy: 1e-12, c.name)
            XCTAssertEqual(trap.auprMode, .trapezoid)
            XCTAssertEqual(trap.auroc, ap.auroc, "the AUPR convention must not touch AUROC")
        }
        // Worked by hand: ID [0.9, 0.8, 0.7, 0.4], OOD [0.85, 0.5, 0.1]. Points (R, P) from the top:
        // (1/4, 1), (1/4, 1/2), (2/4, 2/3), (3/4, 3/4), (3/4, 3/5), (1, 4/6), (1, 4/7); trapezoid
        // from (0, 1): 1/4 * 1 + 1/4 * (1/2 + 2/3)/2 + 1/4 * (2/3 + 3/4)/2 + 1/4 * (3/5 + 2/3)/2 = 0.73125.
        let worked = try OODMetrics.compute(idScores: [0.9, 0.8, 0.7, 0.4], oodScores: [0.85, 0.5, 0.1], auprMode: .trapezoid)
        XCTAssertEqual(worked.auprIn, 0.73125, accuracy: 1e-15)
    }

    func testTrapezoidRecordedInJSONAndOldFilesReadAsAveragePrecision() throws {
        let m = try OODMetrics.compute(idScores: [1, 2, 3], oodScores: [0, 2.5], auprMode: .trapezoid)
        let json = try m.jsonString()
        XCTAssertTrue(json.contains("\"aupr_mode\":\"trapezoid\""), json)
        XCTAssertEqual(try JSONDecoder().decode(OODMetrics.self, from: Data(json.utf8)), m)
        let old = #"{"auroc":0.5,"aupr_in":0.5,"aupr_out":0.5,"fpr95":1,"n_id":3,"n_ood":2,"fpr_mode":"strict"}"#
        XCTAssertEqual(try JSONDecoder().decode(OODMetrics.self, from: Data(old.utf8)).auprMode, .averagePrecision)
        XCTAssertThrowsError(try JSONDecoder().decode(AUPRMode.self, from: Data(#""trapezium""#.utf8)))
    }

    /// The bootstrap replicate (one set, and all sets in one pass) under the trapezoid rule equals
    /// OODMetrics.compute on the expanded resample, bit for bit.
    func testBootstrapTrapezoidEqualsTheNaiveTwin() throws {
        var d = BootstrapTests.Draws(31)
        for trial in 0..<300 {
            let nID = 1 + d.int(25), grid = 1 + d.int(8)
            let id = (0..<nID).map { _ in Double(d.int(grid)) + (d.int(2) == 0 ? 0.5 : 0) }
            let sets = (0..<(1 + d.int(3))).map { _ in (0..<(1 + d.int(20))).map { _ in Double(d.int(grid)) - (d.int(2) == 0 ? 0.5 : 1) } }
            var idCounts = (0..<nID).map { _ in Int32(d.int(3)) }
            if idCounts.allSatisfy({ $0 == 0 }) { idCounts[0] = 1 }
            var setCounts = sets.map { s in s.map { _ in Int32(d.int(3)) } }
            for k in setCounts.indices where setCounts[k].allSatisfy({ $0 == 0 }) { setCounts[k][0] = 2 }
            let expandedID = zip(id, idCounts).flatMap { [Double](repeating: $0, count: Int($1)) }
            var scratch = BootstrapSetsTable.Scratch()
            let combined = idCounts + setCounts.flatMap { $0 }
            let onePass = combined.withUnsafeBufferPointer {
                BootstrapSetsTable(idScores: id, oodScores: sets).metrics(counts: $0, scratch: &scratch, auprMode: .trapezoid)
            }
            for (k, set) in sets.enumerated() {
                let expandedOOD = zip(set, setCounts[k]).flatMap { [Double](repeating: $0, count: Int($1)) }
                for mode in FPRMode.allCases {
                    let naive = try OODMetrics.compute(idScores: expandedID, oodScores: expandedOOD, fprMode: mode, auprMode: .trapezoid)
                    let fast = BootstrapTable(idScores: id, oodScores: set).metrics(idCounts: idCounts, oodCounts: setCounts[k], fprMode: mode,
                                                                                     auprMode: .trapezoid)
                    XCTAssertEqual(fast, naive, "trial \(trial) set \(k) \(mode)")
                    if mode == .strict { XCTAssertEqual(onePass[k], naive, "trial \(trial) set \(k), one pass") }
                }
            }
        }
    }
}
