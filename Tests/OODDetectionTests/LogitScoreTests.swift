// Worked values from pitfalls.md F6 (score definitions) and F7 (stable log-sum-exp).
import XCTest
@testable import OODDetection

final class LogitScoreTests: XCTestCase {
    func testEnergySignAndValue() {
        // +log(e^2 + e^0) = 2 + log(1 + e^-2) = 2.126928
        let e = LogitScore.energy(logits: [2, 0] as [Double], numClasses: 2)
        XCTAssertEqual(e[0], 2.126928, accuracy: 5e-7)
        XCTAssertEqual(e[0], log(exp(2.0) + 1.0), accuracy: 1e-15)
        let f = LogitScore.energy(logits: [2, 0] as [Float], numClasses: 2)
        XCTAssertEqual(f[0], e[0], accuracy: 1e-15)
    }

    func testEnergyTemperature() {
        // T * log(sum exp(l / T)) for l = [3, 1, -2], T = 2.5, by the naive formula.
        let l: [Double] = [3, 1, -2]
        let t = 2.5
        let naive = t * log(l.map { exp($0 / t) }.reduce(0, +))
        XCTAssertEqual(LogitScore.energy(logits: l, numClasses: 3, temperature: t)[0], naive, accuracy: 1e-14)
    }

    func testStableLogSumExpAtLargeLogits() {
        let logits: [Float] = [1000, 0, 0, 1000]  // two rows: [1000, 0] and [0, 1000]
        let e = LogitScore.energy(logits: logits, numClasses: 2)
        XCTAssertEqual(e, [1000.0, 1000.0])
        let p = LogitScore.maxSoftmax(logits: logits, numClasses: 2)
        XCTAssertEqual(p, [1.0, 1.0])
        // and not saturated below the float range: [-1000, -1001] -> -1000 + log(1 + e^-1)
        let low = LogitScore.energy(logits: [-1000, -1001] as [Double], numClasses: 2)
        XCTAssertEqual(low[0], -1000 + log(1 + exp(-1.0)), accuracy: 1e-12)
    }

    func testEnergyAUROCWorkedExample() throws {
        let idE = LogitScore.energy(logits: [5, 0, 4, 0] as [Float], numClasses: 2)
        let oodE = LogitScore.energy(logits: [0.1, 0, 0.2, 0] as [Float], numClasses: 2)
        let m = try OODMetrics.compute(idScores: idE, oodScores: oodE)
        XCTAssertEqual(m.auroc, 1.0)
        XCTAssertEqual(m.fpr95, 0.0)
        // The sign matters: the negated energy (the "free energy" itself) would give AUROC 0.
        let flipped = try OODMetrics.compute(idScores: idE.map { -$0 }, oodScores: oodE.map { -$0 })
        XCTAssertEqual(flipped.auroc, 0.0)
    }

    func testMSPOrderingWithSoftmaxAppliedOnce() throws {
        // Probabilities given as logits log(p); the zero probability as a large negative logit.
        let idLogits: [Double] = [log(0.5), log(0.5), -1e4]
        let oodLogits: [Double] = [log(0.49), log(0.255), log(0.255)]
        let idMSP = LogitScore.maxSoftmax(logits: idLogits, numClasses: 3)
        let oodMSP = LogitScore.maxSoftmax(logits: oodLogits, numClasses: 3)
        XCTAssertEqual(idMSP[0], 0.5, accuracy: 1e-12)
        XCTAssertEqual(oodMSP[0], 0.49, accuracy: 1e-12)
        XCTAssertEqual(try OODMetrics.compute(idScores: idMSP, oodScores: oodMSP).auroc, 1.0)
        // Softmax applied twice (the reference's bug) compresses both and reverses the order:
        func softmax(_ v: [Double]) -> [Double] {
            let m = v.max()!
            let e = v.map { exp($0 - m) }
            let s = e.reduce(0, +)
            return e.map { $0 / s }
        }
        let twiceID = softmax(softmax(idLogits)).max()!
        let twiceOOD = softmax(softmax(oodLogits)).max()!
        XCTAssertLessThan(twiceID, twiceOOD, "double softmax should misorder this example")
    }

    func testLogMSPKeepsResolutionWhereMSPSaturates() throws {
        let logits: [Float] = [40, 0, 50, 0, 2, 0, 0, 0]  // [4, 2]
        let msp = LogitScore.maxSoftmax(logits: logits, numClasses: 2)
        XCTAssertEqual(msp[0], 1.0)  // 1 - 4.2e-18 rounds to 1 in Double: documented saturation
        XCTAssertEqual(msp[1], 1.0)
        let logMSP = LogitScore.logMaxSoftmax(logits: logits, numClasses: 2)
        XCTAssertEqual(logMSP[0], -exp(-40.0), accuracy: 1e-30)
        XCTAssertLessThan(logMSP[0], logMSP[1])
        XCTAssertEqual(logMSP[2], log(msp[2]), accuracy: 1e-15)
        XCTAssertEqual(logMSP[3], log(0.5), accuracy: 1e-15)  // two equal maxima
        // ID = gap 50, OOD = gap 40: MSP ties (AUROC 0.5), log MSP ranks (AUROC 1).
        XCTAssertEqual(try OODMetrics.compute(idScores: [msp[1]], oodScores: [msp[0]]).auroc, 0.5)
        XCTAssertEqual(try OODMetrics.compute(idScores: [logMSP[1]], oodScores: [logMSP[0]]).auroc, 1.0)
    }

    func testMaxLogitAndShapes() {
        let logits: [Float] = [1, 7, 3, -2, -5, -1]  // [2, 3]
        XCTAssertEqual(LogitScore.maxLogit(logits: logits, numClasses: 3), [7, -1])
        XCTAssertEqual(LogitScore.maxSoftmax(logits: logits, numClasses: 3).count, 2)
        XCTAssertEqual(LogitScore.energy(logits: [Float](), numClasses: 3), [])
    }

    func testNaNLogitGivesNaNScoreWhichMetricsReject() {
        let e = LogitScore.energy(logits: [1, .nan, 0, 0] as [Float], numClasses: 2)
        XCTAssertTrue(e[0].isNaN)
        XCTAssertTrue(LogitScore.maxLogit(logits: [.nan, 1] as [Double], numClasses: 2)[0].isNaN)
        XCTAssertTrue(LogitScore.maxLogit(logits: [1, .nan] as [Double], numClasses: 2)[0].isNaN)
        XCTAssertThrowsError(try OODMetrics.compute(idScores: e, oodScores: [0.5]))
    }
}
