import Foundation
import NeuralNetwork
import TensorCore
import TestSupport
import XCTest

/// Adversarial geometries, chunkings and modes for the Winograd F(2x2, 3x3) and F(4x4, 3x3)
/// paths of `Conv2d`, each against the Double naive twin (`NaiveKernels`).
final class WinogradStressTests: XCTestCase {
    private static let winogradAlgorithms: [Conv2d.Algorithm] = [.winograd2, .winograd4]

    /// Forward + backward of a fresh 3x3 stride-1 layer against the naive twin; returns the layer.
    @discardableResult
    private func checkAgainstTwin(_ algorithm: Conv2d.Algorithm, input: [Int], outChannels: Int, padding: (Int, Int),
                                  bias: Bool = true, targetTiles: Int? = nil, maxColumnFloats: Int? = nil,
                                  seed: UInt64, _ label: String, file: StaticString = #filePath, line: UInt = #line) -> Conv2d {
        var rng = RandomStream(seed: seed)
        let conv = Conv2d(inChannels: input[1], outChannels: outChannels, kernelSize: (3, 3), stride: (1, 1),
                          padding: padding, bias: bias, rng: &rng)
        conv.algorithm = algorithm
        conv.targetTiles = targetTiles
        if let maxColumnFloats { conv.maxColumnFloats = maxColumnFloats }
        XCTAssertEqual(conv.usesWinograd, algorithm != .im2col, label, file: file, line: line)
        assertConvMatchesNaiveTwin(conv, input: randomTensor(input, seed: seed &+ 1), gradOutputSeed: seed &+ 2,
                                   dataAbsolute: 2e-5, "\(algorithm) \(label)", file: file, line: line)
        return conv
    }

    /// tilesWide 1...20 (8-tile SIMD blocks, 4-tile blocks and scalar tails, alone and combined),
    /// output widths that are and are not multiples of the tile, paddings 0...3 with ph != pw,
    /// heights with ragged last tile rows, batch 1 and 2, chunks of one tile and of several samples.
    func testEveryTileWidthPaddingAndRaggedEdge() {
        let heights = [1, 2, 3, 5, 6, 7, 9, 4]
        for algorithm in Self.winogradAlgorithms {
            let m = algorithm == .winograd2 ? 2 : 4
            for tilesWide in 1...20 {
                for ragged in 0..<2 {
                    // Output width: whole tiles, or the last tile short by 1 (F(2x2)) / 1...3 (F(4x4)).
                    let ow = m * tilesWide - (ragged == 0 ? 0 : 1 + tilesWide % (m - 1))
                    if ow < 1 { continue }
                    var pw = (tilesWide + ragged) % 4
                    while ow + 2 - 2 * pw < 1 { pw -= 1 }
                    let w = ow + 2 - 2 * pw
                    let ph = (tilesWide + 2 * ragged + 1) % 4
                    var h = heights[(tilesWide + ragged) % heights.count]
                    if h + 2 * ph < 3 { h = 3 - 2 * ph }
                    let batch = 1 + (tilesWide + ragged) % 2
                    let c = 1 + tilesWide % 3, o = 1 + (tilesWide + 1) % 3
                    let targetTiles: Int? = [nil, 1, 7][(tilesWide + ragged) % 3]
                    checkAgainstTwin(algorithm, input: [batch, c, h, w], outChannels: o, padding: (ph, pw),
                                     bias: ragged == 0, targetTiles: targetTiles, seed: UInt64(1000 + 10 * tilesWide + ragged),
                                     "tilesWide \(tilesWide) ow \(ow) input [\(batch), \(c), \(h), \(w)] padding (\(ph), \(pw)) targetTiles \(String(describing: targetTiles))")
                }
            }
        }
    }

    /// 1x1, 2x2, 1xN, Nx1, 3x3 without padding, planes smaller than the padding.
    func testTinyPlanes() {
        let planes: [(h: Int, w: Int, ph: Int, pw: Int)] = [
            (1, 1, 1, 1), (2, 2, 1, 1), (1, 7, 1, 0), (7, 1, 0, 1), (1, 9, 1, 2), (9, 1, 3, 1),
            (3, 3, 0, 0), (3, 4, 0, 0), (4, 3, 0, 0), (1, 1, 3, 3), (2, 5, 3, 0), (5, 2, 0, 3), (1, 1, 2, 1),
            (1, 33, 1, 1), (33, 1, 1, 1),
        ]
        for algorithm in Self.winogradAlgorithms {
            for (k, p) in planes.enumerated() {
                checkAgainstTwin(algorithm, input: [2, 2, p.h, p.w], outChannels: 3, padding: (p.ph, p.pw),
                                 targetTiles: k % 2 == 0 ? nil : 1, seed: UInt64(2000 + k), "plane \(p)")
            }
        }
    }

    /// Channel counts 1...9 each way, and one wide side (256).
    func testChannelCounts() {
        for algorithm in Self.winogradAlgorithms {
            for c in 1...9 {
                checkAgainstTwin(algorithm, input: [2, c, 5, 6], outChannels: 10 - c, padding: (1, 1),
                                 seed: UInt64(3000 + c), "channels \(c) -> \(10 - c)")
            }
            checkAgainstTwin(algorithm, input: [1, 256, 6, 5], outChannels: 8, padding: (1, 1), seed: 3100, "256 -> 8")
            checkAgainstTwin(algorithm, input: [1, 8, 5, 6], outChannels: 256, padding: (1, 0), seed: 3101, "8 -> 256")
        }
    }

    /// Chunk edge cases: one tile per chunk, huge targets, non-positive targets, a tiny memory bound.
    func testChunkingExtremes() {
        let settings: [(targetTiles: Int?, maxColumnFloats: Int?)] = [
            (1, nil), (Int.max, nil), (0, nil), (-3, nil), (nil, 1), (nil, 0), (Int.max, Int.max), (5, 1 << 30),
        ]
        for algorithm in Self.winogradAlgorithms {
            for (k, s) in settings.enumerated() {
                checkAgainstTwin(algorithm, input: [5, 3, 7, 9], outChannels: 4, padding: (1, 2), targetTiles: s.targetTiles,
                                 maxColumnFloats: s.maxColumnFloats, seed: UInt64(4000 + k), "chunk setting \(s)")
            }
        }
    }

    func testBatchOfZeroSamplesThroughWinograd() {
        for algorithm in Self.winogradAlgorithms {
            var rng = RandomStream(seed: 1)
            let conv = Conv2d(inChannels: 8, outChannels: 8, kernelSize: 3, padding: 1, rng: &rng)
            conv.algorithm = algorithm
            XCTAssertTrue(conv.usesWinograd)
            let y = conv.forward(Tensor(zeros: [0, 8, 5, 5]), context: ForwardContext(mode: .train))
            XCTAssertEqual(y.shape, [0, 8, 5, 5])
            XCTAssertEqual(conv.backward(y).shape, [0, 8, 5, 5])
            XCTAssertEqual(conv.weight.grad.maxAbs(), 0)
            XCTAssertEqual(conv.bias!.grad.maxAbs(), 0)
        }
    }

    /// Two forwards (different plane sizes and batch) before one backward: the backward belongs
    /// to the second forward.
    func testTwoForwardsBeforeBackward() {
        for algorithm in Self.winogradAlgorithms {
            var rng = RandomStream(seed: 7)
            let conv = Conv2d(inChannels: 3, outChannels: 4, kernelSize: 3, padding: 1, rng: &rng)
            conv.algorithm = algorithm
            conv.targetTiles = 3
            _ = conv.forward(randomTensor([4, 3, 17, 13], seed: 8), context: ForwardContext(mode: .train))
            let x = randomTensor([2, 3, 6, 9], seed: 9)
            let y = conv.forward(x, context: ForwardContext(mode: .train))
            assertClose(y, NaiveKernels.conv2d(x, weight: conv.weight.value, bias: conv.bias!.value, stride: (1, 1), padding: (1, 1)),
                        absolute: 2e-5, "\(algorithm) second forward")
            let gy = randomTensor(y.shape, seed: 10)
            let gx = conv.backward(gy)
            let ref = NaiveKernels.conv2dBackward(x, weight: conv.weight.value, gradOutput: gy, stride: (1, 1), padding: (1, 1))
            assertClose(gx, ref.gradInput, absolute: 2e-5, "\(algorithm) input gradient")
            assertClose(conv.weight.grad, ref.gradWeight, absolute: 1e-4, "\(algorithm) weight gradient")
            // A second backward of the same forward accumulates the same gradients again.
            let gx2 = conv.backward(gy)
            XCTAssertEqual(gx2.scalars, gx.scalars, "\(algorithm) backward is repeatable")
            assertClose(conv.weight.grad, ref.gradWeight * 2, absolute: 2e-4, "\(algorithm) weight gradient accumulates")
        }
    }

    /// Frozen weight, trainable bias; and a frozen masked weight whose mask score still gets its
    /// gradient (UMAP), each agreeing with im2col.
    func testFrozenAndMaskedWeights() {
        for algorithm in Self.winogradAlgorithms {
            var rng = RandomStream(seed: 11)
            let conv = Conv2d(inChannels: 3, outChannels: 2, kernelSize: 3, padding: 1, rng: &rng)
            conv.algorithm = algorithm
            conv.weight.role = .frozen
            let x = randomTensor([2, 3, 5, 7], seed: 12)
            let y = conv.forward(x, context: ForwardContext(mode: .train))
            let gy = randomTensor(y.shape, seed: 13)
            let gx = conv.backward(gy)
            let ref = NaiveKernels.conv2dBackward(x, weight: conv.weight.value, gradOutput: gy, stride: (1, 1), padding: (1, 1))
            XCTAssertEqual(conv.weight.grad.maxAbs(), 0, "\(algorithm): frozen weight untouched")
            assertClose(gx, ref.gradInput, absolute: 2e-5, "\(algorithm) frozen: input gradient")
            assertClose(conv.bias!.grad, ref.gradBias, absolute: 1e-4, "\(algorithm) frozen: bias gradient")
        }
        var results: [[Tensor]] = []
        for algorithm in [Conv2d.Algorithm.im2col] + Self.winogradAlgorithms {
            var rng = RandomStream(seed: 14)
            let conv = Conv2d(inChannels: 4, outChannels: 3, kernelSize: (3, 3), padding: (2, 1), bias: true, rng: &rng)
            conv.algorithm = algorithm
            conv.weight.role = .frozen
            // A pruned weight (every other entry zero, as UMAP's W * m leaves it).
            conv.weight.value.withUnsafeMutableBufferPointer { w in for i in stride(from: 1, to: w.count, by: 2) { w[i] = 0 } }
            conv.targetTiles = 2
            let x = randomTensor([3, 4, 6, 5], seed: 15)
            let y = conv.forward(x, context: ForwardContext(mode: .train))
            let gx = conv.backward(randomTensor(y.shape, seed: 16))
            results.append([y, gx, conv.bias!.grad])
            XCTAssertEqual(conv.weight.grad.maxAbs(), 0, "\(algorithm): frozen pruned weight untouched")
        }
        for v in 1...2 {
            for (k, name) in ["output", "input gradient", "bias gradient"].enumerated() {
                assertClose(results[v][k], results[0][k], absolute: 2e-5, relative: 1e-4, "variant \(v): \(name)")
            }
        }
    }

    /// A NaN or an infinity in one input pixel of one sample: the other samples' outputs and input
    /// gradients stay finite and equal to im2col's, and every output im2col makes non-finite is
    /// non-finite here too (Winograd may widen the non-finite patch to whole tiles and turn an
    /// infinity into NaN, but never hides one).
    func testNonFiniteInputStaysInItsSampleAndIsNeverHidden() {
        for bad in [Float.nan, .infinity, -.infinity] {
            var outputs: [Conv2d.Algorithm: (Tensor, Tensor)] = [:]
            for algorithm in [Conv2d.Algorithm.im2col] + Self.winogradAlgorithms {
                var rng = RandomStream(seed: 50)
                let conv = Conv2d(inChannels: 8, outChannels: 8, kernelSize: 3, padding: 1, rng: &rng)
                conv.algorithm = algorithm
                conv.targetTiles = 1 << 20  // both samples in one chunk (one GEMM)
                var x = randomTensor([2, 8, 9, 11], seed: 51)
                x.withUnsafeMutableBufferPointer { $0[3 * 99 + 4 * 11 + 6] = bad }  // sample 0, channel 3, (4, 6)
                let y = conv.forward(x, context: ForwardContext(mode: .train))
                var gy = randomTensor(y.shape, seed: 52)
                gy.withUnsafeMutableBufferPointer { $0[8 * 81 + 2 * 81 + 5 * 9 + 1] = bad }  // sample 1, channel 2, (5, 1)
                outputs[algorithm] = (y, conv.backward(gy))
            }
            let (yRef, gRef) = outputs[.im2col]!
            XCTAssertEqual(yRef.scalars.filter { !$0.isFinite }.count, 8 * 9, "im2col: the 3x3 neighbourhood in every output channel")
            XCTAssertGreaterThan(gRef.scalars.filter { !$0.isFinite }.count, 0, "im2col: non-finite input gradient in sample 1")
            for algorithm in Self.winogradAlgorithms {
                let (y, g) = outputs[algorithm]!
                let half = y.count / 2, halfIn = g.count / 2
                for k in 0..<half where !yRef.scalars[k].isFinite {
                    XCTAssertFalse(y.scalars[k].isFinite, "\(algorithm) \(bad): output \(k) is finite, im2col \(yRef.scalars[k])")
                }
                assertClose(Array(y.scalars[half...]), Array(yRef.scalars[half...]), absolute: 2e-5,
                            "\(algorithm) \(bad): the other sample's output")
                for k in halfIn..<g.count where !gRef.scalars[k].isFinite {
                    XCTAssertFalse(g.scalars[k].isFinite, "\(algorithm) \(bad): input gradient \(k) is finite, im2col \(gRef.scalars[k])")
                }
                assertClose(Array(g.scalars[..<halfIn]), Array(gRef.scalars[..<halfIn]), absolute: 2e-5,
                            "\(algorithm) \(bad): the other sample's input gradient")
            }
        }
    }
}
