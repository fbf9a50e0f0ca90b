import Foundation
import NeuralNetwork
import TensorCore
import TestSupport
import XCTest

/// The fast Conv2d (im2col + sgemm, chunked) against the direct-loop naive twin.
final class ConvolutionTwinTests: XCTestCase {
    private struct Case {
        let input: [Int]
        let outChannels: Int
        let kernel: (Int, Int)
        let stride: (Int, Int)
        let padding: (Int, Int)
        let bias: Bool
        let targetColumns: Int
    }

    private let cases: [Case] = [
        Case(input: [1, 3, 7, 5], outChannels: 4, kernel: (3, 3), stride: (1, 1), padding: (1, 1), bias: true, targetColumns: 8192),
        Case(input: [3, 2, 7, 6], outChannels: 5, kernel: (3, 3), stride: (2, 2), padding: (1, 1), bias: false, targetColumns: 8192),
        Case(input: [5, 3, 6, 5], outChannels: 2, kernel: (3, 2), stride: (2, 1), padding: (0, 1), bias: true, targetColumns: 40),
        Case(input: [4, 4, 5, 5], outChannels: 3, kernel: (1, 1), stride: (1, 1), padding: (0, 0), bias: true, targetColumns: 60),
        Case(input: [3, 4, 5, 5], outChannels: 3, kernel: (1, 1), stride: (1, 1), padding: (0, 0), bias: false, targetColumns: 1),
        Case(input: [2, 3, 6, 6], outChannels: 2, kernel: (1, 1), stride: (2, 2), padding: (0, 0), bias: true, targetColumns: 8192),
        Case(input: [2, 1, 4, 4], outChannels: 2, kernel: (5, 5), stride: (1, 1), padding: (2, 2), bias: true, targetColumns: 16),
        // Shifted-block im2col/col2im with chunks of 2 + 1 samples, a non-square kernel, a
        // padding wider than the plane, and output taller than the input.
        Case(input: [3, 2, 5, 4], outChannels: 3, kernel: (3, 3), stride: (1, 1), padding: (1, 1), bias: false, targetColumns: 40),
        Case(input: [3, 2, 4, 5], outChannels: 2, kernel: (1, 3), stride: (1, 1), padding: (1, 1), bias: true, targetColumns: 1 << 20),
        Case(input: [2, 3, 2, 3], outChannels: 4, kernel: (3, 5), stride: (1, 1), padding: (2, 2), bias: false, targetColumns: 6),
    ]

    func testForwardAndBackwardMatchNaiveTwin() {
        for (i, c) in cases.enumerated() {
            var rng = RandomStream(seed: UInt64(100 + i))
            let conv = Conv2d(inChannels: c.input[1], outChannels: c.outChannels, kernelSize: c.kernel, stride: c.stride,
                              padding: c.padding, bias: c.bias, rng: &rng)
            conv.targetColumns = c.targetColumns
            assertConvMatchesNaiveTwin(conv, input: randomTensor(c.input, seed: UInt64(200 + i)),
                                       gradOutputSeed: UInt64(300 + i), "case \(i)")
        }
    }

    /// Winograd F(2x2, 3x3) against the naive twin: odd and even planes (ragged last tile row /
    /// column), padding 0, 1 and 2, non-square planes, batch 1, several chunks (small
    /// `targetTiles`), bias, and the default choice for wide layers.
    func testWinogradMatchesNaiveTwin() {
        struct WCase { let input: [Int]; let outChannels: Int; let padding: (Int, Int); let bias: Bool; let targetTiles: Int }
        let wcases: [WCase] = [
            WCase(input: [1, 3, 7, 5], outChannels: 4, padding: (1, 1), bias: true, targetTiles: 512),
            WCase(input: [3, 2, 6, 6], outChannels: 5, padding: (1, 1), bias: false, targetTiles: 9),
            WCase(input: [2, 3, 5, 8], outChannels: 2, padding: (0, 0), bias: true, targetTiles: 1),
            WCase(input: [2, 2, 4, 3], outChannels: 3, padding: (2, 2), bias: false, targetTiles: 512),
            WCase(input: [3, 4, 3, 3], outChannels: 3, padding: (0, 1), bias: true, targetTiles: 4),
            WCase(input: [1, 1, 1, 1], outChannels: 2, padding: (1, 1), bias: true, targetTiles: 512),
            WCase(input: [4, 16, 8, 8], outChannels: 24, padding: (1, 1), bias: false, targetTiles: 40),
            // 8-wide SIMD blocks plus 4-wide and scalar tails (19 tiles per row), and whole rows of
            // 8-wide blocks written straight to the output (32 columns).
            WCase(input: [2, 3, 9, 37], outChannels: 2, padding: (1, 1), bias: true, targetTiles: 512),
            WCase(input: [2, 2, 6, 32], outChannels: 3, padding: (1, 1), bias: false, targetTiles: 30),
            WCase(input: [1, 2, 5, 36], outChannels: 2, padding: (0, 0), bias: false, targetTiles: 512),
            WCase(input: [1, 2, 4, 25], outChannels: 2, padding: (1, 1), bias: true, targetTiles: 512),
        ]
        for algorithm in [Conv2d.Algorithm.winograd2, .winograd4] {
        for (i, c) in wcases.enumerated() {
            var rng = RandomStream(seed: UInt64(400 + i))
            let padded = Conv2d(inChannels: c.input[1], outChannels: c.outChannels, kernelSize: (3, 3), stride: (1, 1),
                                padding: c.padding, bias: c.bias, rng: &rng)
            // The automatic choice picks Winograd only for the wide case.
            padded.algorithm = .automatic
            XCTAssertEqual(padded.usesWinograd, Swift.min(c.input[1], c.outChannels) >= Conv2d.winogradMinimumChannels,
                           "case \(i): automatic choice")
            padded.algorithm = .im2col
            XCTAssertFalse(padded.usesWinograd)
            padded.algorithm = algorithm
            XCTAssertEqual(padded.winogradTile, algorithm == .winograd2 ? 2 : 4)
            padded.targetTiles = c.targetTiles
            assertConvMatchesNaiveTwin(padded, input: randomTensor(c.input, seed: UInt64(500 + i)),
                                       gradOutputSeed: UInt64(600 + i), "\(algorithm) case \(i)")
        }
        }
    }

    /// Rounding error against the Double reference on a WRN-like layer (64 -> 64 channels,
    /// 16x16, inputs N(0, 1), PyTorch default weights): relative RMS error of the output, input
    /// gradient and weight gradient per algorithm. Winograd's transforms add error (F(4x4) more
    /// than F(2x2)), but it must stay within a small multiple of im2col's and far below the
    /// 1e-3 that would be visible in training.
    func testWinogradRoundingErrorIsBounded() {
        func relativeRMS(_ a: Tensor, _ ref: Tensor) -> Double {
            var num = 0.0, den = 0.0
            for (x, r) in zip(a.scalars, ref.scalars) { num += Double(x - r) * Double(x - r); den += Double(r) * Double(r) }
            return (num / den).squareRoot()
        }
        let x = randomTensor([2, 64, 16, 16], seed: 901)
        var errors: [Conv2d.Algorithm: [Double]] = [:]
        for algorithm in [Conv2d.Algorithm.im2col, .winograd2, .winograd4] {
            var rng = RandomStream(seed: 900)
            let conv = Conv2d(inChannels: 64, outChannels: 64, kernelSize: 3, padding: 1, bias: false, rng: &rng)
            conv.algorithm = algorithm
            let y = conv.forward(x, context: ForwardContext(mode: .train))
            let gy = randomTensor(y.shape, seed: 902)
            let gx = conv.backward(gy)
            let ref = NaiveKernels.conv2d(x, weight: conv.weight.value, bias: nil, stride: (1, 1), padding: (1, 1))
            let refGrads = NaiveKernels.conv2dBackward(x, weight: conv.weight.value, gradOutput: gy, stride: (1, 1), padding: (1, 1))
            errors[algorithm] = [relativeRMS(y, ref), relativeRMS(gx, refGrads.gradInput), relativeRMS(conv.weight.grad, refGrads.gradWeight)]
        }
        print("relative RMS error (output, input gradient, weight gradient):", errors.sorted { $0.key.rawValue < $1.key.rawValue }
            .map { "\($0.key.rawValue) \($0.value.map { String(format: "%.2e", $0) })" }.joined(separator: "; "))
        for algorithm in [Conv2d.Algorithm.winograd2, .winograd4] {
            for k in 0..<3 {
                let e = errors[algorithm]![k], base = errors[.im2col]![k]
                XCTAssertLessThan(e, 1e-5, "\(algorithm) quantity \(k)")
                XCTAssertLessThan(e, 30 * Swift.max(base, 1e-8), "\(algorithm) quantity \(k) vs im2col \(base)")
            }
        }
    }

    /// A pruned layer (UMAP's W * m: every third weight zero) gives the same output and
    /// gradients with Winograd as with im2col.
    func testWinogradWithPrunedWeightMatchesIm2col() {
        var results: [[Tensor]] = []
        for algorithm in [Conv2d.Algorithm.im2col, .winograd2, .winograd4] {
            var rng = RandomStream(seed: 77)
            let conv = Conv2d(inChannels: 5, outChannels: 6, kernelSize: 3, padding: 1, bias: false, rng: &rng)
            conv.algorithm = algorithm
            var maskValues = [Float](repeating: 1, count: conv.weight.count)
            for i in stride(from: 0, to: maskValues.count, by: 3) { maskValues[i] = 0 }
            conv.weight.value.withUnsafeMutableBufferPointer { w in for i in 0..<w.count { w[i] *= maskValues[i] } }
            let x = randomTensor([2, 5, 7, 6], seed: 78)
            let y = conv.forward(x, context: ForwardContext(mode: .train))
            let gx = conv.backward(randomTensor(y.shape, seed: 79))
            results.append([y, gx, conv.weight.grad])
        }
        for variant in 1...2 {
            for (k, name) in ["output", "input gradient", "weight gradient"].enumerated() {
                assertClose(results[variant][k], results[0][k], absolute: 1e-5, relative: 1e-4, "variant \(variant): \(name)")
            }
            XCTAssertGreaterThan(results[variant][2].maxAbs(), 0, "weight gradient is non-trivial")
        }
    }

    func testBatchOfZeroSamples() {
        var rng = RandomStream(seed: 1)
        let conv = Conv2d(inChannels: 2, outChannels: 3, kernelSize: 3, padding: 1, rng: &rng)
        let y = conv.forward(Tensor(zeros: [0, 2, 4, 4]), context: ForwardContext(mode: .train))
        XCTAssertEqual(y.shape, [0, 3, 4, 4])
        XCTAssertEqual(conv.backward(y).shape, [0, 2, 4, 4])
        XCTAssertEqual(conv.weight.grad.maxAbs(), 0)
    }

    func testInputGradientOnlyModeLeavesParameterGradientsUntouched() {
        // An im2col conv and a Winograd conv (F(2x2) and F(4x4)).
        for algorithm in [Conv2d.Algorithm.winograd2, .winograd4] {
            var rng = RandomStream(seed: 2)
            let winograd = Conv2d(inChannels: 2, outChannels: 2, kernelSize: 3, padding: 1, rng: &rng)
            winograd.algorithm = algorithm
            let model = Sequential([
                Conv2d(inChannels: 1, outChannels: 2, kernelSize: 3, padding: 1, rng: &rng),
                winograd,
                BatchNorm2d(numFeatures: 2), ReLU(), GlobalAvgPool2d(),
                Linear(inFeatures: 2, outFeatures: 3, rng: &rng),
            ])
            for p in model.parameters { p.grad = Tensor(shape: p.shape, filledWith: 0.25) }
            let x = randomTensor([2, 1, 4, 4], seed: 3)
            let y = model.forward(x, context: .eval)
            let gx = model.backward(randomTensor(y.shape, seed: 4))
            XCTAssertEqual(gx.shape, x.shape)
            XCTAssertGreaterThan(gx.maxAbs(), 0, "the input gradient is computed")
            for p in model.parameters {
                XCTAssertEqual(p.grad.scalars, [Float](repeating: 0.25, count: p.count), "\(algorithm): \(p.name) must be untouched")
            }
        }
    }

    func testFrozenWeightGetsNoGradient() {
        var rng = RandomStream(seed: 3)
        let conv = Conv2d(inChannels: 1, outChannels: 2, kernelSize: 3, rng: &rng)
        conv.weight.role = .frozen
        let y = conv.forward(randomTensor([1, 1, 4, 4], seed: 5), context: ForwardContext(mode: .train))
        _ = conv.backward(Tensor(shape: y.shape, filledWith: 1))
        XCTAssertEqual(conv.weight.grad.maxAbs(), 0)
        XCTAssertEqual(conv.bias!.grad.scalars, [4, 4], "bias grad = sum of a 2x2 output of ones")
    }

    /// Same input => bitwise the same logits, input gradient and parameter gradients, run to
    /// run (fresh models from one seed; chunked convs, shifted-block im2col/col2im, BatchNorm
    /// recomputing xhat).
    func testResNet20StepIsBitwiseDeterministic() {
        let x = randomTensor([5, 3, 12, 10], seed: 21)
        var runs: [[[UInt32]]] = []
        for _ in 0..<2 {
            let model = Models.resnet20(seed: 4)
            let logits = model.forward(x, context: ForwardContext(mode: .train))
            let gx = model.backward(randomTensor(logits.shape, seed: 22))
            runs.append([logits.scalars.map(\.bitPattern), gx.scalars.map(\.bitPattern)]
                        + model.parameters.map { $0.grad.scalars.map(\.bitPattern) })
        }
        XCTAssertEqual(runs[0].count, runs[1].count)
        for (i, (a, b)) in zip(runs[0], runs[1]).enumerated() { XCTAssertEqual(a, b, "tensor \(i)") }
        XCTAssertGreaterThan(runs[0][1].filter { $0 != 0 }.count, 0, "the input gradient is not all zero")
    }
}
