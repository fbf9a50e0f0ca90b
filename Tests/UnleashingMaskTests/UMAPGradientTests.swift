import Distributed
import NeuralNetwork
import TensorCore
import TestSupport
import UnleashingMask
import XCTest

/// UMAP's gradients through the hooks (the layers only ever see W_eff = W * m): against finite
/// differences of L = <model(x), r> with respect to a continuous mask and to the weights.
final class UMAPGradientTests: XCTestCase {
    /// Two 3x3 convs, global average pooling and the linear head, without activations: the loss
    /// is linear in every single weight, so central differences are exact up to rounding and a
    /// mismatch can only be a wrong gradient.
    static func model() -> Classifier {
        var rng = RandomStream(seed: 4)
        return Classifier(features: Sequential([Conv2d(inChannels: 1, outChannels: 4, kernelSize: 3, padding: 1, rng: &rng),
                                                Conv2d(inChannels: 4, outChannels: 4, kernelSize: 3, padding: 1, rng: &rng),
                                                GlobalAvgPool2d()]),
                          classifier: Linear(inFeatures: 4, outFeatures: 3, rng: &rng))
    }

    func setUp(freezeWeights: Bool, keepRatio: Double) throws -> (Classifier, UMAPState, Tensor, Tensor) {
        let model = Self.model()
        let state = try UMAPState(model: model, options: UMAPOptions(keepRatio: keepRatio, freezeWeights: freezeWeights),
                                  seed: 9, comm: LocalCommunicator())
        let x = randomTensor([3, 1, 6, 6], seed: 5)
        let r = randomTensor([3, 3], seed: 6)
        return (model, state, x, r)
    }

    /// One hooked training step's gradients: beforeForward, forward, backward of r, afterBackward.
    func hookedBackward(_ model: Classifier, _ state: UMAPState, _ x: Tensor, _ r: Tensor) {
        for p in state.scores + state.originals { p.grad.zero() }
        state.beforeForward()
        _ = model.forward(x, context: ForwardContext(mode: .train))
        _ = model.backward(r)
        state.afterBackward()
    }

    /// `entries` of layer `l`'s numeric dL/dt where W_eff[i] = value(t) at t = 0.
    func numeric(_ model: Classifier, _ state: UMAPState, layer l: Int, entries: [Int], x: Tensor, r: Tensor,
                 value: @escaping (Int, Float) -> Float) -> [Float] {
        let w = state.layerWeights[l]
        let saved = w.value.copy()
        var out: [Float] = []
        for i in entries {
            let g = numericalGradient(count: 1, get: { _ in 0 }, set: { _, t in
                w.value.withUnsafeMutableBufferPointer { $0[i] = value(i, t) }
            }, of: { dot(model.forward(x, context: ForwardContext(mode: .train)), r) })
            out.append(g[0])
            w.value.assign(saved)
        }
        return out
    }

    /// Straight-through score gradient (edge-popup; UM Sec. 3.3): dL/dscores = sign(s) * W *
    /// dL/dW_eff, i.e. sign(s) times the exact gradient with respect to a continuous mask m in
    /// W_eff = W * m, at kept (m = 1) and pruned (m = 0) entries alike.
    func testScoreGradientIsTheMaskGradientTimesTheScoreSign() throws {
        let (model, state, x, r) = try setUp(freezeWeights: true, keepRatio: 0.6)
        hookedBackward(model, state, x, r)
        for l in [0, state.layerWeights.count - 1] {   // the first conv and the linear head
            let mask = state.masks[l], original = state.originals[l].value.scalars, scores = state.scores[l].value.scalars
            let entries = Array(stride(from: 0, to: mask.count, by: max(1, mask.count / 12)))
            XCTAssertTrue(entries.contains { mask[$0] == 0 } && entries.contains { mask[$0] == 1 }, "both kept and pruned entries")
            let dm = numeric(model, state, layer: l, entries: entries, x: x, r: r) { i, t in original[i] * (mask[i] + t) }
            let analytic = entries.map { state.scores[l].grad.scalars[$0] }
            let expected = zip(entries, dm).map { i, g in (scores[i] > 0 ? 1 : (scores[i] < 0 ? -1 : 0)) * g }
            assertClose(analytic, expected, absolute: 2e-3, relative: 1e-2, "layer \(l) score gradient")
            XCTAssertGreaterThan(analytic.map(abs).max() ?? 0, 0, "non-trivial")
        }
        // Frozen weights: only the scores are optimised, and W is not touched.
        XCTAssertEqual(state.optimizedParameters().count, state.scores.count)
        XCTAssertTrue(state.originals.allSatisfy { $0.role == .frozen && $0.grad.maxAbs() == 0 })
    }

    /// Weights trained jointly: dL/dW = m * dL/dW_eff (finite differences of W at a fixed mask).
    func testJointWeightGradientIsMaskedEffectiveGradient() throws {
        let (model, state, x, r) = try setUp(freezeWeights: false, keepRatio: 0.6)
        hookedBackward(model, state, x, r)
        let l = 1
        let mask = state.masks[l], original = state.originals[l].value.scalars
        let entries = Array(stride(from: 0, to: mask.count, by: max(1, mask.count / 12)))
        let dw = numeric(model, state, layer: l, entries: entries, x: x, r: r) { i, t in (original[i] + t) * mask[i] }
        assertClose(entries.map { state.originals[l].grad.scalars[$0] }, dw, absolute: 2e-3, relative: 1e-2, "weight gradient")
        XCTAssertTrue(entries.contains { mask[$0] == 0 && state.originals[l].grad.scalars[$0] == 0 }, "pruned weights get no gradient")
    }

    /// A 0/1 mask leaves exactly W * m in the layer: the output equals the model whose pruned
    /// weights are zeroed by hand.
    func testBinaryMaskEqualsHandPrunedModel() throws {
        let (model, state, x, _) = try setUp(freezeWeights: true, keepRatio: 0.5)
        state.recomputeMasks()
        let y = model.forward(x, context: .eval)
        let reference = Self.model()
        for (l, w) in prunableWeights(reference).enumerated() {
            let m = state.masks[l]
            w.value.withUnsafeMutableBufferPointer { v in for i in 0..<v.count where m[i] == 0 { v[i] = 0 } }
            XCTAssertEqual(Int(m.reduce(0, +)), WeightMask.keptCount(n: m.count, keepRatio: 0.5))
        }
        XCTAssertEqual(y.scalars, reference.forward(x, context: .eval).scalars, "W * m in the layers, bit for bit")
    }
}
