/// Winograd F(4x4, 3x3) (Lavin & Gray 2016, interpolation points 0, 1, -1, 2, -2 and infinity):
/// 6x6 input tiles, 4x4 output tiles, 36 transform-domain positions `xi = 6 * row + column`,
/// 36 / 16 = 2.25 multiplies per output instead of 9 (4x fewer; F(2x2, 3x3) has 2.25x fewer).
///
///     B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
///     G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
///     A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
///
/// Same buffer layout and contracts as the F(2x2, 3x3) kernels (see `WinogradGeometry`, whose
/// `outputTile` must be 4 here): tile `(i, j)` covers output rows `4i ..< 4i + 4` and columns
/// `4j ..< 4j + 4` and reads input rows `4i - padH ..< 4i - padH + 6`, columns likewise.
/// Rounding: the larger transform coefficients make the error a few times that of F(2x2, 3x3)
/// (relative RMS error about 1.5e-6 measured against a Double reference, 5-10x im2col's; the
/// tests bound it at 1e-5).
enum WinogradF4 {
    /// `B^T d` for one 6-vector (each element a vector over tiles).
    @inline(__always)
    static func inputRows<V: SIMD>(_ d0: V, _ d1: V, _ d2: V, _ d3: V, _ d4: V, _ d5: V) -> (V, V, V, V, V, V)
    where V.Scalar == Float {
        let a = d4 - 4 * d2, b = d3 - 4 * d1, c = d4 - d2, e = 2 * (d3 - d1)
        return (4 * d0 - 5 * d2 + d4, a + b, a - b, c + e, c - e, 4 * d1 - 5 * d3 + d5)
    }

    /// `B x` (the adjoint of `inputRows`).
    @inline(__always)
    static func inputRowsAdjoint<V: SIMD>(_ x0: V, _ x1: V, _ x2: V, _ x3: V, _ x4: V, _ x5: V) -> (V, V, V, V, V, V)
    where V.Scalar == Float {
        let o0 = 4 * x0
        let o1 = 4 * (x2 - x1) + 2 * (x4 - x3) + 4 * x5
        let o2 = -5 * x0 - 4 * (x1 + x2) - (x3 + x4)
        let o3 = (x1 - x2) + 2 * (x3 - x4) - 5 * x5
        let o4 = x0 + x1 + x2 + x3 + x4
        return (o0, o1, o2, o3, o4, x5)
    }

    /// `A^T m` for one 6-vector (4 outputs).
    @inline(__always)
    static func outputRows<V: SIMD>(_ m0: V, _ m1: V, _ m2: V, _ m3: V, _ m4: V, _ m5: V) -> (V, V, V, V)
    where V.Scalar == Float {
        let p = m1 + m2, q = m1 - m2, r = m3 + m4, s = m3 - m4
        return (m0 + p + r, q + 2 * s, p + 4 * r, q + 8 * s + m5)
    }

    /// `A y` (the adjoint of `outputRows`; 4 inputs, 6 outputs).
    @inline(__always)
    static func outputRowsAdjoint<V: SIMD>(_ y0: V, _ y1: V, _ y2: V, _ y3: V) -> (V, V, V, V, V, V)
    where V.Scalar == Float {
        let even1 = y0 + y2, odd1 = y1 + y3, even2 = y0 + 4 * y2, odd2 = 2 * y1 + 8 * y3
        return (y0, even1 + odd1, even1 - odd1, even2 + odd2, even2 - odd2, y3)
    }

    /// `G g` for one 3-vector (6 outputs).
    @inline(__always)
    static func filterRows<V: SIMD>(_ g0: V, _ g1: V, _ g2: V) -> (V, V, V, V, V, V) where V.Scalar == Float {
        let s = g0 + g2, a = g0 * (1 / 24 as Float) + g2 * (1 / 6 as Float), b = g1 * (1 / 12 as Float)
        return (g0 * 0.25, (s + g1) * (-1 / 6 as Float), (s - g1) * (-1 / 6 as Float), a + b, a - b, g2)
    }

    /// `G^T u` (the adjoint of `filterRows`; 6 inputs, 3 outputs).
    @inline(__always)
    static func filterRowsAdjoint<V: SIMD>(_ u0: V, _ u1: V, _ u2: V, _ u3: V, _ u4: V, _ u5: V) -> (V, V, V)
    where V.Scalar == Float {
        let p = u1 + u2, q = u3 + u4, sixth = 1 / 6 as Float
        return (u0 * 0.25 - p * sixth + q * (1 / 24 as Float), (u2 - u1) * sixth + (u3 - u4) * (1 / 12 as Float),
                q * sixth - p * sixth + u5)
    }

    /// Columns `4j + s` (s = 0..3) of 32 floats at `p`, as 4 vectors over `j`.
    @inline(__always)
    static func phases8(_ p: UnsafePointer<Float>) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        let v: SIMD32<Float> = WinogradSIMD.load(p)
        let e = v.evenHalf, o = v.oddHalf
        return (e.evenHalf, o.evenHalf, e.oddHalf, o.oddHalf)
    }

    @inline(__always)
    static func phases4(_ p: UnsafePointer<Float>) -> (SIMD4<Float>, SIMD4<Float>, SIMD4<Float>, SIMD4<Float>) {
        let v: SIMD16<Float> = WinogradSIMD.load(p)
        let e = v.evenHalf, o = v.oddHalf
        return (e.evenHalf, o.evenHalf, e.oddHalf, o.oddHalf)
    }

    /// Scalar "vector" for the last tiles of a row: lane 0 carries the value.
    @inline(__always)
    static func phases1(_ p: UnsafePointer<Float>) -> (SIMD2<Float>, SIMD2<Float>, SIMD2<Float>, SIMD2<Float>) {
        (SIMD2(p[0], 0), SIMD2(p[1], 0), SIMD2(p[2], 0), SIMD2(p[3], 0))
    }

    @inline(__always)
    static func interleave8(_ a: SIMD8<Float>, _ b: SIMD8<Float>, _ c: SIMD8<Float>, _ d: SIMD8<Float>,
                            _ p: UnsafeMutablePointer<Float>) {
        var e = SIMD16<Float>(), o = SIMD16<Float>()
        e.evenHalf = a; e.oddHalf = c
        o.evenHalf = b; o.oddHalf = d
        var v = SIMD32<Float>()
        v.evenHalf = e; v.oddHalf = o
        WinogradSIMD.store(v, p)
    }

    @inline(__always)
    static func interleave4(_ a: SIMD4<Float>, _ b: SIMD4<Float>, _ c: SIMD4<Float>, _ d: SIMD4<Float>,
                            _ p: UnsafeMutablePointer<Float>) {
        var e = SIMD8<Float>(), o = SIMD8<Float>()
        e.evenHalf = a; e.oddHalf = c
        o.evenHalf = b; o.oddHalf = d
        var v = SIMD16<Float>()
        v.evenHalf = e; v.oddHalf = o
        WinogradSIMD.store(v, p)
    }

    @inline(__always)
    static func interleave1(_ a: SIMD2<Float>, _ b: SIMD2<Float>, _ c: SIMD2<Float>, _ d: SIMD2<Float>,
                            _ p: UnsafeMutablePointer<Float>) {
        p[0] = a[0]; p[1] = b[0]; p[2] = c[0]; p[3] = d[0]
    }

    @inline(__always)
    static func load1(_ p: UnsafePointer<Float>) -> SIMD2<Float> { SIMD2(p[0], 0) }
    @inline(__always)
    static func store1(_ v: SIMD2<Float>, _ p: UnsafeMutablePointer<Float>) { p[0] = v[0] }
}

extension Kernels {
    /// F(4x4, 3x3) filter transform `U = G g G^T`: `weight [Cout, Cin, 3, 3] => U[xi][Cout][Cin]`
    /// (36 matrices `[Cout, Cin]`). Eight (Cout, Cin) pairs per vector; the 1/6, 1/12 and 1/24
    /// of `G` are multiplications by the rounded reciprocals.
    public static func winograd4TransformWeights(_ weight: UnsafePointer<Float>, outChannels: Int, inChannels: Int,
                                                 into u: UnsafeMutablePointer<Float>) {
        let pairs = outChannels * inChannels
        @inline(__always)
        func block<V: SIMD>(_ p: Int, _ width: Int, _ store: (V, UnsafeMutablePointer<Float>) -> Void) where V.Scalar == Float {
            @inline(__always) func tap(_ k: Int) -> V {
                var v = V()
                for l in 0..<width { v[l] = weight[(p + l) * 9 + k] }
                return v
            }
            // Columns of G g (6 rows each), then G over each row of G g.
            let c0 = WinogradF4.filterRows(tap(0), tap(3), tap(6))
            let c1 = WinogradF4.filterRows(tap(1), tap(4), tap(7))
            let c2 = WinogradF4.filterRows(tap(2), tap(5), tap(8))
            @inline(__always) func emit(_ r: Int, _ a: V, _ b: V, _ c: V) {
                let t = WinogradF4.filterRows(a, b, c)
                let out = u + (6 * r) * pairs + p
                store(t.0, out); store(t.1, out + pairs); store(t.2, out + 2 * pairs)
                store(t.3, out + 3 * pairs); store(t.4, out + 4 * pairs); store(t.5, out + 5 * pairs)
            }
            emit(0, c0.0, c1.0, c2.0); emit(1, c0.1, c1.1, c2.1); emit(2, c0.2, c1.2, c2.2)
            emit(3, c0.3, c1.3, c2.3); emit(4, c0.4, c1.4, c2.4); emit(5, c0.5, c1.5, c2.5)
        }
        var p = 0
        while p + 8 <= pairs { block(p, 8, { (v: SIMD8<Float>, q) in WinogradSIMD.store(v, q) }); p += 8 }
        while p < pairs { block(p, 1, WinogradF4.store1); p += 1 }
    }

    /// F(4x4, 3x3) filter-gradient transform `dW += G^T dU G` (ACCUMULATES into
    /// `weightGrad [Cout, Cin, 3, 3]`); the adjoint of ``winograd4TransformWeights(_:outChannels:inChannels:into:)``.
    public static func winograd4AccumulateWeightGradient(_ du: UnsafePointer<Float>, outChannels: Int, inChannels: Int,
                                                         into weightGrad: UnsafeMutablePointer<Float>) {
        let pairs = outChannels * inChannels
        @inline(__always)
        func block<V: SIMD>(_ p: Int, _ width: Int, _ load: (UnsafePointer<Float>) -> V) where V.Scalar == Float {
            // G^T dU column by column (3 x 6), then (G^T dU) G row by row (3 x 3).
            @inline(__always) func column(_ l: Int) -> (V, V, V) {
                let b = du + l * pairs + p
                return WinogradF4.filterRowsAdjoint(load(b), load(b + 6 * pairs), load(b + 12 * pairs),
                                                    load(b + 18 * pairs), load(b + 24 * pairs), load(b + 30 * pairs))
            }
            let k0 = column(0), k1 = column(1), k2 = column(2), k3 = column(3), k4 = column(4), k5 = column(5)
            let r0 = WinogradF4.filterRowsAdjoint(k0.0, k1.0, k2.0, k3.0, k4.0, k5.0)
            let r1 = WinogradF4.filterRowsAdjoint(k0.1, k1.1, k2.1, k3.1, k4.1, k5.1)
            let r2 = WinogradF4.filterRowsAdjoint(k0.2, k1.2, k2.2, k3.2, k4.2, k5.2)
            for l in 0..<width {
                let g = weightGrad + (p + l) * 9
                g[0] += r0.0[l]; g[1] += r0.1[l]; g[2] += r0.2[l]
                g[3] += r1.0[l]; g[4] += r1.1[l]; g[5] += r1.2[l]
                g[6] += r2.0[l]; g[7] += r2.1[l]; g[8] += r2.2[l]
            }
        }
        var p = 0
        while p + 8 <= pairs { block(p, 8, { WinogradSIMD.load($0) as SIMD8<Float> }); p += 8 }
        while p < pairs { block(p, 1, WinogradF4.load1); p += 1 }
    }

    /// F(4x4, 3x3) input transform `V = B^T d B` of one sample: `x [C, H, W] => V[xi][c][tileOffset + t]`.
    public static func winograd4TransformInput(_ x: UnsafePointer<Float>, channels: Int, geometry g: WinogradGeometry,
                                               into v: UnsafeMutablePointer<Float>, tileOffset: Int, ld: Int, xiStride: Int) {
        precondition(g.outputTile == 4, "winograd4TransformInput: geometry has output tile \(g.outputTile), expected 4")
        g.checkTransformLayout("winograd4TransformInput", channels: channels, tileOffset: tileOffset, ld: ld, xiStride: xiStride)
        let th = g.tilesHigh, tw = g.tilesWide, h = g.height, w = g.width
        let ph = g.paddingHeight, pw = g.paddingWidth
        // Zero-padded plane; rows are 4 * tw + 8 floats so the 32-float loads at 4j + 4 stay inside.
        let prow = 4 * tw + 8, pheight = 4 * th + 2
        let padded = UnsafeMutablePointer<Float>.allocate(capacity: prow * pheight)
        defer { padded.deallocate() }
        padded.update(repeating: 0, count: prow * pheight)
        let rowsCopied = Swift.min(h, pheight - ph), columnsCopied = Swift.min(w, prow - pw)
        for c in 0..<channels {
            let plane = x + c * h * w
            for y in 0..<Swift.max(0, rowsCopied) {
                (padded + (y + ph) * prow + pw).update(from: plane + y * w, count: columnsCopied)
            }
            for i in 0..<th {
                let base = v + c * ld + tileOffset + i * tw
                let rows = UnsafePointer(padded + 4 * i * prow)
                @inline(__always)
                func block<V: SIMD>(_ j: Int, _ phases: (UnsafePointer<Float>) -> (V, V, V, V),
                                    _ store: (V, UnsafeMutablePointer<Float>) -> Void) where V.Scalar == Float {
                    // B over the columns of each of the 6 rows, then B^T down the rows.
                    @inline(__always) func horizontal(_ r: Int) -> (V, V, V, V, V, V) {
                        let row = rows + r * prow + 4 * j
                        let (p0, p1, p2, p3) = phases(row)
                        let (p4, p5, _, _) = phases(row + 4)
                        return WinogradF4.inputRows(p0, p1, p2, p3, p4, p5)
                    }
                    let h0 = horizontal(0), h1 = horizontal(1), h2 = horizontal(2)
                    let h3 = horizontal(3), h4 = horizontal(4), h5 = horizontal(5)
                    @inline(__always) func vertical(_ l: Int, _ a: V, _ b: V, _ cc: V, _ d: V, _ e: V, _ f: V) {
                        let o = WinogradF4.inputRows(a, b, cc, d, e, f)
                        let dst = base + l * xiStride + j
                        store(o.0, dst); store(o.1, dst + 6 * xiStride); store(o.2, dst + 12 * xiStride)
                        store(o.3, dst + 18 * xiStride); store(o.4, dst + 24 * xiStride); store(o.5, dst + 30 * xiStride)
                    }
                    vertical(0, h0.0, h1.0, h2.0, h3.0, h4.0, h5.0)
                    vertical(1, h0.1, h1.1, h2.1, h3.1, h4.1, h5.1)
                    vertical(2, h0.2, h1.2, h2.2, h3.2, h4.2, h5.2)
                    vertical(3, h0.3, h1.3, h2.3, h3.3, h4.3, h5.3)
                    vertical(4, h0.4, h1.4, h2.4, h3.4, h4.4, h5.4)
                    vertical(5, h0.5, h1.5, h2.5, h3.5, h4.5, h5.5)
                }
                var j = 0
                while j + 8 <= tw { block(j, WinogradF4.phases8, WinogradSIMD.store); j += 8 }
                if j + 4 <= tw { block(j, WinogradF4.phases4, WinogradSIMD.store); j += 4 }
                while j < tw { block(j, WinogradF4.phases1, WinogradF4.store1); j += 1 }
            }
        }
    }

    /// F(4x4, 3x3) output transform `Y = A^T M A` of one sample: `M[xi][o][tileOffset + t] => y [Cout, OH, OW]`
    /// (OVERWRITES `y`; positions past the output edge are dropped).
    public static func winograd4TransformOutput(_ mm: UnsafePointer<Float>, tileOffset: Int, ld: Int, xiStride: Int,
                                                channels: Int, geometry g: WinogradGeometry, into y: UnsafeMutablePointer<Float>) {
        precondition(g.outputTile == 4, "winograd4TransformOutput: geometry has output tile \(g.outputTile), expected 4")
        g.checkTransformLayout("winograd4TransformOutput", channels: channels, tileOffset: tileOffset, ld: ld, xiStride: xiStride)
        let th = g.tilesHigh, tw = g.tilesWide, oh = g.outputHeight, ow = g.outputWidth
        let direct = 4 * tw == ow
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: 4 * 4 * tw)
        defer { buffer.deallocate() }
        for c in 0..<channels {
            let out = y + c * oh * ow
            for i in 0..<th {
                let base = mm + c * ld + tileOffset + i * tw
                // Output rows 4i + s, straight into y when whole tiles fit.
                @inline(__always) func rowPointer(_ s: Int) -> UnsafeMutablePointer<Float> {
                    direct && 4 * i + s < oh ? out + (4 * i + s) * ow : buffer + s * 4 * tw
                }
                let r0 = rowPointer(0), r1 = rowPointer(1), r2 = rowPointer(2), r3 = rowPointer(3)
                @inline(__always)
                func block<V: SIMD>(_ j: Int, _ load: (UnsafePointer<Float>) -> V,
                                    _ interleave: (V, V, V, V, UnsafeMutablePointer<Float>) -> Void) where V.Scalar == Float {
                    // A^T down the rows for each column l, then A over the columns of each output row.
                    @inline(__always) func vertical(_ l: Int) -> (V, V, V, V) {
                        let p = base + l * xiStride + j
                        return WinogradF4.outputRows(load(p), load(p + 6 * xiStride), load(p + 12 * xiStride),
                                                     load(p + 18 * xiStride), load(p + 24 * xiStride), load(p + 30 * xiStride))
                    }
                    let c0 = vertical(0), c1 = vertical(1), c2 = vertical(2), c3 = vertical(3), c4 = vertical(4), c5 = vertical(5)
                    let y0 = WinogradF4.outputRows(c0.0, c1.0, c2.0, c3.0, c4.0, c5.0)
                    interleave(y0.0, y0.1, y0.2, y0.3, r0 + 4 * j)
                    let y1 = WinogradF4.outputRows(c0.1, c1.1, c2.1, c3.1, c4.1, c5.1)
                    interleave(y1.0, y1.1, y1.2, y1.3, r1 + 4 * j)
                    let y2 = WinogradF4.outputRows(c0.2, c1.2, c2.2, c3.2, c4.2, c5.2)
                    interleave(y2.0, y2.1, y2.2, y2.3, r2 + 4 * j)
                    let y3 = WinogradF4.outputRows(c0.3, c1.3, c2.3, c3.3, c4.3, c5.3)
                    interleave(y3.0, y3.1, y3.2, y3.3, r3 + 4 * j)
                }
                var j = 0
                while j + 8 <= tw { block(j, { WinogradSIMD.load($0) as SIMD8<Float> }, WinogradF4.interleave8); j += 8 }
                if j + 4 <= tw { block(j, { WinogradSIMD.load($0) as SIMD4<Float> }, WinogradF4.interleave4); j += 4 }
                while j < tw { block(j, WinogradF4.load1, WinogradF4.interleave1); j += 1 }
                for s in 0..<4 where 4 * i + s < oh && !direct {
                    (out + (4 * i + s) * ow).update(from: buffer + s * 4 * tw, count: ow)
                }
            }
        }
    }

    /// F(4x4, 3x3) output-gradient transform `dM = A dY A^T` of one sample:
    /// `dY [Cout, OH, OW] => dM[xi][o][tileOffset + t]` (the adjoint of the output transform).
    public static func winograd4TransformGradOutput(_ dy: UnsafePointer<Float>, channels: Int, geometry g: WinogradGeometry,
                                                    into dm: UnsafeMutablePointer<Float>, tileOffset: Int, ld: Int, xiStride: Int) {
        precondition(g.outputTile == 4, "winograd4TransformGradOutput: geometry has output tile \(g.outputTile), expected 4")
        g.checkTransformLayout("winograd4TransformGradOutput", channels: channels, tileOffset: tileOffset, ld: ld, xiStride: xiStride)
        let th = g.tilesHigh, tw = g.tilesWide, oh = g.outputHeight, ow = g.outputWidth
        let direct = 4 * tw == ow
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: 4 * 4 * tw)
        defer { buffer.deallocate() }
        for c in 0..<channels {
            let plane = dy + c * oh * ow
            for i in 0..<th {
                // Output-gradient rows 4i + s, or zero-padded copies.
                @inline(__always) func rowPointer(_ s: Int) -> UnsafePointer<Float> {
                    let yRow = 4 * i + s
                    if direct && yRow < oh { return plane + yRow * ow }
                    let b = buffer + s * 4 * tw
                    if yRow < oh {
                        b.update(from: plane + yRow * ow, count: ow)
                        (b + ow).update(repeating: 0, count: 4 * tw - ow)
                    } else {
                        b.update(repeating: 0, count: 4 * tw)
                    }
                    return UnsafePointer(b)
                }
                let r0 = rowPointer(0), r1 = rowPointer(1), r2 = rowPointer(2), r3 = rowPointer(3)
                let base = dm + c * ld + tileOffset + i * tw
                @inline(__always)
                func block<V: SIMD>(_ j: Int, _ phases: (UnsafePointer<Float>) -> (V, V, V, V),
                                    _ store: (V, UnsafeMutablePointer<Float>) -> Void) where V.Scalar == Float {
                    // A over the columns of each dY row (4 -> 6), then A down the rows (4 -> 6).
                    @inline(__always) func horizontal(_ row: UnsafePointer<Float>) -> (V, V, V, V, V, V) {
                        let (a, b, cc, d) = phases(row + 4 * j)
                        return WinogradF4.outputRowsAdjoint(a, b, cc, d)
                    }
                    let h0 = horizontal(r0), h1 = horizontal(r1), h2 = horizontal(r2), h3 = horizontal(r3)
                    @inline(__always) func vertical(_ l: Int, _ a: V, _ b: V, _ cc: V, _ d: V) {
                        let o = WinogradF4.outputRowsAdjoint(a, b, cc, d)
                        let dst = base + l * xiStride + j
                        store(o.0, dst); store(o.1, dst + 6 * xiStride); store(o.2, dst + 12 * xiStride)
                        store(o.3, dst + 18 * xiStride); store(o.4, dst + 24 * xiStride); store(o.5, dst + 30 * xiStride)
                    }
                    vertical(0, h0.0, h1.0, h2.0, h3.0)
                    vertical(1, h0.1, h1.1, h2.1, h3.1)
                    vertical(2, h0.2, h1.2, h2.2, h3.2)
                    vertical(3, h0.3, h1.3, h2.3, h3.3)
                    vertical(4, h0.4, h1.4, h2.4, h3.4)
                    vertical(5, h0.5, h1.5, h2.5, h3.5)
                }
                var j = 0
                while j + 8 <= tw { block(j, WinogradF4.phases8, WinogradSIMD.store); j += 8 }
                if j + 4 <= tw { block(j, WinogradF4.phases4, WinogradSIMD.store); j += 4 }
                while j < tw { block(j, WinogradF4.phases1, WinogradF4.store1); j += 1 }
            }
        }
    }

    /// F(4x4, 3x3) input-gradient transform `dX = B dV B^T` of one sample, overlapping tiles
    /// summed: `dV[xi][c][tileOffset + t] => gradInput [C, H, W]` (OVERWRITES `gradInput`).
    public static func winograd4TransformGradInput(_ dv: UnsafePointer<Float>, tileOffset: Int, ld: Int, xiStride: Int,
                                                   channels: Int, geometry g: WinogradGeometry,
                                                   into gradInput: UnsafeMutablePointer<Float>) {
        precondition(g.outputTile == 4, "winograd4TransformGradInput: geometry has output tile \(g.outputTile), expected 4")
        g.checkTransformLayout("winograd4TransformGradInput", channels: channels, tileOffset: tileOffset, ld: ld, xiStride: xiStride)
        let th = g.tilesHigh, tw = g.tilesWide, h = g.height, w = g.width
        let ph = g.paddingHeight, pw = g.paddingWidth
        let pwidth = 4 * tw + 2
        // cols[a][b][m]: column b (0..5) of row a (0..5) of B dV B^T for tile m, with a leading
        // zero (index -1) for the overlap with the previous tile; cur / prev: the 6 padded-width
        // rows of this tile row and the previous one.
        let stride = tw + 1
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 36 * stride + 12 * pwidth)
        defer { scratch.deallocate() }
        scratch.update(repeating: 0, count: 36 * stride)
        let cols = scratch + 1
        var cur = scratch + 36 * stride, prev = cur + 6 * pwidth
        for c in 0..<channels {
            let plane = gradInput + c * h * w
            for i in 0...th {
                if i < th {
                    let base = dv + c * ld + tileOffset + i * tw
                    @inline(__always)
                    func block<V: SIMD>(_ j: Int, _ load: (UnsafePointer<Float>) -> V,
                                        _ store: (V, UnsafeMutablePointer<Float>) -> Void) where V.Scalar == Float {
                        // B down the rows for each column l, then B over the columns of each row a.
                        @inline(__always) func vertical(_ l: Int) -> (V, V, V, V, V, V) {
                            let p = base + l * xiStride + j
                            return WinogradF4.inputRowsAdjoint(load(p), load(p + 6 * xiStride), load(p + 12 * xiStride),
                                                               load(p + 18 * xiStride), load(p + 24 * xiStride), load(p + 30 * xiStride))
                        }
                        let d0 = vertical(0), d1 = vertical(1), d2 = vertical(2), d3 = vertical(3), d4 = vertical(4), d5 = vertical(5)
                        @inline(__always) func horizontal(_ a: Int, _ x0: V, _ x1: V, _ x2: V, _ x3: V, _ x4: V, _ x5: V) {
                            let o = WinogradF4.inputRowsAdjoint(x0, x1, x2, x3, x4, x5)
                            let dst = cols + (6 * a) * stride + j
                            store(o.0, dst); store(o.1, dst + stride); store(o.2, dst + 2 * stride)
                            store(o.3, dst + 3 * stride); store(o.4, dst + 4 * stride); store(o.5, dst + 5 * stride)
                        }
                        horizontal(0, d0.0, d1.0, d2.0, d3.0, d4.0, d5.0)
                        horizontal(1, d0.1, d1.1, d2.1, d3.1, d4.1, d5.1)
                        horizontal(2, d0.2, d1.2, d2.2, d3.2, d4.2, d5.2)
                        horizontal(3, d0.3, d1.3, d2.3, d3.3, d4.3, d5.3)
                        horizontal(4, d0.4, d1.4, d2.4, d3.4, d4.4, d5.4)
                        horizontal(5, d0.5, d1.5, d2.5, d3.5, d4.5, d5.5)
                    }
                    var j = 0
                    while j + 8 <= tw { block(j, { WinogradSIMD.load($0) as SIMD8<Float> }, { WinogradSIMD.store($0, $1) }); j += 8 }
                    if j + 4 <= tw { block(j, { WinogradSIMD.load($0) as SIMD4<Float> }, { WinogradSIMD.store($0, $1) }); j += 4 }
                    while j < tw { block(j, WinogradF4.load1, WinogradF4.store1); j += 1 }
                    // Padded columns of row a: 4m + q gets column q of tile m plus (q < 2) column q + 4 of tile m - 1.
                    for a in 0..<6 {
                        let x = UnsafePointer(cols + (6 * a) * stride)
                        let c0 = x, c1 = x + stride, c2 = x + 2 * stride, c3 = x + 3 * stride, c4 = x + 4 * stride, c5 = x + 5 * stride
                        let row = cur + a * pwidth
                        var m = 0
                        while m + 8 <= tw {
                            let e0: SIMD8<Float> = WinogradSIMD.load(c0 + m), e4: SIMD8<Float> = WinogradSIMD.load(c4 + m - 1)
                            let e1: SIMD8<Float> = WinogradSIMD.load(c1 + m), e5: SIMD8<Float> = WinogradSIMD.load(c5 + m - 1)
                            let e2: SIMD8<Float> = WinogradSIMD.load(c2 + m), e3: SIMD8<Float> = WinogradSIMD.load(c3 + m)
                            WinogradF4.interleave8(e0 + e4, e1 + e5, e2, e3, row + 4 * m)
                            m += 8
                        }
                        while m < tw {
                            row[4 * m] = c0[m] + c4[m - 1]
                            row[4 * m + 1] = c1[m] + c5[m - 1]
                            row[4 * m + 2] = c2[m]
                            row[4 * m + 3] = c3[m]
                            m += 1
                        }
                        row[4 * tw] = c4[tw - 1]
                        row[4 * tw + 1] = c5[tw - 1]
                    }
                }
                // Padded rows 4i + a: rows 0, 1 also get rows 4, 5 of the previous tile row.
                for a in 0..<4 {
                    let y = 4 * i + a - ph
                    if y < 0 || y >= h { continue }
                    let hasCur = i < th, hasPrev = i > 0 && a < 2
                    if !hasCur && !hasPrev { continue }
                    let dst = plane + y * w
                    let s = cur + a * pwidth + pw, t = prev + (4 + a) * pwidth + pw
                    if hasCur && hasPrev {
                        var x = 0
                        while x + 8 <= w {
                            let p: SIMD8<Float> = WinogradSIMD.load(s + x), q: SIMD8<Float> = WinogradSIMD.load(t + x)
                            WinogradSIMD.store(p + q, dst + x)
                            x += 8
                        }
                        while x < w { dst[x] = s[x] + t[x]; x += 1 }
                    } else {
                        dst.update(from: hasCur ? s : t, count: w)
                    }
                }
                swap(&cur, &prev)
            }
        }
    }
}
