import XCTest
@testable import OODDetection

final class ODINTests: XCTestCase {
    func testSignOfZeroAndStdScaling() {
        // [N=1, C=2, H*W=2]: channel 0 std 0.5, channel 1 std 0.25
        var x: [Float] = [0.5, 0.5, 0.5, 0.5]
        ODIN.perturb(&x, lossGradient: [2, -3, 0, -0.0], epsilon: 0.01, channels: 2, planeSize: 2, channelStd: [0.5, 0.25])
        XCTAssertEqual(x[0], 0.5 - 0.02, accuracy: 1e-7)  // +grad -> -eps/std
        XCTAssertEqual(x[1], 0.5 + 0.02, accuracy: 1e-7)  // -grad -> +eps/std
        XCTAssertEqual(x[2], 0.5 - 0.04, accuracy: 1e-7)  // grad 0 -> sign +1 (ODIN code), std 0.25
        XCTAssertEqual(x[3], 0.5 - 0.04, accuracy: 1e-7)  // -0.0 >= 0 as well
        var raw: [Float] = [0.5, 0.5]
        ODIN.perturb(&raw, lossGradient: [1, -1], epsilon: 0.0014, channels: 1, planeSize: 2)
        XCTAssertEqual(raw, [0.5 - 0.0014, 0.5 + 0.0014])
    }

    /// Direction: on a linear model logits = W x, the step must lower the predicted-class loss
    /// -log softmax(Wx/T)_yhat (raise the max softmax). Gradient by hand: W^T (p - e_yhat) / T.
    func testStepRaisesMaxSoftmaxOnLinearModel() {
        var rng = SplitMix64(seed: 3)
        let k = 4, d = 6, t = 10.0
        let w = (0..<(k * d)).map { _ in Double.random(in: -1..<1, using: &rng) }
        for _ in 0..<5 {
            let x = (0..<d).map { _ in Float.random(in: 0..<1, using: &rng) }
            func logits(_ v: [Float]) -> [Double] {
                (0..<k).map { r in (0..<d).reduce(0.0) { $0 + w[r * d + $1] * Double(v[$1]) } }
            }
            let l = logits(x)
            let yhat = l.indices.max { l[$0] < l[$1] }!
            let m = l.max()!
            let e = l.map { exp(($0 - m) / t) }
            let p = e.map { $0 / e.reduce(0, +) }
            var g = [Float](repeating: 0, count: d)
            for j in 0..<d {
                var s = 0.0
                for r in 0..<k { s += w[r * d + j] * (p[r] - (r == yhat ? 1 : 0)) / t }
                g[j] = Float(s)
            }
            var xp = x
            ODIN.perturb(&xp, lossGradient: g, epsilon: 0.002, channels: 1, planeSize: d)
            let before = LogitScore.maxSoftmax(logits: l, numClasses: k, temperature: t)[0]
            let after = LogitScore.maxSoftmax(logits: logits(xp), numClasses: k, temperature: t)[0]
            XCTAssertGreaterThan(after, before)
        }
    }
}
