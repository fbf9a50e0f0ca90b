import XCTest
@testable import OODDetection
import TensorCore

/// The exact top-k search behind KNN and NNGuide against a naive full sort, and a bank split into
/// shards against the whole bank (the merge the ranks do by allgather).
final class BankSearchTests: XCTestCase {
    /// A bank with exact duplicates (ties) and an outlier row, as prepared rows.
    static func bank(rows n: Int, dim d: Int, seed: UInt64) -> [Double] {
        var rng = SplitMix64(seed: seed)
        var x = (0..<(n * d)).map { _ in Double.random(in: -1..<1, using: &rng) }
        for r in stride(from: 3, to: n, by: 5) { for j in 0..<d { x[r * d + j] = x[(r - 1) * d + j] } }  // ties
        for j in 0..<d { x[2 * d + j] = 40 }  // outlier
        return x
    }

    /// Naive top-k: every value by the same fixed-order sum as the search, sorted by (value, id).
    static func naive(_ queries: [Double], _ bank: [Double], _ ids: [Int64], d: Int, k: Int, metric: BankSearch.Metric)
        -> (values: [Double], ids: [Int64]) {
        var values: [Double] = [], out: [Int64] = []
        for i in 0..<(queries.count / d) {
            var all: [(Double, Int64)] = []
            for r in 0..<(bank.count / d) {
                // Four interleaved partial sums (j mod 4), (s0 + s1) + (s2 + s3), then the tail.
                var part = [0.0, 0.0, 0.0, 0.0]
                let body = d / 4 * 4
                for j in 0..<body {
                    part[j % 4] += metric == .squaredDistance ? (queries[i * d + j] - bank[r * d + j]) * (queries[i * d + j] - bank[r * d + j])
                        : queries[i * d + j] * bank[r * d + j]
                }
                var s = (part[0] + part[1]) + (part[2] + part[3])
                for j in body..<d {
                    s += metric == .squaredDistance ? (queries[i * d + j] - bank[r * d + j]) * (queries[i * d + j] - bank[r * d + j])
                        : queries[i * d + j] * bank[r * d + j]
                }
                all.append((s, ids[r]))
            }
            all.sort { $0.0 != $1.0 ? (metric == .squaredDistance ? $0.0 < $1.0 : $0.0 > $1.0) : $0.1 < $1.1 }
            values += all.prefix(k).map(\.0)
            out += all.prefix(k).map(\.1)
        }
        return (values, out)
    }

    func testWholeBankEqualsNaiveSortWithTies() {
        let d = 7, n = 300, k = 9
        let rows = Self.bank(rows: n, dim: d, seed: 3)
        let ids = (0..<Int64(n)).map { $0 * 3 + 5 }
        var queries = Self.bank(rows: 40, dim: d, seed: 4)
        for j in 0..<d { queries[j] = rows[7 * d + j] }  // query 0 equals rows 7 and 8: two distance-0 ties
        let bank = FeatureBank(rows: rows, ids: ids, featureDim: d)
        for metric in [BankSearch.Metric.squaredDistance, .dot] {
            let got = BankSearch.search(queries: queries, bank: bank, k: k, metric: metric)
            let want = Self.naive(queries, rows, ids, d: d, k: k, metric: metric)
            XCTAssertEqual(got.ids, want.ids, "\(metric)")
            XCTAssertEqual(got.values, want.values, "\(metric): values must be the plain loop's, bitwise")
        }
        let first = BankSearch.search(queries: queries, bank: bank, k: k, metric: .squaredDistance)
        XCTAssertEqual(Array(first.ids[0..<2]), [ids[7], ids[8]], "ties broken by the smaller id")
        XCTAssertEqual(Array(first.values[0..<2]), [0, 0])
    }

    func testShardsMergedEqualWholeBankBitwise() {
        let d = 6, n = 257, k = 11
        let rows = Self.bank(rows: n, dim: d, seed: 8)
        let ids = (0..<Int64(n)).map { $0 }
        let queries = Self.bank(rows: 33, dim: d, seed: 9)
        let whole = FeatureBank(rows: rows, ids: ids, featureDim: d)
        for metric in [BankSearch.Metric.squaredDistance, .dot] {
            let want = BankSearch.search(queries: queries, bank: whole, k: k, metric: metric)
            for cuts in [[0, 128, 257], [0, 1, 2, 200, 257], [0, 0, 5, 257]] {  // including an empty shard
                let parts = (0..<(cuts.count - 1)).map { s in
                    BankSearch.search(queries: queries, bank: FeatureBank(rows: Array(rows[(cuts[s] * d)..<(cuts[s + 1] * d)]),
                                                                          ids: Array(ids[cuts[s]..<cuts[s + 1]]), featureDim: d),
                                      k: k, metric: metric)
                }
                XCTAssertEqual(BankSearch.merge(parts, metric: metric), want, "\(metric), shards \(cuts)")
                XCTAssertEqual(BankSearch.merge(parts.reversed(), metric: metric), want, "the merge must not depend on the order of the parts")
            }
        }
    }

    func testFewerRowsThanKArePaddedAndInvalidQueriesMarked() {
        let d = 2
        let bank = FeatureBank(rows: [1, 0, 0, 1], ids: [10, 20], featureDim: d)
        let t = BankSearch.search(queries: [1, 0, .nan, 1], bank: bank, k: 3, metric: .squaredDistance)
        XCTAssertEqual(Array(t.ids[0..<3]), [10, 20, .max])
        XCTAssertEqual(t.values[2], .infinity)
        XCTAssertEqual(t.invalid, [false, true])
        let bad = FeatureBank(rows: [1, 0, .infinity, 1], ids: [10, 20], featureDim: d)
        XCTAssertTrue(bad.hasNonFinite)
        XCTAssertEqual(BankSearch.search(queries: [1, 0], bank: bad, k: 1, metric: .dot).invalid, [true])
    }

    func testKNNScoresInChunksEqualOneChunkAndShards() {
        // More queries than one chunk, and a bank split in two with the merge as `combine`.
        let d = 4, n = 60, k = 5
        var rng = SplitMix64(seed: 21)
        let train = (0..<(n * d)).map { _ in Float.random(in: 0..<1, using: &rng) }
        let nq = BankSearch.queryChunk + 37
        let queries = (0..<(nq * d)).map { _ in Float.random(in: 0..<1, using: &rng) }
        let whole = KNNDetector(trainingFeatures: train, featureDim: d, k: k)
        let scores = whole.scores(features: queries)
        XCTAssertEqual(scores.count, nq)
        let lo = KNNDetector(bank: KNNDetector.bank(features: Array(train[0..<(25 * d)]), ids: (0..<25).map { $0 }, featureDim: d), k: k)
        let hi = KNNDetector(bank: KNNDetector.bank(features: Array(train[(25 * d)...]), ids: (25..<Int64(n)).map { $0 }, featureDim: d), k: k)
        // `combine` of shard lo searches shard hi for the same chunk of queries and merges.
        var chunk = 0
        let hiLists = hi.topK(features: queries)
        let sharded = lo.scores(features: queries) { mine in
            defer { chunk += 1 }
            return BankSearch.merge([mine, hiLists[chunk]], metric: .squaredDistance)
        }
        XCTAssertEqual(sharded.map(\.bitPattern), scores.map(\.bitPattern))
        XCTAssertEqual(chunk, 2, "two chunks of queries, one combine each")
    }
}
