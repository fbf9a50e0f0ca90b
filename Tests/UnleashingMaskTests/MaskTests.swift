import UnleashingMask
import XCTest

final class MaskTests: XCTestCase {
    func testKeptCountIsExactRoundHalfAwayAtLeastOne() {
        XCTAssertEqual(WeightMask.keptCount(n: 10, keepRatio: 0.9), 9, "pitfalls F8: n = 10, keep 0.9 keeps exactly 9")
        XCTAssertEqual(WeightMask.keptCount(n: 10, keepRatio: 0.95), 10, "9.5 rounds half away from zero")
        XCTAssertEqual(WeightMask.keptCount(n: 10, keepRatio: 0.01), 1, "at least one")
        XCTAssertEqual(WeightMask.keptCount(n: 1000, keepRatio: 0.965), 965)
        XCTAssertEqual(WeightMask.keptCount(n: 7, keepRatio: 1.0), 7)
        // The reference's truncation of (1 - k) * n prunes nothing for n = 10, k = 0.9:
        XCTAssertEqual(Int((1 - 0.9) * 10.0), 0)
    }

    func testTopKTieBreakingGoesToLowerIndex() {
        let s: [Float] = [0.5, 0.5, 0.5, 0.1]
        XCTAssertEqual(s.withUnsafeBufferPointer { WeightMask.topK(scores: $0, keep: 2) }, [1, 1, 0, 0])
        let t: [Float] = [-0.9, 0.1, 0.9, -0.2]
        XCTAssertEqual(t.withUnsafeBufferPointer { WeightMask.topK(scores: $0, keep: 3) }, [1, 0, 1, 1], "by magnitude")
    }

    func testGlobalTopKUsesOneThreshold() {
        let masks = WeightMask.globalTopK(scores: [[0.1, 0.9], [0.8, 0.7, 0.05]], keepRatio: 0.6)
        XCTAssertEqual(masks, [[0, 1], [1, 1, 0]])
    }

    func testRandomMaskIsReproducibleAndExact() {
        let a = WeightMask.random(n: 1000, keepRatio: 0.965, seed: 4, stream: 2)
        let b = WeightMask.random(n: 1000, keepRatio: 0.965, seed: 4, stream: 2)
        let c = WeightMask.random(n: 1000, keepRatio: 0.965, seed: 5, stream: 2)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
        XCTAssertEqual(a.reduce(0, +), 965)
    }

    func testXiFromPaddedShardsGatheredById() {
        // pitfalls F1: 10 samples with loss 0.1 * (i + 1) on 4 padded ranks -> 0.55, not 5.8 / 12.
        let shards: [[(Int, Double)]] = [[(0, 0.1), (4, 0.5), (8, 0.9)], [(1, 0.2), (5, 0.6), (9, 1.0)],
                                         [(2, 0.3), (6, 0.7)], [(3, 0.4), (7, 0.8)]]
        let byID = shards.flatMap { $0 }.sorted { $0.0 < $1.0 }
        XCTAssertEqual(byID.map(\.0), Array(0..<10), "padding removed: every id once")
        XCTAssertEqual(LossConstraint.xi(maskedLossesInIdOrder: byID.map(\.1)), 0.55, accuracy: 1e-15)
    }

    func testAtypicalRules() {
        let loss = [0.1, 0.2, 0.3, 0.4]
        let masked = [0.5, 0.2, 0.9, 0.5]
        let correct = [true, true, false, true]
        let maskedCorrect = [false, true, false, true]
        XCTAssertEqual(AtypicalRule.flip.mask(loss: loss, maskedLoss: masked, correct: correct, maskedCorrect: maskedCorrect),
                       [true, false, false, false])
        XCTAssertEqual(AtypicalRule.quantile(0.5).mask(loss: loss, maskedLoss: masked, correct: correct, maskedCorrect: maskedCorrect),
                       [true, false, true, false], "0.9 (id 2), then the tie 0.5/0.5 goes to the lower id (0, not 3)")
    }

    func testQuantileTieGoesToLowerId() {
        let m = AtypicalRule.quantile(0.25).mask(loss: [0, 0, 0, 0], maskedLoss: [0.5, 0.7, 0.7, 0.1],
                                                 correct: [true, true, true, true], maskedCorrect: [true, true, true, true])
        XCTAssertEqual(m, [false, true, false, false])
        let inc = AtypicalRule.increase(0.5).mask(loss: [0.1, 0.5, 0.2, 0.0], maskedLoss: [0.9, 0.6, 0.3, 0.8],
                                                  correct: [true, true, true, true], maskedCorrect: [true, true, true, true])
        XCTAssertEqual(inc, [true, false, false, true], "increases 0.8, 0.1, 0.1, 0.8")
    }

    func testFloodingSignOnTheGlobalBatch() {
        // pitfalls F3: xi = 0.5, two equal ranks with local mean loss 0.3 and 0.9: the global
        // mean 0.6 > 0.5 gives +1 (per-rank flooding would give -1 and +1, averaging to 0).
        let f = Flooding(xi: 0.5)
        let globalMean = (0.3 * 32 + 0.9 * 32) / 64
        XCTAssertEqual(f.gradientMultiplier(globalMeanLoss: globalMean), 1)
        let perRankAverage = (f.gradientMultiplier(globalMeanLoss: 0.3) * 1.0 + f.gradientMultiplier(globalMeanLoss: 0.9) * 1.0) / 2
        XCTAssertEqual(perRankAverage, 0)
        XCTAssertEqual(f.gradientMultiplier(globalMeanLoss: 0.4), -1)
        XCTAssertEqual(f.gradientMultiplier(globalMeanLoss: 0.5), 0)
        // The reference's beta: |beta * CE - xi| + xi, gradient beta * sign(beta * CE - xi) * grad CE,
        // level xi / beta. beta 2, xi 0.5: level 0.25; CE 0.3 descends with slope 2, CE 0.2 ascends.
        XCTAssertEqual(Flooding(xi: 0.5, beta: 2).level, 0.25)
        XCTAssertEqual(Flooding(xi: 0.5, beta: 2).gradientMultiplier(globalMeanLoss: 0.3), 2)
        XCTAssertEqual(Flooding(xi: 0.5, beta: 2).gradientMultiplier(globalMeanLoss: 0.2), -2)
        XCTAssertEqual(Flooding(xi: 0.5, beta: 0.5).gradientMultiplier(globalMeanLoss: 0.9), -0.5, "level 1.0")
        // Finite-difference check of the multiplier against the objective itself.
        for (beta, ce) in [(2.0, 0.3), (2.0, 0.2), (0.5, 0.9), (0.5, 1.1)] {
            let xi = 0.5, h = 1e-6
            func objective(_ c: Double) -> Double { abs(beta * c - xi) + xi }
            let fd = (objective(ce + h) - objective(ce - h)) / (2 * h)
            XCTAssertEqual(Flooding(xi: xi, beta: beta).gradientMultiplier(globalMeanLoss: ce), fd, accuracy: 1e-6, "beta \(beta) CE \(ce)")
        }
        XCTAssertTrue(f.objectiveDescription.contains("0.500000"), f.objectiveDescription)
    }

    func testAtypicalOnlyAblation() {
        let f = Flooding(xi: 0.5, atypicalIDs: [3, 7])
        XCTAssertEqual(f.perSampleMultipliers(globalMeanLoss: 0.2, sampleIDs: [1, 3, 7, 8]), [1, -1, -1, 1])
        XCTAssertEqual(f.perSampleMultipliers(globalMeanLoss: 0.9, sampleIDs: [1, 3]), [1, 1])
        XCTAssertNil(Flooding(xi: 0.5).perSampleMultipliers(globalMeanLoss: 0.2, sampleIDs: [1]))
        XCTAssertEqual(Flooding(xi: 0.5, beta: 2, atypicalIDs: [3]).perSampleMultipliers(globalMeanLoss: 0.2, sampleIDs: [1, 3]), [2, -2])
    }
}
