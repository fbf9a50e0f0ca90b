import TensorCore
import TestSupport
import XCTest

final class Im2colTests: XCTestCase {
    /// Odd geometries: stride 2, padding, non-square kernels and inputs, kernel = input.
    static let geometries: [WindowGeometry] = [
        WindowGeometry(channels: 2, height: 5, width: 7, kernelHeight: 3, kernelWidth: 3, paddingHeight: 1, paddingWidth: 1),
        WindowGeometry(channels: 3, height: 6, width: 5, kernelHeight: 3, kernelWidth: 2, strideHeight: 2, strideWidth: 2,
                       paddingHeight: 1, paddingWidth: 0),
        WindowGeometry(channels: 1, height: 4, width: 4, kernelHeight: 4, kernelWidth: 4),
        WindowGeometry(channels: 2, height: 3, width: 5, kernelHeight: 1, kernelWidth: 3, strideHeight: 1, strideWidth: 3,
                       paddingHeight: 2, paddingWidth: 2),
        WindowGeometry(channels: 1, height: 2, width: 2, kernelHeight: 5, kernelWidth: 5, paddingHeight: 2, paddingWidth: 2),
        // Stride 2 over wide rows: the 8-wide vector paths of im2col / col2im plus their tails.
        WindowGeometry(channels: 2, height: 5, width: 37, kernelHeight: 3, kernelWidth: 3, strideHeight: 2, strideWidth: 2,
                       paddingHeight: 1, paddingWidth: 1),
        WindowGeometry(channels: 2, height: 6, width: 34, kernelHeight: 1, kernelWidth: 1, strideHeight: 2, strideWidth: 2),
        WindowGeometry(channels: 1, height: 3, width: 40, kernelHeight: 5, kernelWidth: 5, strideHeight: 2, strideWidth: 2,
                       paddingHeight: 2, paddingWidth: 2),
    ]

    /// Reference im2col from the definition.
    private func naiveIm2col(_ x: [Float], _ g: WindowGeometry) -> [Float] {
        var out = [Float](repeating: 0, count: g.columnRows * g.outputPlane)
        for c in 0..<g.channels { for kh in 0..<g.kernelHeight { for kw in 0..<g.kernelWidth {
            let row = (c * g.kernelHeight + kh) * g.kernelWidth + kw
            for oy in 0..<g.outputHeight { for ox in 0..<g.outputWidth {
                let iy = oy * g.strideHeight - g.paddingHeight + kh, ix = ox * g.strideWidth - g.paddingWidth + kw
                let inside = iy >= 0 && iy < g.height && ix >= 0 && ix < g.width
                out[row * g.outputPlane + oy * g.outputWidth + ox] = inside ? x[(c * g.height + iy) * g.width + ix] : 0
            } }
        } } }
        return out
    }

    func testIm2colMatchesDefinition() {
        for (i, g) in Self.geometries.enumerated() {
            let x = randomTensor([g.channels * g.inputPlane], seed: UInt64(10 + i)).scalars
            var cols = [Float](repeating: .nan, count: g.columnRows * g.outputPlane)
            x.withUnsafeBufferPointer { xb in cols.withUnsafeMutableBufferPointer { cb in
                Kernels.im2col(xb.baseAddress!, geometry: g, columns: cb.baseAddress!, ldColumns: g.outputPlane)
            } }
            XCTAssertEqual(cols, naiveIm2col(x, g), "geometry \(i): \(g)")
        }
    }

    func testIm2colWithLeadingDimensionPlacesSamplesSideBySide() {
        let g = Self.geometries[1]
        let p = g.outputPlane
        let x0 = randomTensor([g.channels * g.inputPlane], seed: 3).scalars
        let x1 = randomTensor([g.channels * g.inputPlane], seed: 4).scalars
        var cols = [Float](repeating: .nan, count: g.columnRows * 2 * p)
        cols.withUnsafeMutableBufferPointer { cb in
            x0.withUnsafeBufferPointer { Kernels.im2col($0.baseAddress!, geometry: g, columns: cb.baseAddress!, ldColumns: 2 * p) }
            x1.withUnsafeBufferPointer { Kernels.im2col($0.baseAddress!, geometry: g, columns: cb.baseAddress! + p, ldColumns: 2 * p) }
        }
        let e0 = naiveIm2col(x0, g), e1 = naiveIm2col(x1, g)
        for r in 0..<g.columnRows {
            XCTAssertEqual(Array(cols[(r * 2 * p)..<(r * 2 * p + p)]), Array(e0[(r * p)..<(r * p + p)]))
            XCTAssertEqual(Array(cols[(r * 2 * p + p)..<(r * 2 * p + 2 * p)]), Array(e1[(r * p)..<(r * p + p)]))
        }
    }

    /// col2im from the definition: starting from `base`, every column entry is added to the
    /// input element its window position read.
    func testCol2imMatchesDefinition() {
        for (i, g) in Self.geometries.enumerated() {
            let c = randomTensor([g.columnRows * g.outputPlane], seed: UInt64(60 + i)).scalars
            let base = randomTensor([g.channels * g.inputPlane], seed: UInt64(80 + i)).scalars
            var expected = base.map(Double.init)
            for ch in 0..<g.channels { for kh in 0..<g.kernelHeight { for kw in 0..<g.kernelWidth {
                let row = (ch * g.kernelHeight + kh) * g.kernelWidth + kw
                for oy in 0..<g.outputHeight { for ox in 0..<g.outputWidth {
                    let iy = oy * g.strideHeight - g.paddingHeight + kh, ix = ox * g.strideWidth - g.paddingWidth + kw
                    if iy >= 0 && iy < g.height && ix >= 0 && ix < g.width {
                        expected[(ch * g.height + iy) * g.width + ix] += Double(c[row * g.outputPlane + oy * g.outputWidth + ox])
                    }
                } }
            } } }
            var got = base
            c.withUnsafeBufferPointer { cb in got.withUnsafeMutableBufferPointer { gb in
                Kernels.col2im(cb.baseAddress!, ldColumns: g.outputPlane, geometry: g, gradInput: gb.baseAddress!)
            } }
            for j in 0..<got.count {
                XCTAssertEqual(Double(got[j]), expected[j], accuracy: 1e-5, "geometry \(i) element \(j)")
            }
        }
    }

    /// col2im is the adjoint of im2col: <im2col(x), c> = <x, col2im(c)> for all x, c.
    func testCol2imIsAdjointOfIm2col() {
        for (i, g) in Self.geometries.enumerated() {
            let x = randomTensor([g.channels * g.inputPlane], seed: UInt64(20 + i)).scalars
            let c = randomTensor([g.columnRows * g.outputPlane], seed: UInt64(40 + i)).scalars
            let cols = naiveIm2col(x, g)
            var back = [Float](repeating: 0, count: x.count)
            c.withUnsafeBufferPointer { cb in back.withUnsafeMutableBufferPointer { bb in
                Kernels.col2im(cb.baseAddress!, ldColumns: g.outputPlane, geometry: g, gradInput: bb.baseAddress!)
            } }
            var lhs = 0.0, rhs = 0.0
            for j in 0..<c.count { lhs += Double(cols[j]) * Double(c[j]) }
            for j in 0..<x.count { rhs += Double(x[j]) * Double(back[j]) }
            assertClose(lhs, rhs, absolute: 1e-4, relative: 1e-5, "geometry \(i)")
        }
    }

    func testChannelMajorTransposesRoundTrip() {
        let (b, c, p) = (3, 2, 5)
        let x = randomTensor([b * c * p], seed: 9).scalars
        var t = [Float](repeating: 0, count: x.count)
        var back = [Float](repeating: 0, count: x.count)
        x.withUnsafeBufferPointer { xb in t.withUnsafeMutableBufferPointer { tb in
            Kernels.batchToChannelMajor(xb.baseAddress!, batch: b, channels: c, plane: p, dst: tb.baseAddress!)
        } }
        // dst[c, b*P + p] = src[b, c, p]
        XCTAssertEqual(t[1 * (b * p) + 2 * p + 4], x[(2 * c + 1) * p + 4])
        t.withUnsafeBufferPointer { tb in back.withUnsafeMutableBufferPointer { bb in
            Kernels.channelMajorToBatch(tb.baseAddress!, batch: b, channels: c, plane: p, dst: bb.baseAddress!, accumulate: false)
        } }
        XCTAssertEqual(back, x)
    }
}

/// The shifted-block im2col / col2im (stride 1, output width = input width) against the
/// definitions, on odd shapes: non-square planes and kernels, one channel, padding wider than
/// the plane, output taller than the input, several samples side by side (`ldColumns > OH*OW`).
final class ShiftedIm2colTests: XCTestCase {
    static let geometries: [WindowGeometry] = [
        WindowGeometry(channels: 3, height: 5, width: 7, kernelHeight: 3, kernelWidth: 3, paddingHeight: 1, paddingWidth: 1),
        WindowGeometry(channels: 1, height: 1, width: 1, kernelHeight: 3, kernelWidth: 3, paddingHeight: 1, paddingWidth: 1),
        WindowGeometry(channels: 2, height: 4, width: 3, kernelHeight: 3, kernelWidth: 3, paddingHeight: 0, paddingWidth: 1),
        WindowGeometry(channels: 2, height: 3, width: 6, kernelHeight: 1, kernelWidth: 5, paddingHeight: 1, paddingWidth: 2),
        WindowGeometry(channels: 1, height: 2, width: 2, kernelHeight: 5, kernelWidth: 5, paddingHeight: 2, paddingWidth: 2),
        WindowGeometry(channels: 2, height: 6, width: 4, kernelHeight: 2, kernelWidth: 1, paddingHeight: 1, paddingWidth: 0),
        WindowGeometry(channels: 2, height: 5, width: 5, kernelHeight: 5, kernelWidth: 3, paddingHeight: 3, paddingWidth: 1),
    ]

    private func naiveIm2col(_ x: [Float], _ g: WindowGeometry) -> [Float] {
        var out = [Float](repeating: 0, count: g.columnRows * g.outputPlane)
        for c in 0..<g.channels { for kh in 0..<g.kernelHeight { for kw in 0..<g.kernelWidth {
            let row = (c * g.kernelHeight + kh) * g.kernelWidth + kw
            for oy in 0..<g.outputHeight { for ox in 0..<g.outputWidth {
                let iy = oy - g.paddingHeight + kh, ix = ox - g.paddingWidth + kw
                let inside = iy >= 0 && iy < g.height && ix >= 0 && ix < g.width
                out[row * g.outputPlane + oy * g.outputWidth + ox] = inside ? x[(c * g.height + iy) * g.width + ix] : 0
            } }
        } } }
        return out
    }

    /// Accumulating col2im from the definition, in Double.
    private func naiveCol2im(_ cols: [Float], _ g: WindowGeometry) -> [Double] {
        var out = [Double](repeating: 0, count: g.channels * g.inputPlane)
        for c in 0..<g.channels { for kh in 0..<g.kernelHeight { for kw in 0..<g.kernelWidth {
            let row = (c * g.kernelHeight + kh) * g.kernelWidth + kw
            for oy in 0..<g.outputHeight { for ox in 0..<g.outputWidth {
                let iy = oy - g.paddingHeight + kh, ix = ox - g.paddingWidth + kw
                if iy >= 0 && iy < g.height && ix >= 0 && ix < g.width {
                    out[(c * g.height + iy) * g.width + ix] += Double(cols[row * g.outputPlane + oy * g.outputWidth + ox])
                }
            } }
        } } }
        return out
    }

    func testGeometriesQualify() {
        for g in Self.geometries { XCTAssertTrue(Kernels.isShiftedBlockGeometry(g), "\(g)") }
        XCTAssertFalse(Kernels.isShiftedBlockGeometry(Im2colTests.geometries[1]), "stride 2 does not qualify")
        XCTAssertFalse(Kernels.isShiftedBlockGeometry(Im2colTests.geometries[2]), "4x4 kernel without padding shrinks the width")
    }

    func testIm2colShiftedMatchesDefinitionSideBySide() {
        for (i, g) in Self.geometries.enumerated() {
            let p = g.outputPlane, samples = 3
            let xs = (0..<samples).map { randomTensor([g.channels * g.inputPlane], seed: UInt64(60 + 7 * i + $0)).scalars }
            var cols = [Float](repeating: .nan, count: g.columnRows * samples * p)
            cols.withUnsafeMutableBufferPointer { cb in
                for s in 0..<samples {
                    xs[s].withUnsafeBufferPointer {
                        Kernels.im2colShifted($0.baseAddress!, geometry: g, columns: cb.baseAddress! + s * p, ldColumns: samples * p)
                    }
                }
            }
            for s in 0..<samples {
                let expected = naiveIm2col(xs[s], g)
                for r in 0..<g.columnRows {
                    XCTAssertEqual(Array(cols[(r * samples * p + s * p)..<(r * samples * p + s * p + p)]),
                                   Array(expected[(r * p)..<(r * p + p)]), "geometry \(i) sample \(s) row \(r)")
                }
            }
        }
    }

    func testCol2imShiftedMatchesDefinitionOverwritingAndAccumulating() {
        for (i, g) in Self.geometries.enumerated() {
            let p = g.outputPlane, samples = 2, s = 1  // the second of two samples side by side
            let c = randomTensor([g.columnRows * p], seed: UInt64(80 + i)).scalars
            var wide = [Float](repeating: 1e6, count: g.columnRows * samples * p)  // sample 0 must not be read
            for r in 0..<g.columnRows { for j in 0..<p { wide[r * samples * p + s * p + j] = c[r * p + j] } }
            let expected = naiveCol2im(c, g)
            let prior = randomTensor([g.channels * g.inputPlane], seed: UInt64(90 + i)).scalars
            for accumulate in [false, true] {
                var cols = wide
                var out = accumulate ? prior : [Float](repeating: .nan, count: prior.count)
                cols.withUnsafeMutableBufferPointer { cb in out.withUnsafeMutableBufferPointer { ob in
                    Kernels.col2imShifted(cb.baseAddress! + s * p, ldColumns: samples * p, geometry: g,
                                          gradInput: ob.baseAddress!, accumulate: accumulate)
                } }
                for j in 0..<out.count {
                    let want = expected[j] + (accumulate ? Double(prior[j]) : 0)
                    XCTAssertEqual(Double(out[j]), want, accuracy: 1e-5 * Swift.max(1, abs(want)),
                                   "geometry \(i) accumulate \(accumulate) element \(j)")
                }
                // Only padding entries of the sample's own block may have changed, and only to 0.
                for r in 0..<g.columnRows { for j in 0..<(samples * p) {
                    let before = wide[r * samples * p + j], after = cols[r * samples * p + j]
                    if before != after { XCTAssertTrue(j >= s * p && after == 0, "geometry \(i) row \(r) column \(j)") }
                } }
            }
        }
    }

    func testCol2imShiftedIsDeterministic() {
        let g = Self.geometries[0]
        let c = randomTensor([g.columnRows * g.outputPlane], seed: 5).scalars
        var results: [[Float]] = []
        for _ in 0..<2 {
            var cols = c
            var out = [Float](repeating: 0, count: g.channels * g.inputPlane)
            cols.withUnsafeMutableBufferPointer { cb in out.withUnsafeMutableBufferPointer { ob in
                Kernels.col2imShifted(cb.baseAddress!, ldColumns: g.outputPlane, geometry: g, gradInput: ob.baseAddress!,
                                      accumulate: false)
            } }
            results.append(out)
        }
        XCTAssertEqual(results[0].map(\.bitPattern), results[1].map(\.bitPattern))
    }

    func testAddInPlaceOddLengths() {
        for n in [0, 1, 7, 8, 9, 23] {
            let a = randomTensor([n + 1], seed: UInt64(n)).scalars, b = randomTensor([n + 1], seed: UInt64(100 + n)).scalars
            var d = a
            b.withUnsafeBufferPointer { bb in d.withUnsafeMutableBufferPointer { db in
                Kernels.addInPlace(n, source: bb.baseAddress!, destination: db.baseAddress!)
            } }
            for j in 0..<n { XCTAssertEqual(d[j], a[j] + b[j]) }
            XCTAssertEqual(d[n], a[n], "element n is untouched")
        }
    }
}

final class PoolingKernelTests: XCTestCase {
    private let cases: [(shape: [Int], kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int))] = [
        ([1, 1, 4, 4], (2, 2), (2, 2), (0, 0)),
        ([2, 3, 5, 7], (3, 3), (2, 2), (1, 1)),
        ([1, 2, 6, 5], (3, 2), (1, 2), (1, 0)),
        ([3, 1, 5, 5], (5, 5), (1, 1), (0, 0)),
    ]

    private func geometry(_ c: (shape: [Int], kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int))) -> WindowGeometry {
        WindowGeometry(channels: 1, height: c.shape[2], width: c.shape[3], kernelHeight: c.kernel.0, kernelWidth: c.kernel.1,
                       strideHeight: c.stride.0, strideWidth: c.stride.1, paddingHeight: c.padding.0, paddingWidth: c.padding.1)
    }

    func testMaxPoolMatchesNaiveTwin() {
        for (i, c) in cases.enumerated() {
            let x = randomTensor(c.shape, seed: UInt64(60 + i))
            let g = geometry(c)
            let planes = c.shape[0] * c.shape[1]
            var y = [Float](repeating: 0, count: planes * g.outputPlane)
            var arg = [Int32](repeating: 0, count: y.count)
            x.withUnsafeBufferPointer { xb in y.withUnsafeMutableBufferPointer { yb in arg.withUnsafeMutableBufferPointer { ab in
                Kernels.maxPoolForward(xb.baseAddress!, planes: planes, geometry: g, output: yb.baseAddress!, argmax: ab.baseAddress!)
            } } }
            let gy = randomTensor([c.shape[0], c.shape[1], g.outputHeight, g.outputWidth], seed: UInt64(70 + i))
            let ref = NaiveKernels.maxPool2d(x, kernel: c.kernel, stride: c.stride, padding: c.padding, gradOutput: gy)
            XCTAssertEqual(y, ref.output.scalars, "case \(i)")
            var gx = [Float](repeating: 0, count: x.count)
            gy.withUnsafeBufferPointer { gb in arg.withUnsafeBufferPointer { ab in gx.withUnsafeMutableBufferPointer { ob in
                Kernels.maxPoolBackward(gb.baseAddress!, argmax: ab.baseAddress!, planes: planes, geometry: g, gradInput: ob.baseAddress!)
            } } }
            assertClose(gx, ref.gradInput!.scalars, absolute: 1e-6, "case \(i)")
        }
    }

    func testMaxPoolTiesTakeFirstMaximum() {
        let x = Tensor(shape: [1, 1, 2, 2], values: [5, 5, 5, 5])
        let g = WindowGeometry(channels: 1, height: 2, width: 2, kernelHeight: 2, kernelWidth: 2, strideHeight: 2, strideWidth: 2)
        var y: [Float] = [0]
        var a: [Int32] = [-1]
        x.withUnsafeBufferPointer { xb in y.withUnsafeMutableBufferPointer { yb in a.withUnsafeMutableBufferPointer { ab in
            Kernels.maxPoolForward(xb.baseAddress!, planes: 1, geometry: g, output: yb.baseAddress!, argmax: ab.baseAddress!)
        } } }
        XCTAssertEqual(y, [5])
        XCTAssertEqual(a, [0])
    }

    func testAvgPoolMatchesNaiveTwinIncludingPadding() {
        for (i, c) in cases.enumerated() {
            let x = randomTensor(c.shape, seed: UInt64(80 + i))
            let g = geometry(c)
            let planes = c.shape[0] * c.shape[1]
            var y = [Float](repeating: 0, count: planes * g.outputPlane)
            x.withUnsafeBufferPointer { xb in y.withUnsafeMutableBufferPointer { yb in
                Kernels.avgPoolForward(xb.baseAddress!, planes: planes, geometry: g, output: yb.baseAddress!)
            } }
            let gy = randomTensor([c.shape[0], c.shape[1], g.outputHeight, g.outputWidth], seed: UInt64(90 + i))
            let ref = NaiveKernels.avgPool2d(x, kernel: c.kernel, stride: c.stride, padding: c.padding, gradOutput: gy)
            assertClose(y, ref.output.scalars, absolute: 1e-6, "case \(i)")
            var gx = [Float](repeating: 0, count: x.count)
            gy.withUnsafeBufferPointer { gb in gx.withUnsafeMutableBufferPointer { ob in
                Kernels.avgPoolBackward(gb.baseAddress!, planes: planes, geometry: g, gradInput: ob.baseAddress!)
            } }
            assertClose(gx, ref.gradInput!.scalars, absolute: 1e-6, "case \(i)")
        }
        // Worked value: 3x3 window, padding 1, corner output sums 4 inputs / 9 (count_include_pad).
        let ones = Tensor(shape: [1, 1, 2, 2], filledWith: 1)
        let r = NaiveKernels.avgPool2d(ones, kernel: (3, 3), stride: (1, 1), padding: (1, 1), gradOutput: nil)
        var y = [Float](repeating: 0, count: 4)
        let g = WindowGeometry(channels: 1, height: 2, width: 2, kernelHeight: 3, kernelWidth: 3, paddingHeight: 1, paddingWidth: 1)
        ones.withUnsafeBufferPointer { xb in y.withUnsafeMutableBufferPointer { Kernels.avgPoolForward(xb.baseAddress!, planes: 1, geometry: g, output: $0.baseAddress!) } }
        assertClose(y, [4.0 / 9, 4.0 / 9, 4.0 / 9, 4.0 / 9], absolute: 1e-7)
        assertClose(r.output.scalars, y, absolute: 1e-7)
    }
}

final class PhiloxTests: XCTestCase {
    /// Known-answer vectors from Random123 `kat_vectors` (philox4x32 10).
    func testPhiloxKnownAnswers() {
        let z = Philox4x32.block(counter: (0, 0, 0, 0), key: (0, 0))
        XCTAssertEqual([z.0, z.1, z.2, z.3], [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8])
        let f = Philox4x32.block(counter: (0xffff_ffff, 0xffff_ffff, 0xffff_ffff, 0xffff_ffff), key: (0xffff_ffff, 0xffff_ffff))
        XCTAssertEqual([f.0, f.1, f.2, f.3], [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd])
        let p = Philox4x32.block(counter: (0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344), key: (0xa409_3822, 0x299f_31d0))
        XCTAssertEqual([p.0, p.1, p.2, p.3], [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1])
    }

    func testStreamWithNoWordsIsPhiloxWithSeedKey() {
        var s = RandomStream(seed: 0)
        XCTAssertEqual([s.nextUInt32(), s.nextUInt32(), s.nextUInt32(), s.nextUInt32()],
                       [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8])
        let b1 = Philox4x32.block(counter: (1, 0, 0, 0), key: (0, 0))
        XCTAssertEqual(s.nextUInt32(), b1.0, "block 1 follows block 0")
    }

    func testStreamsAreDeterministicAndDistinct() {
        var a = RandomStream(seed: 42, stream: [3, 1000, 7])
        var b = RandomStream(seed: 42, stream: [3, 1000, 7])
        var c = RandomStream(seed: 42, stream: [3, 1001, 7])
        var d = RandomStream(seed: 42, stream: [7, 1000, 3])
        let va = (0..<8).map { _ in a.nextUInt32() }
        XCTAssertEqual(va, (0..<8).map { _ in b.nextUInt32() })
        XCTAssertNotEqual(va, (0..<8).map { _ in c.nextUInt32() })
        XCTAssertNotEqual(va, (0..<8).map { _ in d.nextUInt32() }, "word order matters")
    }

    /// Moments of 200k draws: uniform mean 1/2, variance 1/12; normal mean 0, variance 1.
    /// Standard errors: uniform mean 0.00065, normal mean 0.0022, so 5-sigma bounds below.
    func testUniformAndNormalMoments() {
        var s = RandomStream(seed: 7, stream: [1])
        let n = 200_000
        var sum = 0.0, sq = 0.0, minU: Float = 1, maxU: Float = 0
        for _ in 0..<n {
            let u = s.nextUniform()
            sum += Double(u); sq += Double(u) * Double(u)
            minU = min(minU, u); maxU = max(maxU, u)
        }
        XCTAssertEqual(sum / Double(n), 0.5, accuracy: 0.0033)
        XCTAssertEqual(sq / Double(n) - (sum / Double(n)) * (sum / Double(n)), 1.0 / 12, accuracy: 0.002)
        XCTAssertGreaterThanOrEqual(minU, 0)
        XCTAssertLessThan(maxU, 1)
        sum = 0; sq = 0
        for _ in 0..<n {
            let z = Double(s.nextNormal())
            sum += z; sq += z * z
        }
        XCTAssertEqual(sum / Double(n), 0, accuracy: 0.011)
        XCTAssertEqual(sq / Double(n), 1, accuracy: 0.016)
    }
}

final class StreamFillTests: XCTestCase {
    /// Block-wise filling gives the same numbers as element-wise draws, from any start.
    func testFillUniformMatchesNextUniform() {
        var a = RandomStream(seed: 3, stream: [9])
        var b = RandomStream(seed: 3, stream: [9])
        _ = a.nextUInt32(); _ = b.nextUInt32()   // start mid-block
        var filled = [Float](repeating: 0, count: 23)
        filled.withUnsafeMutableBufferPointer { a.fillUniform($0.baseAddress!, count: 23, low: -0.5, high: 2) }
        XCTAssertEqual(filled, (0..<23).map { _ in b.nextUniform(low: -0.5, high: 2) })
        XCTAssertEqual(a.nextUInt32(), b.nextUInt32())
    }

    func testReluBackwardMasksByOutputSign() {
        let n = 19
        let out: [Float] = (0..<n).map { Float($0 % 3) - 1 }   // -1, 0, 1, ...
        let g: [Float] = (0..<n).map { Float($0) + 0.5 }
        var gi = [Float](repeating: .nan, count: n)
        out.withUnsafeBufferPointer { o in g.withUnsafeBufferPointer { gb in gi.withUnsafeMutableBufferPointer { d in
            Kernels.reluBackward(n, output: o.baseAddress!, gradOutput: gb.baseAddress!, gradInput: d.baseAddress!)
        } } }
        XCTAssertEqual(gi, (0..<n).map { out[$0] > 0 ? g[$0] : 0 })
    }

    /// ReLU propagates NaN as PyTorch's `relu` does (NaN -> NaN, not 0), in the 8-wide SIMD body
    /// and the scalar tail alike, and its backward lets the gradient through where the output is
    /// NaN (`threshold_backward`: zero only where output <= 0). Before the fix NaN became 0 and a
    /// diverged model produced plausible numbers.
    func testReluPropagatesNaNInSIMDBodyAndTail() {
        let n = 11   // 8 lanes + a tail of 3
        var x = [Float](repeating: -1, count: n)
        x[2] = .nan; x[9] = .nan; x[3] = .infinity; x[4] = -.infinity; x[5] = 2
        var y = [Float](repeating: 7, count: n)
        x.withUnsafeBufferPointer { xb in y.withUnsafeMutableBufferPointer { Kernels.reluForward(n, x: xb.baseAddress!, out: $0.baseAddress!) } }
        XCTAssertTrue(y[2].isNaN && y[9].isNaN, "NaN must stay NaN: \(y)")
        XCTAssertEqual(y[3], .infinity)
        XCTAssertEqual(y[4], 0)
        XCTAssertEqual(y[5], 2)
        XCTAssertEqual(y[0], 0)
        let g = [Float](repeating: 0.5, count: n)
        var gi = [Float](repeating: 9, count: n)
        y.withUnsafeBufferPointer { o in g.withUnsafeBufferPointer { gb in gi.withUnsafeMutableBufferPointer { d in
            Kernels.reluBackward(n, output: o.baseAddress!, gradOutput: gb.baseAddress!, gradInput: d.baseAddress!)
        } } }
        XCTAssertEqual(gi[2], 0.5, "SIMD lane: gradient passes where the output is NaN")
        XCTAssertEqual(gi[9], 0.5, "tail: gradient passes where the output is NaN")
        XCTAssertEqual(gi[0], 0)
        XCTAssertEqual(gi[4], 0)
    }
}

final class BlockedSumTests: XCTestCase {
    /// Blocked SIMD sums against Double loops, on a length that is not a multiple of 8 and
    /// spans several 512-element blocks; the shift removes a large offset exactly.
    func testShiftedPlaneSumsAndSumAndDot() {
        let n = 1237
        let a = randomTensor([n], seed: 5).scalars.map { $0 + 1000 }   // mean 1000, std 0.58
        let b = randomTensor([n], seed: 6).scalars
        var s = 0.0, q = 0.0, d = 0.0, sa = 0.0
        for i in 0..<n {
            let v = Double(a[i]) - 1000
            s += v; q += v * v
            sa += Double(a[i]); d += Double(a[i]) * Double(b[i])
        }
        let (ks, kq) = a.withUnsafeBufferPointer { Kernels.shiftedPlaneSums($0.baseAddress!, count: n, shift: 1000) }
        assertClose(ks, s, absolute: 1e-3, relative: 1e-5)
        assertClose(kq, q, absolute: 1e-3, relative: 1e-5)
        let variance = kq / Double(n) - (ks / Double(n)) * (ks / Double(n))
        assertClose(variance, q / Double(n) - (s / Double(n)) * (s / Double(n)), absolute: 1e-6, relative: 1e-5)
        let (ts, td) = a.withUnsafeBufferPointer { ab in b.withUnsafeBufferPointer { Kernels.sumAndDot(ab.baseAddress!, $0.baseAddress!, count: n) } }
        assertClose(ts, sa, absolute: 1e-2, relative: 1e-6)
        assertClose(td, d, absolute: 1e-2, relative: 1e-5)
    }
}
