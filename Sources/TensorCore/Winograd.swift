/// Winograd minimal filtering F(2x2, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional
/// Neural Networks", CVPR 2016, section 4.1) for 3x3 convolutions with stride 1 and any zero
/// padding, with the transforms the backward pass needs.
///
/// Each 2x2 output tile is `A^T [ (G g G^T) (.) (B^T d B) ] A` for the 4x4 input tile `d` and
/// the 3x3 filter `g` (`(.)` elementwise), with
///
///     B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
///     G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
///     A^T = [1 1 1 0; 0 1 -1 -1]
///
/// Summed over input channels, the 16 elementwise products become 16 GEMMs over the channel
/// dimension (one per transform-domain position `xi = 4 * row + column`):
/// `M[xi] [Cout, T] = U[xi] [Cout, Cin] x V[xi] [Cin, T]` for `T` tiles. The multiply count per
/// output is 16 / 4 = 4 instead of 9 (2.25x fewer). Backward, with `dM = A dY A^T` per tile:
/// `dV[xi] = U[xi]^T dM[xi]` then `dX = B dV B^T` (tiles overlap by 2, contributions are added),
/// and `dU[xi] = dM[xi] V[xi]^T` then `dW = G^T dU G`. These are the exact adjoints of the
/// forward transforms, so the gradients are those of the same convolution (up to rounding).
///
/// (This text describes F(2x2, 3x3); F(4x4, 3x3), in WinogradF4.swift, has 4x4 output tiles, 6x6
/// input tiles and 36 positions, with the same layout.)
///
/// Layout of the transform-domain buffers: `V[xi][c][t]` at `v + xi * xiStride + c * ld + t`
/// (likewise `M`, `dM`, `dV`), where `t` is the tile index `tileOffset + i * tilesWide + j` of
/// tile row `i`, tile column `j`, so several samples can sit side by side in one GEMM. Tile
/// `(i, j)` covers output rows `2i, 2i+1` and columns `2j, 2j+1` (positions past the output edge
/// are dropped in the forward pass and read as zero gradient in backward) and reads input rows
/// `2i - padH ..< 2i - padH + 4` and columns `2j - padW ..< 2j - padW + 4` (zero outside).
public struct WinogradGeometry: Equatable, Sendable {
    public let height: Int
    public let width: Int
    public let paddingHeight: Int
    public let paddingWidth: Int
    /// Output tile size `m` of F(m x m, 3x3): 2 or 4.
    public let outputTile: Int

    /// Precondition: non-negative padding, a padded input of at least 3x3, output tile 2 or 4.
    public init(height: Int, width: Int, paddingHeight: Int, paddingWidth: Int, outputTile: Int = 2) {
        precondition(outputTile == 2 || outputTile == 4, "WinogradGeometry: output tile \(outputTile) must be 2 or 4")
        self.outputTile = outputTile
        precondition(paddingHeight >= 0 && paddingWidth >= 0 && height + 2 * paddingHeight >= 3
                     && width + 2 * paddingWidth >= 3,
                     "WinogradGeometry: input \(height)x\(width) with padding \(paddingHeight)x\(paddingWidth) is smaller than the 3x3 kernel")
        self.height = height
        self.width = width
        self.paddingHeight = paddingHeight
        self.paddingWidth = paddingWidth
    }

    /// `H + 2*padH - 2` (3x3 kernel, stride 1).
    public var outputHeight: Int { height + 2 * paddingHeight - 2 }
    /// `W + 2*padW - 2`.
    public var outputWidth: Int { width + 2 * paddingWidth - 2 }
    /// `ceil(OH / m)`.
    public var tilesHigh: Int { (outputHeight + outputTile - 1) / outputTile }
    /// `ceil(OW / m)`.
    public var tilesWide: Int { (outputWidth + outputTile - 1) / outputTile }
    /// Tiles per sample and channel.
    public var tiles: Int { tilesHigh * tilesWide }

    /// Precondition of every transform: one sample's tiles `tileOffset ..< tileOffset + tiles`
    /// fit in a row of `ld` floats and `channels` rows fit in one `xiStride` plane.
    @inline(__always)
    func checkTransformLayout(_ function: StaticString, channels: Int, tileOffset: Int, ld: Int, xiStride: Int) {
        precondition(channels >= 0 && tileOffset >= 0 && ld >= tileOffset + tiles && xiStride >= channels * ld,
                     "\(function): tiles \(tileOffset) ..< \(tileOffset + tiles) of a \(height)x\(width) plane (padding \(paddingHeight)x\(paddingWidth), output tile \(outputTile)) must fit ld \(ld), and \(channels) channels x ld \(ld) must fit xiStride \(xiStride)")
    }
}

/// Unaligned SIMD loads and stores for the Winograd transforms.
@usableFromInline enum WinogradSIMD {
    @inline(__always) static func load<V: SIMD>(_ p: UnsafePointer<Float>, as: V.Type = V.self) -> V where V.Scalar == Float {
        UnsafeRawPointer(p).loadUnaligned(as: V.self)
    }
    @inline(__always) static func store<V: SIMD>(_ v: V, _ p: UnsafeMutablePointer<Float>) where V.Scalar == Float {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
    }
    /// Even and odd elements of the 16 floats at `p`.
    @inline(__always) static func deinterleave8(_ p: UnsafePointer<Float>) -> (SIMD8<Float>, SIMD8<Float>) {
        let v: SIMD16<Float> = load(p)
        return (v.evenHalf, v.oddHalf)
    }
    /// Even and odd elements of the 8 floats at `p`.
    @inline(__always) static func deinterleave4(_ p: UnsafePointer<Float>) -> (SIMD4<Float>, SIMD4<Float>) {
        let v: SIMD8<Float> = load(p)
        return (v.evenHalf, v.oddHalf)
    }
    /// Stores `even` and `odd` interleaved as 16 floats at `p`.
    @inline(__always) static func interleave8(_ even: SIMD8<Float>, _ odd: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
        var v = SIMD16<Float>()
        v.evenHalf = even
        v.oddHalf = odd
        store(v, p)
    }
    /// Stores `even` and `odd` interleaved as 8 floats at `p`.
    @inline(__always) static func interleave4(_ even: SIMD4<Float>, _ odd: SIMD4<Float>, _ p: UnsafeMutablePointer<Float>) {
        var v = SIMD8<Float>()
        v.evenHalf = even
        v.oddHalf = odd
        store(v, p)
    }
}

extension Kernels {
    /// Filter transform `U = G g G^T`: `weight [Cout, Cin, 3, 3] => U[xi][Cout][Cin]` (16
    /// matrices `[Cout, Cin]`, `xi` outermost, no padding between them).
    public static func winogradTransformWeights(_ weight: UnsafePointer<Float>, outChannels: Int, inChannels: Int,
                                                into u: UnsafeMutablePointer<Float>) {
        let pairs = outChannels * inChannels
        for p in 0..<pairs {
            let g = weight + p * 9
            // Rows of G g (4 x 3), as 4 columns of 3.
            var r = SIMD16<Float>()
            for col in 0..<3 {
                let g0 = g[col], g1 = g[3 + col], g2 = g[6 + col]
                r[col] = g0
                r[4 + col] = 0.5 * (g0 + g1 + g2)
                r[8 + col] = 0.5 * (g0 - g1 + g2)
                r[12 + col] = g2
            }
            for row in 0..<4 {
                let a0 = r[row * 4], a1 = r[row * 4 + 1], a2 = r[row * 4 + 2]
                u[(row * 4 + 0) * pairs + p] = a0
                u[(row * 4 + 1) * pairs + p] = 0.5 * (a0 + a1 + a2)
                u[(row * 4 + 2) * pairs + p] = 0.5 * (a0 - a1 + a2)
                u[(row * 4 + 3) * pairs + p] = a2
            }
        }
    }

    /// Filter-gradient transform `dW += G^T dU G`: `dU[xi][Cout][Cin] => weightGrad [Cout, Cin, 3, 3]`
    /// (ACCUMULATES). The adjoint of ``winogradTransformWeights(_:outChannels:inChannels:into:)``.
    public static func winogradAccumulateWeightGradient(_ du: UnsafePointer<Float>, outChannels: Int, inChannels: Int,
                                                        into weightGrad: UnsafeMutablePointer<Float>) {
        let pairs = outChannels * inChannels
        for p in 0..<pairs {
            // Rows of G^T dU (3 x 4), then (G^T dU) G (3 x 3).
            var r = SIMD16<Float>()
            for col in 0..<4 {
                let d0 = du[col * pairs + p], d1 = du[(4 + col) * pairs + p]
                let d2 = du[(8 + col) * pairs + p], d3 = du[(12 + col) * pairs + p]
                r[col] = d0 + 0.5 * (d1 + d2)
                r[4 + col] = 0.5 * (d1 - d2)
                r[8 + col] = d3 + 0.5 * (d1 + d2)
            }
            let g = weightGrad + p * 9
            for row in 0..<3 {
                let a0 = r[row * 4], a1 = r[row * 4 + 1], a2 = r[row * 4 + 2], a3 = r[row * 4 + 3]
                g[row * 3 + 0] += a0 + 0.5 * (a1 + a2)
                g[row * 3 + 1] += 0.5 * (a1 - a2)
                g[row * 3 + 2] += a3 + 0.5 * (a1 + a2)
            }
        }
    }

    /// Input transform `V = B^T d B` of one sample: `x [C, H, W] => V[xi][c][tileOffset + t]`
    /// (see ``WinogradGeometry`` for the layout; `ld >= tileOffset + tiles`, `xiStride >= C * ld`).
    public static func winogradTransformInput(_ x: UnsafePointer<Float>, channels: Int, geometry g: WinogradGeometry,
                                              into v: UnsafeMutablePointer<Float>, tileOffset: Int, ld: Int, xiStride: Int) {
        precondition(g.outputTile == 2, "winogradTransformInput: geometry has output tile \(g.outputTile), expected 2")
        g.checkTransformLayout("winogradTransformInput", channels: channels, tileOffset: tileOffset, ld: ld, xiStride: xiStride)
        let th = g.tilesHigh, tw = g.tilesWide, h = g.height, w = g.width
        let ph = g.paddingHeight, pw = g.paddingWidth
        // One zero-padded channel plane: input (y, x) at padded (y + ph, x + pw); tile row i reads
        // padded rows 2i ..< 2i + 4, tile j padded columns 2j ..< 2j + 4. The padding is zeroed
        // once; each channel overwrites only the interior.
        let pwidth = 2 * tw + 2, pheight = 2 * th + 2
        let padded = UnsafeMutablePointer<Float>.allocate(capacity: pwidth * pheight)
        defer { padded.deallocate() }
        padded.update(repeating: 0, count: pwidth * pheight)
        let rowsCopied = Swift.min(h, pheight - ph), columnsCopied = Swift.min(w, pwidth - pw)
        for c in 0..<channels {
            let plane = x + c * h * w
            for y in 0..<rowsCopied {
                (padded + (y + ph) * pwidth + pw).update(from: plane + y * w, count: columnsCopied)
            }
            for i in 0..<th {
                let base = v + c * ld + tileOffset + i * tw
                let rows = UnsafePointer(padded + 2 * i * pwidth)
                // Row combination k of B^T d uses padded rows (ra, rb) with sign: t0 = d0 - d2,
                // t1 = d1 + d2, t2 = d2 - d1, t3 = d1 - d3; then B over the columns of t_k:
                // tile j's columns 2j .. 2j+3 are E[j], O[j], E[j+1], O[j+1] (even / odd columns).
                for k in 0..<4 {
                    let (ra, rb, sign): (Int, Int, Float) = k == 0 ? (0, 2, -1) : k == 1 ? (1, 2, 1) : k == 2 ? (2, 1, -1) : (1, 3, -1)
                    let pa = rows + ra * pwidth, pb = rows + rb * pwidth
                    let v0 = base + (4 * k) * xiStride, v1 = v0 + xiStride, v2 = v1 + xiStride, v3 = v2 + xiStride
                    var j = 0
                    while j + 8 <= tw {
                        let (ea, oa) = WinogradSIMD.deinterleave8(pa + 2 * j), (eb, ob) = WinogradSIMD.deinterleave8(pb + 2 * j)
                        let (ea1, oa1) = WinogradSIMD.deinterleave8(pa + 2 * j + 2), (eb1, ob1) = WinogradSIMD.deinterleave8(pb + 2 * j + 2)
                        let e = ea + sign * eb, o = oa + sign * ob, e1 = ea1 + sign * eb1, o1 = oa1 + sign * ob1
                        WinogradSIMD.store(e - e1, v0 + j)
                        WinogradSIMD.store(o + e1, v1 + j)
                        WinogradSIMD.store(e1 - o, v2 + j)
                        WinogradSIMD.store(o - o1, v3 + j)
                        j += 8
                    }
                    if j + 4 <= tw {
                        let (ea, oa) = WinogradSIMD.deinterleave4(pa + 2 * j), (eb, ob) = WinogradSIMD.deinterleave4(pb + 2 * j)
                        let (ea1, oa1) = WinogradSIMD.deinterleave4(pa + 2 * j + 2), (eb1, ob1) = WinogradSIMD.deinterleave4(pb + 2 * j + 2)
                        let e = ea + sign * eb, o = oa + sign * ob, e1 = ea1 + sign * eb1, o1 = oa1 + sign * ob1
                        WinogradSIMD.store(e - e1, v0 + j)
                        WinogradSIMD.store(o + e1, v1 + j)
                        WinogradSIMD.store(e1 - o, v2 + j)
                        WinogradSIMD.store(o - o1, v3 + j)
                        j += 4
                    }
                    while j < tw {
                        let e = pa[2 * j] + sign * pb[2 * j], o = pa[2 * j + 1] + sign * pb[2 * j + 1]
                        let e1 = pa[2 * j + 2] + sign * pb[2 * j + 2], o1 = pa[2 * j + 3] + sign * pb[2 * j + 3]
                        v0[j] = e - e1; v1[j] = o + e1; v2[j] = e1 - o; v3[j] = o - o1
                        j += 1
                    }
                }
            }
        }
    }

    /// Output transform `Y = A^T M A` of one sample: `M[xi][o][tileOffset + t] => y [Cout, OH, OW]`
    /// (OVERWRITES `y`; positions past the output edge are dropped).
    public static func winogradTransformOutput(_ mm: UnsafePointer<Float>, tileOffset: Int, ld: Int, xiStride: Int,
                                               channels: Int, geometry g: WinogradGeometry, into y: UnsafeMutablePointer<Float>) {
        precondition(g.outputTile == 2, "winogradTransformOutput: geometry has output tile \(g.outputTile), expected 2")
        g.checkTransformLayout("winogradTransformOutput", channels: channels, tileOffset: tileOffset, ld: ld, xiStride: xiStride)
        let th = g.tilesHigh, tw = g.tilesWide, oh = g.outputHeight, ow = g.outputWidth
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 8 * tw + 2 * tw)
        defer { scratch.deallocate() }
        let pq = scratch, rowBuffer = scratch + 8 * tw
        for c in 0..<channels {
            let out = y + c * oh * ow
            for i in 0..<th {
                let base = mm + c * ld + tileOffset + i * tw
                // A^T over rows: P_l = M0l + M1l + M2l, Q_l = M1l - M2l - M3l.
                for l in 0..<4 {
                    let m0 = base + l * xiStride, m1 = m0 + 4 * xiStride, m2 = m1 + 4 * xiStride, m3 = m2 + 4 * xiStride
                    let p = pq + l * tw, q = pq + (4 + l) * tw
                    var j = 0
                    while j + 8 <= tw {
                        let a: SIMD8<Float> = WinogradSIMD.load(m0 + j), b: SIMD8<Float> = WinogradSIMD.load(m1 + j)
                        let cc: SIMD8<Float> = WinogradSIMD.load(m2 + j), d: SIMD8<Float> = WinogradSIMD.load(m3 + j)
                        WinogradSIMD.store(a + b + cc, p + j)
                        WinogradSIMD.store(b - cc - d, q + j)
                        j += 8
                    }
                    while j < tw {
                        p[j] = m0[j] + m1[j] + m2[j]
                        q[j] = m1[j] - m2[j] - m3[j]
                        j += 1
                    }
                }
                // A over columns: output columns 2j = s0 + s1 + s2, 2j + 1 = s1 - s2 - s3.
                for r in 0..<2 {
                    let yRow = 2 * i + r
                    if yRow >= oh { continue }
                    let s0 = pq + (4 * r) * tw, s1 = s0 + tw, s2 = s1 + tw, s3 = s2 + tw
                    // Write straight into the output row when whole tiles fit, else via the buffer.
                    let direct = 2 * tw == ow
                    let dst = direct ? out + yRow * ow : rowBuffer
                    var j = 0
                    while j + 8 <= tw {
                        let a: SIMD8<Float> = WinogradSIMD.load(s0 + j), b: SIMD8<Float> = WinogradSIMD.load(s1 + j)
                        let cc: SIMD8<Float> = WinogradSIMD.load(s2 + j), d: SIMD8<Float> = WinogradSIMD.load(s3 + j)
                        WinogradSIMD.interleave8(a + b + cc, b - cc - d, dst + 2 * j)
                        j += 8
                    }
                    if j + 4 <= tw {
                        let a: SIMD4<Float> = WinogradSIMD.load(s0 + j), b: SIMD4<Float> = WinogradSIMD.load(s1 + j)
                        let cc: SIMD4<Float> = WinogradSIMD.load(s2 + j), d: SIMD4<Float> = WinogradSIMD.load(s3 + j)
                        WinogradSIMD.interleave4(a + b + cc, b - cc - d, dst + 2 * j)
                        j += 4
                    }
                    while j < tw {
                        dst[2 * j] = s0[j] + s1[j] + s2[j]
                        dst[2 * j + 1] = s1[j] - s2[j] - s3[j]
                        j += 1
                    }
                    if !direct { (out + yRow * ow).update(from: dst, count: ow) }
                }
            }
        }
    }

    /// Output-gradient transform `dM = A dY A^T` of one sample (the adjoint of the output
    /// transform): `dY [Cout, OH, OW] => dM[xi][o][tileOffset + t]`.
    public static func winogradTransformGradOutput(_ dy: UnsafePointer<Float>, channels: Int, geometry g: WinogradGeometry,
                                                   into dm: UnsafeMutablePointer<Float>, tileOffset: Int, ld: Int, xiStride: Int) {
        precondition(g.outputTile == 2, "winogradTransformGradOutput: geometry has output tile \(g.outputTile), expected 2")
        g.checkTransformLayout("winogradTransformGradOutput", channels: channels, tileOffset: tileOffset, ld: ld, xiStride: xiStride)
        let th = g.tilesHigh, tw = g.tilesWide, oh = g.outputHeight, ow = g.outputWidth
        // Two output rows padded with zeros to 2 * tw (when OW is odd or a row is past the edge).
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 4 * tw)
        defer { scratch.deallocate() }
        let padded = 2 * tw != ow
        for c in 0..<channels {
            let plane = dy + c * oh * ow
            for i in 0..<th {
                // Row pointers of output rows 2i and 2i + 1 (or zero-padded copies).
                func rowPointer(_ r: Int) -> UnsafePointer<Float> {
                    let yRow = 2 * i + r
                    let buffer = scratch + r * 2 * tw
                    if yRow >= oh {
                        buffer.update(repeating: 0, count: 2 * tw)
                        return UnsafePointer(buffer)
                    } else if padded {
                        buffer.update(from: plane + yRow * ow, count: ow)
                        buffer[2 * tw - 1] = 0
                        return UnsafePointer(buffer)
                    }
                    return plane + yRow * ow
                }
                let y0 = rowPointer(0), y1 = rowPointer(1)
                let base = dm + c * ld + tileOffset + i * tw
                @inline(__always) func d(_ xi: Int) -> UnsafeMutablePointer<Float> { base + xi * xiStride }
                // Rows of A dY: k0 = dY0, k1 = dY0 + dY1, k2 = dY0 - dY1, k3 = -dY1; then per row
                // (E even, O odd column): E, E + O, E - O, -O.
                var j = 0
                while j + 8 <= tw {
                    let (e0, o0) = WinogradSIMD.deinterleave8(y0 + 2 * j)
                    let (e1, o1) = WinogradSIMD.deinterleave8(y1 + 2 * j)
                    let es = (e0, e0 + e1, e0 - e1, -e1), os = (o0, o0 + o1, o0 - o1, -o1)
                    for k in 0..<4 {
                        let e: SIMD8<Float>, o: SIMD8<Float>
                        switch k {
                        case 0: (e, o) = (es.0, os.0)
                        case 1: (e, o) = (es.1, os.1)
                        case 2: (e, o) = (es.2, os.2)
                        default: (e, o) = (es.3, os.3)
                        }
                        WinogradSIMD.store(e, d(4 * k) + j)
                        WinogradSIMD.store(e + o, d(4 * k + 1) + j)
                        WinogradSIMD.store(e - o, d(4 * k + 2) + j)
                        WinogradSIMD.store(-o, d(4 * k + 3) + j)
                    }
                    j += 8
                }
                if j + 4 <= tw {
                    let (e0, o0) = WinogradSIMD.deinterleave4(y0 + 2 * j)
                    let (e1, o1) = WinogradSIMD.deinterleave4(y1 + 2 * j)
                    let ep = e0 + e1, em = e0 - e1, op = o0 + o1, om = o0 - o1
                    WinogradSIMD.store(e0, d(0) + j); WinogradSIMD.store(e0 + o0, d(1) + j)
                    WinogradSIMD.store(e0 - o0, d(2) + j); WinogradSIMD.store(-o0, d(3) + j)
                    WinogradSIMD.store(ep, d(4) + j); WinogradSIMD.store(ep + op, d(5) + j)
                    WinogradSIMD.store(ep - op, d(6) + j); WinogradSIMD.store(-op, d(7) + j)
                    WinogradSIMD.store(em, d(8) + j); WinogradSIMD.store(em + om, d(9) + j)
                    WinogradSIMD.store(em - om, d(10) + j); WinogradSIMD.store(-om, d(11) + j)
                    let e3 = -e1, o3 = -o1
                    WinogradSIMD.store(e3, d(12) + j); WinogradSIMD.store(e3 + o3, d(13) + j)
                    WinogradSIMD.store(e3 - o3, d(14) + j); WinogradSIMD.store(-o3, d(15) + j)
                    j += 4
                }
                while j < tw {
                    let e0 = y0[2 * j], o0 = y0[2 * j + 1], e1 = y1[2 * j], o1 = y1[2 * j + 1]
                    let es = SIMD4<Float>(e0, e0 + e1, e0 - e1, -e1), os = SIMD4<Float>(o0, o0 + o1, o0 - o1, -o1)
                    for k in 0..<4 {
                        d(4 * k)[j] = es[k]
                        d(4 * k + 1)[j] = es[k] + os[k]
                        d(4 * k + 2)[j] = es[k] - os[k]
                        d(4 * k + 3)[j] = -os[k]
                    }
                    j += 1
                }
            }
        }
    }

    /// Input-gradient transform `dX = B dV B^T` of one sample, overlapping tiles summed (the
    /// adjoint of the input transform): `dV[xi][c][tileOffset + t] => gradInput [C, H, W]`
    /// (OVERWRITES `gradInput`; every element is written).
    public static func winogradTransformGradInput(_ dv: UnsafePointer<Float>, tileOffset: Int, ld: Int, xiStride: Int,
                                                  channels: Int, geometry g: WinogradGeometry,
                                                  into gradInput: UnsafeMutablePointer<Float>) {
        precondition(g.outputTile == 2, "winogradTransformGradInput: geometry has output tile \(g.outputTile), expected 2")
        g.checkTransformLayout("winogradTransformGradInput", channels: channels, tileOffset: tileOffset, ld: ld, xiStride: xiStride)
        let th = g.tilesHigh, tw = g.tilesWide, h = g.height, w = g.width
        let ph = g.paddingHeight, pw = g.paddingWidth
        let pwidth = 2 * tw + 2
        // dcol[a][l]: row a of B dV, column l, over tiles, each with one leading zero (index -1);
        // cur / prev: the 4 padded-width rows of B dV B^T for this tile row and the previous one.
        let stride = tw + 1
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 16 * stride + 8 * pwidth)
        defer { scratch.deallocate() }
        scratch.update(repeating: 0, count: 16 * stride)
        let dcol = scratch + 1
        var cur = scratch + 16 * stride, prev = cur + 4 * pwidth
        for c in 0..<channels {
            let plane = gradInput + c * h * w
            for i in 0...th {
                if i < th {
                    let base = dv + c * ld + tileOffset + i * tw
                    // B over rows: D0 = V0, D1 = V1 - V2 + V3, D2 = V1 + V2 - V0, D3 = -V3.
                    for l in 0..<4 {
                        let v0 = base + l * xiStride, v1 = v0 + 4 * xiStride, v2 = v1 + 4 * xiStride, v3 = v2 + 4 * xiStride
                        let d0 = dcol + l * stride, d1 = dcol + (4 + l) * stride
                        let d2 = dcol + (8 + l) * stride, d3 = dcol + (12 + l) * stride
                        var j = 0
                        while j + 8 <= tw {
                            let a: SIMD8<Float> = WinogradSIMD.load(v0 + j), b: SIMD8<Float> = WinogradSIMD.load(v1 + j)
                            let cc: SIMD8<Float> = WinogradSIMD.load(v2 + j), d: SIMD8<Float> = WinogradSIMD.load(v3 + j)
                            WinogradSIMD.store(a, d0 + j)
                            WinogradSIMD.store(b - cc + d, d1 + j)
                            WinogradSIMD.store(b + cc - a, d2 + j)
                            WinogradSIMD.store(-d, d3 + j)
                            j += 8
                        }
                        while j < tw {
                            d0[j] = v0[j]
                            d1[j] = v1[j] - v2[j] + v3[j]
                            d2[j] = v1[j] + v2[j] - v0[j]
                            d3[j] = -v3[j]
                            j += 1
                        }
                    }
                    // B^T over columns, gathered into padded columns: column 2m gets c0 of tile m and
                    // c2 of tile m - 1; column 2m + 1 gets c1 of tile m and c3 of tile m - 1, with
                    // c0 = x0, c1 = x1 - x2 + x3, c2 = x1 + x2 - x0, c3 = -x3.
                    for a in 0..<4 {
                        let x0 = UnsafePointer(dcol + (4 * a) * stride), x1 = x0 + stride, x2 = x1 + stride, x3 = x2 + stride
                        let row = cur + a * pwidth
                        var m = 0
                        while m + 8 <= tw {
                            let p0: SIMD8<Float> = WinogradSIMD.load(x0 + m), p1: SIMD8<Float> = WinogradSIMD.load(x1 + m)
                            let p2: SIMD8<Float> = WinogradSIMD.load(x2 + m), p3: SIMD8<Float> = WinogradSIMD.load(x3 + m)
                            let q0: SIMD8<Float> = WinogradSIMD.load(x0 + m - 1), q1: SIMD8<Float> = WinogradSIMD.load(x1 + m - 1)
                            let q2: SIMD8<Float> = WinogradSIMD.load(x2 + m - 1), q3: SIMD8<Float> = WinogradSIMD.load(x3 + m - 1)
                            WinogradSIMD.interleave8(p0 + (q1 + q2 - q0), (p1 - p2 + p3) - q3, row + 2 * m)
                            m += 8
                        }
                        if m + 4 <= tw {
                            let p0: SIMD4<Float> = WinogradSIMD.load(x0 + m), p1: SIMD4<Float> = WinogradSIMD.load(x1 + m)
                            let p2: SIMD4<Float> = WinogradSIMD.load(x2 + m), p3: SIMD4<Float> = WinogradSIMD.load(x3 + m)
                            let q0: SIMD4<Float> = WinogradSIMD.load(x0 + m - 1), q1: SIMD4<Float> = WinogradSIMD.load(x1 + m - 1)
                            let q2: SIMD4<Float> = WinogradSIMD.load(x2 + m - 1), q3: SIMD4<Float> = WinogradSIMD.load(x3 + m - 1)
                            WinogradSIMD.interleave4(p0 + (q1 + q2 - q0), (p1 - p2 + p3) - q3, row + 2 * m)
                            m += 4
                        }
                        while m <= tw {
                            // x_l[-1] = 0 (leading zero); x_l[tw] is read as 0 below.
                            let p0 = m < tw ? x0[m] : 0, p1 = m < tw ? x1[m] : 0, p2 = m < tw ? x2[m] : 0, p3 = m < tw ? x3[m] : 0
                            let q0 = x0[m - 1], q1 = x1[m - 1], q2 = x2[m - 1], q3 = x3[m - 1]
                            row[2 * m] = p0 + (q1 + q2 - q0)
                            row[2 * m + 1] = (p1 - p2 + p3) - q3
                            m += 1
                        }
                    }
                }
                // Padded rows 2i (tile row i's row 0 + row 2 of tile row i - 1) and 2i + 1 (rows 1 and 3).
                for r in 0..<2 {
                    let y = 2 * i + r - ph
                    if y < 0 || y >= h { continue }
                    let hasCur = i < th, hasPrev = i > 0
                    let a = cur + r * pwidth + pw, b = prev + (2 + r) * pwidth + pw
                    let dst = plane + y * w
                    // Input column x is padded column x + pw <= 2 * tw + 1 (2 * tw >= OW = W + 2 * pw - 2).
                    if hasCur && hasPrev {
                        var x = 0
                        while x + 8 <= w {
                            let s: SIMD8<Float> = WinogradSIMD.load(a + x), t: SIMD8<Float> = WinogradSIMD.load(b + x)
                            WinogradSIMD.store(s + t, dst + x)
                            x += 8
                        }
                        while x < w { dst[x] = a[x] + b[x]; x += 1 }
                    } else {
                        dst.update(from: hasCur ? a : b, count: w)
                    }
                }
                swap(&cur, &prev)
            }
        }
    }
}
