import Foundation
@testable import OODDetection
import XCTest

/// GEN, fDBD, ASH-P/B/S, SCALE and RMDS against independent numpy twins written from the papers'
/// formulas (Tests/Fixtures/detectors/make_fixture.py -> detectors.json): non-negative features with
/// ties, a duplicated row, an all-zero row and an outlier.
final class DetectorFixtureTests: XCTestCase {
    struct Fixture: Decodable {
        let num_classes: Int
        let feature_dim: Int
        let train_features: [[Double]]
        let train_labels: [Int]
        let test_features: [[Double]]
        let weight: [[Double]]
        let bias: [Double]
        let test_logits: [[Double]]
        let gen: [String: [Double]]
        let fdbd: [Double]
        let ash: [String: [Double]]
        let scale: [String: [Double]]
        let rmds: [Double]
        let nnguide: [String: [Double]]
        let vim: [String: [Double]]
    }

    func fixture() throws -> Fixture {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/detectors/detectors.json")
        return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }

    func assertClose(_ got: [Double], _ want: [Double], relative: Double, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, want.count, what, file: file, line: line)
        for (i, (g, w)) in zip(got, want).enumerated() {
            XCTAssertEqual(g, w, accuracy: relative * max(1, abs(w)), "\(what)[\(i)]", file: file, line: line)
        }
    }

    func testGENMatchesNumpy() throws {
        let f = try fixture()
        for (key, want) in f.gen {
            let parts = key.split(separator: "_")
            let got = GEN.scores(logits: f.test_logits.flatMap { $0 }, numClasses: f.num_classes, gamma: Double(parts[0])!, m: Int(parts[1])!)
            assertClose(got, want, relative: 1e-12, "GEN \(key)")
        }
    }

    func testFDBDMatchesNumpy() throws {
        let f = try fixture()
        let d = f.feature_dim
        let head = LinearHead(weight: f.weight.flatMap { $0 }, bias: f.bias)
        var mean = [Double](repeating: 0, count: d)
        for row in f.train_features { for j in 0..<d { mean[j] += row[j] } }
        mean = mean.map { $0 / Double(f.train_features.count) }
        let got = FDBDDetector(head: head, trainMean: mean).scores(features: f.test_features.flatMap { $0 })
        assertClose(got, f.fdbd, relative: 1e-12, "fDBD")
    }

    func testASHAndSCALEMatchNumpy() throws {
        let f = try fixture()
        let head = LinearHead(weight: f.weight.flatMap { $0 }, bias: f.bias)
        let z = f.test_features.flatMap { $0 }
        for (key, want) in f.ash {
            let parts = key.split(separator: "_")
            let variant: ActivationShaping = parts[0] == "p" ? .ashP : parts[0] == "b" ? .ashB : .ashS
            assertClose(variant.scores(features: z, head: head, percentile: Double(parts[1])!), want, relative: 1e-12, "ASH \(key)")
        }
        for (p, want) in f.scale {
            assertClose(ActivationShaping.scale.scores(features: z, head: head, percentile: Double(p)!), want, relative: 1e-12, "SCALE \(p)")
        }
        // The all-zero row keeps factor 1: its energy is the bias's log-sum-exp for every variant.
        let zeroEnergy = LinearHead.logSumExp(f.bias)
        for v in ActivationShaping.allCases {
            XCTAssertEqual(v.scores(features: f.test_features[3], head: head, percentile: 90)[0], zeroEnergy, accuracy: 1e-12, "\(v)")
        }
    }

    func testRMDSMatchesNumpy() throws {
        let f = try fixture()
        let d = f.feature_dim
        let train = f.train_features.flatMap { $0 }.map(Float.init)  // float32-representable by construction
        var sums = ClassFeatureSums(numClasses: f.num_classes, featureDim: d)
        sums.accumulate(features: train, labels: f.train_labels)
        var scatter = CentredScatter(featureDim: d)
        scatter.accumulate(features: train, labels: f.train_labels, classMeans: try sums.means())
        let bg = RMDSDetector.backgroundGaussian(features: train, featureDim: d)
        let rmds = try RMDSDetector(classSums: sums, scatter: scatter, mean: bg.mean, covariance: bg.covariance)
        assertClose(rmds.scores(features: f.test_features.flatMap { $0 }.map(Float.init)), f.rmds, relative: 1e-9, "RMDS")
    }

    func testNNGuideMatchesNumpy() throws {
        let f = try fixture()
        let head = LinearHead(weight: f.weight.flatMap { $0 }, bias: f.bias)
        for (k, want) in f.nnguide {
            let det = NNGuideDetector(bankFeatures: f.train_features.flatMap { $0 }, head: head, k: Int(k)!)
            assertClose(det.scores(features: f.test_features.flatMap { $0 }), want, relative: 1e-12, "NNGuide k \(k)")
        }
    }

    func testViMMatchesNumpy() throws {
        let f = try fixture()
        let head = LinearHead(weight: f.weight.flatMap { $0 }, bias: f.bias)
        for (dim, want) in f.vim {
            let det = try ViMDetector(trainFeatures: f.train_features.flatMap { $0 }, head: head, dim: Int(dim)!)
            assertClose(det.scores(features: f.test_features.flatMap { $0 }), want, relative: 1e-9, "ViM dim \(dim)")
        }
    }

    func testJacobiEigenDecomposesASymmetricMatrix() {
        // A = V diag(5, 2, -1) V^T for a known orthonormal V: values recovered, A V = V diag.
        let a: [Double] = [2.0, 1.0, 0.5, 1.0, 3.0, 1.5, 0.5, 1.5, 1.0]
        let (values, vectors) = SymmetricEigen.decompose(a, 3)
        for e in 0..<3 {
            for r in 0..<3 {
                let av = (0..<3).reduce(0.0) { $0 + a[r * 3 + $1] * vectors[$1 * 3 + e] }
                XCTAssertEqual(av, values[e] * vectors[r * 3 + e], accuracy: 1e-12)
            }
        }
        XCTAssertEqual(values.reduce(0, +), 6, accuracy: 1e-12, "trace")
    }

    func testNaNFeaturesGiveNaNScores() throws {
        let f = try fixture()
        let head = LinearHead(weight: f.weight.flatMap { $0 }, bias: f.bias)
        var row = f.test_features[0]
        row[2] = .nan
        XCTAssertTrue(GEN.scores(logits: [1, Double.nan, 0, 0] as [Double], numClasses: 4, gamma: 0.1, m: 4)[0].isNaN)
        XCTAssertTrue(FDBDDetector(head: head, trainMean: [Double](repeating: 0, count: f.feature_dim)).scores(features: row)[0].isNaN)
        for v in ActivationShaping.allCases { XCTAssertTrue(v.scores(features: row, head: head, percentile: 65)[0].isNaN, "\(v)") }
    }
}
