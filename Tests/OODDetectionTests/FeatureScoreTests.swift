// Mahalanobis (covariance normalisation, pooling, rank-additive sums), KNN and ReAct.
import XCTest
@testable import OODDetection

final class MahalanobisTests: XCTestCase {
    // Class 0: (0,0),(2,0),(0,2),(2,2), mean (1,1), centred scatter diag(4,4).
    // Class 1: (10,0),(12,0), mean (11,0), centred scatter diag(2,0).
    // Pooled over N = 6: covariance diag(6/6, 4/6) = diag(1, 2/3).
    private let features: [Float] = [0, 0, 2, 0, 0, 2, 2, 2, 10, 0, 12, 0]
    private let labels = [0, 0, 0, 0, 1, 1]

    private func fit(_ f: [Float], _ y: [Int], classes: Int = 2, d: Int = 2, ridge: Double = 0) throws -> (ClassFeatureSums, CentredScatter, MahalanobisDetector) {
        var sums = ClassFeatureSums(numClasses: classes, featureDim: d)
        sums.accumulate(features: f, labels: y)
        var scatter = CentredScatter(featureDim: d)
        scatter.accumulate(features: f, labels: y, classMeans: try sums.means())
        return (sums, scatter, try MahalanobisDetector(classSums: sums, scatter: scatter, ridge: ridge))
    }

    func testMeansAndPooledCovarianceDividedByN() throws {
        let (sums, scatter, _) = try fit(features, labels)
        XCTAssertEqual(try sums.means(), [1, 1, 11, 0])
        XCTAssertEqual(sums.counts, [4, 2])
        XCTAssertEqual(scatter.count, 6)
        // Not N-1 (would be 1.2, 0.8) and not a mean of per-class covariances (would be (1+1)/2, (1+0)/2).
        XCTAssertEqual(scatter.covariance(), [1, 0, 0, 2.0 / 3])
    }

    func testScoresAreMaxNegativeSquaredDistance() throws {
        let (_, _, det) = try fit(features, labels)
        let s = det.scores(features: [1, 1, 11, 1, 5, 3] as [Float])
        XCTAssertEqual(s[0], 0, accuracy: 1e-12)
        XCTAssertEqual(s[1], -1.5, accuracy: 1e-12)     // class 1: 0 + 1 / (2/3)
        XCTAssertEqual(s[2], -22, accuracy: 1e-12)      // class 0: 16 + 4 * 1.5 (class 1: 49.5)
    }

    func testAgainstExplicitInverseOnRandomCorrelatedData() throws {
        var rng = SplitMix64(seed: 5)
        let d = 4, c = 3, n = 300
        var f = [Float]()
        var y = [Int]()
        for i in 0..<n {
            let label = i % c
            let a = Double.random(in: -1..<1, using: &rng), b = Double.random(in: -1..<1, using: &rng)
            let e = (0..<d).map { _ in Double.random(in: -0.3..<0.3, using: &rng) }
            // correlated dims plus a class offset
            let x = [a + e[0], a + b + e[1], 2 * b + e[2], a - b + e[3]].map { $0 + Double(label) * 1.5 }
            f += x.map(Float.init)
            y.append(label)
        }
        let (sums, scatter, det) = try fit(f, y, classes: c, d: d)
        let means = try sums.means()
        let inv = invert(scatter.covariance(), d)
        let queries = (0..<(5 * d)).map { _ in Float.random(in: -3..<5, using: &rng) }
        let got = det.scores(features: queries)
        for i in 0..<5 {
            var best = -Double.infinity
            for k in 0..<c {
                let v = (0..<d).map { Double(queries[i * d + $0]) - means[k * d + $0] }
                var q = 0.0
                for r in 0..<d { for s in 0..<d { q += v[r] * inv[r * d + s] * v[s] } }
                best = max(best, -q)
            }
            XCTAssertEqual(got[i], best, accuracy: 1e-9 * max(1, abs(best)))
        }
    }

    func testRankPartialSumsAddUp() throws {
        var rng = SplitMix64(seed: 9)
        let d = 3, c = 2, n = 90
        let f = (0..<(n * d)).map { _ in Float.random(in: -2..<2, using: &rng) }
        let y = (0..<n).map { $0 % c }
        let (whole, wholeScatter, _) = try fit(f, y, classes: c, d: d)
        // 3 "ranks" of 30 samples; sums added in rank order, then means, then pass 2 likewise.
        func rankSlice(_ r: Int) -> ([Float], [Int]) {
            (Array(f[(r * 30 * d)..<((r + 1) * 30 * d)]), Array(y[(r * 30)..<((r + 1) * 30)]))
        }
        func reduced() throws -> (ClassFeatureSums, CentredScatter) {
            var total = ClassFeatureSums(numClasses: c, featureDim: d)
            for r in 0..<3 {
                var part = ClassFeatureSums(numClasses: c, featureDim: d)
                let (xf, xy) = rankSlice(r)
                part.accumulate(features: xf, labels: xy)
                total.add(part)
            }
            let means = try total.means()
            var scatter = CentredScatter(featureDim: d)
            for r in 0..<3 {
                var part = CentredScatter(featureDim: d)
                let (xf, xy) = rankSlice(r)
                part.accumulate(features: xf, labels: xy, classMeans: means)
                scatter.add(part)
            }
            return (total, scatter)
        }
        let (a, aScatter) = try reduced()
        let (b, bScatter) = try reduced()
        XCTAssertEqual(a, b)                       // fixed order: bitwise reproducible
        XCTAssertEqual(aScatter, bScatter)
        XCTAssertEqual(a.counts, whole.counts)
        for (u, v) in zip(try a.means(), try whole.means()) { XCTAssertEqual(u, v, accuracy: 1e-12) }
        for (u, v) in zip(aScatter.covariance(), wholeScatter.covariance()) { XCTAssertEqual(u, v, accuracy: 1e-12) }
    }

    func testSingularCovarianceIsAClearErrorAndRidgeFixesIt() throws {
        // second feature constant -> covariance [[v, 0], [0, 0]]
        let f: [Float] = [0, 5, 1, 5, 2, 5, 3, 5]
        let y = [0, 0, 1, 1]
        XCTAssertThrowsError(try fit(f, y)) { error in
            guard case let .notPositiveDefinite(index, pivot, dim, count)? = error as? MahalanobisError else {
                return XCTFail("\(error)")
            }
            XCTAssertEqual(index, 1)
            XCTAssertEqual(pivot, 0)
            XCTAssertEqual(dim, 2)
            XCTAssertEqual(count, 4)
            XCTAssertTrue(String(describing: error).contains("ridge"))
        }
        let (_, _, det) = try fit(f, y, ridge: 1e-3)
        XCTAssertEqual(det.scores(features: [0.5, 5] as [Float])[0], 0, accuracy: 1e-12)
    }

    func testEmptyClassIsAnError() {
        var sums = ClassFeatureSums(numClasses: 3, featureDim: 1)
        sums.accumulate(features: [1, 2], labels: [0, 2])
        XCTAssertThrowsError(try sums.means()) {
            XCTAssertEqual($0 as? MahalanobisError, .emptyClass(classIndex: 1, numClasses: 3))
        }
    }

    /// Gauss-Jordan inverse with partial pivoting (test reference only).
    private func invert(_ m: [Double], _ d: Int) -> [Double] {
        var a = m
        var inv = [Double](repeating: 0, count: d * d)
        for i in 0..<d { inv[i * d + i] = 1 }
        for col in 0..<d {
            let p = (col..<d).max { abs(a[$0 * d + col]) < abs(a[$1 * d + col]) }!
            for j in 0..<d { a.swapAt(col * d + j, p * d + j); inv.swapAt(col * d + j, p * d + j) }
            let piv = a[col * d + col]
            for j in 0..<d { a[col * d + j] /= piv; inv[col * d + j] /= piv }
            for r in 0..<d where r != col {
                let factor = a[r * d + col]
                for j in 0..<d { a[r * d + j] -= factor * a[col * d + j]; inv[r * d + j] -= factor * inv[col * d + j] }
            }
        }
        return inv
    }
}

final class KNNAndReActTests: XCTestCase {
    func testKNNWorkedDistances() {
        // normalised bank: (1,0), (0,1), (-1,0), (1,0)
        let knn1 = KNNDetector(trainingFeatures: [1, 0, 0, 1, -1, 0, 3, 0], featureDim: 2, k: 1)
        let knn3 = KNNDetector(trainingFeatures: [1, 0, 0, 1, -1, 0, 3, 0], featureDim: 2, k: 3)
        let knn4 = KNNDetector(trainingFeatures: [1, 0, 0, 1, -1, 0, 3, 0], featureDim: 2, k: 4)
        // query (2, 0) -> (1, 0): distances 0, sqrt 2, 2, 0
        XCTAssertEqual(knn1.scores(features: [2, 0])[0], 0, accuracy: 1e-9)
        XCTAssertEqual(knn3.scores(features: [2, 0])[0], -sqrt(2.0), accuracy: 1e-9)
        XCTAssertEqual(knn4.scores(features: [2, 0])[0], -2, accuracy: 1e-9)
        // scale invariance of the query
        XCTAssertEqual(knn3.scores(features: [0.5, 0])[0], knn3.scores(features: [50, 0])[0], accuracy: 1e-9)
        // the +1e-10 in the norm makes tiny vectors slightly shorter than unit (relative 1e-10 / norm)
        XCTAssertEqual(knn3.scores(features: [0.001, 0])[0], knn3.scores(features: [50, 0])[0], accuracy: 1e-6)
    }

    func testKNNAgainstFullSort() {
        var rng = SplitMix64(seed: 17)
        let d = 5
        let train = (0..<(40 * d)).map { _ in Float.random(in: -1..<1, using: &rng) }
        let query = (0..<(6 * d)).map { _ in Float.random(in: -1..<1, using: &rng) }
        let k = 7
        let got = KNNDetector(trainingFeatures: train, featureDim: d, k: k).scores(features: query)
        func unit(_ v: ArraySlice<Float>) -> [Double] {
            let x = v.map(Double.init)
            let norm = x.map { $0 * $0 }.reduce(0, +).squareRoot()
            return x.map { $0 / norm }
        }
        for i in 0..<6 {
            let q = unit(query[(i * d)..<((i + 1) * d)])
            let dists = (0..<40).map { r -> Double in
                let t = unit(train[(r * d)..<((r + 1) * d)])
                return zip(q, t).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
            }.sorted()
            XCTAssertEqual(got[i], -dists[k - 1], accuracy: 1e-9)
        }
    }

    func testReActPercentileMatchesNumpyLinear() {
        XCTAssertEqual(ReAct.percentileThreshold(activations: [4, 1, 3, 2], percentile: 90), 3.7, accuracy: 1e-12)
        XCTAssertEqual(ReAct.percentileThreshold(activations: (1...10).map(Float.init), percentile: 50), 5.5, accuracy: 1e-12)
        XCTAssertEqual(ReAct.percentileThreshold(activations: [7], percentile: 90), 7)
        XCTAssertEqual(ReAct.percentileThreshold(activations: [1, 2, 3], percentile: 100), 3)
        XCTAssertEqual(ReAct.percentileThreshold(activations: [1, 2, 3], percentile: 0), 1)
    }

    func testReActClip() {
        var a: [Float] = [0.5, 3.7, 9, -2, .nan]
        ReAct.clip(&a, threshold: 3.7)
        XCTAssertEqual(Array(a[0..<4]), [0.5, 3.7, 3.7, -2])
        XCTAssertTrue(a[4].isNaN)
    }
}

final class KNNBlockTests: XCTestCase {
    /// The dgemm search scores a query the same alone, inside a batch, and against the direct
    /// sum of squared differences (to 1e-12 at distances of order 1).
    func testKNNQueryScoreDoesNotDependOnItsBatch() {
        var rng = SplitMix64(seed: 5)
        let d = 16, nb = 300, nq = 257
        let train = (0..<(nb * d)).map { _ in Float.random(in: -1..<1, using: &rng) }
        let query = (0..<(nq * d)).map { _ in Float.random(in: -1..<1, using: &rng) }
        let knn = KNNDetector(trainingFeatures: train, featureDim: d, k: 10)
        let batch = knn.scores(features: query)
        for i in [0, 1, 128, 255, 256] {
            let alone = knn.scores(features: Array(query[(i * d)..<((i + 1) * d)]))[0]
            XCTAssertEqual(alone, batch[i], accuracy: 1e-12, "query \(i)")
        }
        var withNaN = query
        withNaN[3 * d + 2] = .nan
        let s = knn.scores(features: withNaN)
        XCTAssertTrue(s[3].isNaN)
        XCTAssertEqual(s[4], batch[4], accuracy: 1e-12, "a NaN query does not affect the others")
        // A NaN in the training bank is never a distance-0 neighbour: every score is NaN (max(0, NaN)
        // would have been 0).
        var bank = train
        bank[7 * d + 1] = .nan
        XCTAssertTrue(KNNDetector(trainingFeatures: bank, featureDim: d, k: 10).scores(features: query).allSatisfy(\.isNaN))
    }
}
