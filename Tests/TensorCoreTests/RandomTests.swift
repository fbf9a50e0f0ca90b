import Foundation
import TensorCore
import XCTest

/// SplitMix64 and the Fisher-Yates shuffle (the sampler's and the validation split's streams).
final class RandomTests: XCTestCase {
    func testSplitMix64ReferenceOutputs() {
        // Reference stream of Vigna's splitmix64.c for x = 1234567.
        var g = SplitMix64(seed: 1_234_567)
        XCTAssertEqual((0..<5).map { _ in g.next() },
                       [6_457_827_717_110_365_317, 3_203_168_211_198_807_973, 9_817_491_932_198_370_423,
                        4_593_380_528_125_082_431, 16_408_922_859_458_223_821])
    }

    func testFisherYatesIsUniformOnThreeElements() {
        // 6 permutations of 3 elements, 60,000 draws: each should appear 10,000 +- a few hundred.
        // An off-by-one (j in 0..<i, Sattolo) would never produce the identity.
        var counts = [[Int]: Int]()
        for epoch in 0..<60_000 {
            counts[Shuffle.permutation(count: 3, seed: 1, stream: UInt64(epoch)), default: 0] += 1
        }
        XCTAssertEqual(counts.count, 6)
        let chiSquare = counts.values.reduce(0.0) { $0 + pow(Double($1) - 10_000, 2) / 10_000 }
        XCTAssertLessThan(chiSquare, 20.5, "chi-square with 5 dof, p = 0.001: \(counts)")
    }

    func testUniformBelowStaysInRange() {
        var g = SplitMix64(seed: 3)
        for bound in [1, 2, 3, 7, 1000, Int(UInt32.max) + 5] {
            for _ in 0..<200 { XCTAssertLessThan(g.uniform(below: UInt64(bound)), UInt64(bound)) }
        }
    }
}
