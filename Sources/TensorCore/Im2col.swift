/// Geometry of a 2-D sliding window (convolution or pooling) over one `[C, H, W]` plane stack,
/// with PyTorch's output size `OH = (H + 2*padH - KH) / strideH + 1` (floor, no dilation).
public struct WindowGeometry: Equatable, Sendable {
    public let channels: Int
    public let height: Int
    public let width: Int
    public let kernelHeight: Int
    public let kernelWidth: Int
    public let strideHeight: Int
    public let strideWidth: Int
    public let paddingHeight: Int
    public let paddingWidth: Int

    /// Precondition: positive kernel and stride, non-negative padding, window fits the padded input.
    public init(channels: Int, height: Int, width: Int, kernelHeight: Int, kernelWidth: Int,
                strideHeight: Int = 1, strideWidth: Int = 1, paddingHeight: Int = 0, paddingWidth: Int = 0) {
        precondition(kernelHeight > 0 && kernelWidth > 0 && strideHeight > 0 && strideWidth > 0
                     && paddingHeight >= 0 && paddingWidth >= 0,
                     "WindowGeometry: kernel \(kernelHeight)x\(kernelWidth) stride \(strideHeight)x\(strideWidth) padding \(paddingHeight)x\(paddingWidth) invalid")
        precondition(height + 2 * paddingHeight >= kernelHeight && width + 2 * paddingWidth >= kernelWidth,
                     "WindowGeometry: kernel \(kernelHeight)x\(kernelWidth) larger than padded input \(height + 2 * paddingHeight)x\(width + 2 * paddingWidth)")
        self.channels = channels
        self.height = height
        self.width = width
        self.kernelHeight = kernelHeight
        self.kernelWidth = kernelWidth
        self.strideHeight = strideHeight
        self.strideWidth = strideWidth
        self.paddingHeight = paddingHeight
        self.paddingWidth = paddingWidth
    }

    /// Output height `(H + 2*padH - KH) / strideH + 1`.
    public var outputHeight: Int { (height + 2 * paddingHeight - kernelHeight) / strideHeight + 1 }
    /// Output width `(W + 2*padW - KW) / strideW + 1`.
    public var outputWidth: Int { (width + 2 * paddingWidth - kernelWidth) / strideWidth + 1 }
    /// `C * KH * KW`: rows of the im2col matrix.
    public var columnRows: Int { channels * kernelHeight * kernelWidth }
    /// `OH * OW`: output positions per plane.
    public var outputPlane: Int { outputHeight * outputWidth }
    /// `H * W`.
    public var inputPlane: Int { height * width }
}

extension Kernels {
    /// im2col: `[C, H, W] => [C*KH*KW, OH*OW]`, row `(c*KH + kh)*KW + kw`, column `oh*OW + ow`,
    /// value `x[c, oh*sh - ph + kh, ow*sw - pw + kw]` or 0 in the padding.
    ///
    /// The output rows are `ldColumns >= OH*OW` floats apart, so several samples can be laid
    /// side by side (`columns + b*OH*OW`, `ldColumns = B*OH*OW`) for one large GEMM.
    public static func im2col(_ input: UnsafePointer<Float>, geometry g: WindowGeometry,
                              columns: UnsafeMutablePointer<Float>, ldColumns: Int) {
        let oh = g.outputHeight, ow = g.outputWidth
        let h = g.height, w = g.width
        let sh = g.strideHeight, sw = g.strideWidth, ph = g.paddingHeight, pw = g.paddingWidth
        var row = 0
        for c in 0..<g.channels {
            let plane = input + c * h * w
            for kh in 0..<g.kernelHeight {
                for kw in 0..<g.kernelWidth {
                    let dstRow = columns + row * ldColumns
                    row += 1
                    // Valid output columns: 0 <= ow*sw - pw + kw < W.
                    let owStart = Swift.max(0, (pw - kw + sw - 1) / sw)
                    let owEnd = Swift.min(ow, (w + pw - kw + sw - 1) / sw)  // exclusive
                    if owStart >= owEnd {
                        dstRow.update(repeating: 0, count: oh * ow)
                        continue
                    }
                    for y in 0..<oh {
                        let dst = dstRow + y * ow
                        let iy = y * sh - ph + kh
                        if iy < 0 || iy >= h {
                            dst.update(repeating: 0, count: ow)
                            continue
                        }
                        let src = plane + iy * w - pw + kw
                        if sw == 1 {
                            (dst + owStart).update(from: src + owStart, count: owEnd - owStart)
                        } else if sw == 2 {
                            // Eight outputs per vector: the even half of 16 inputs, while all 16
                            // lie inside this input row.
                            let rowEnd = plane + iy * w + w
                            var x = owStart
                            while x + 8 <= owEnd && src + 2 * x + 16 <= rowEnd {
                                let v = UnsafeRawPointer(src + 2 * x).loadUnaligned(as: SIMD16<Float>.self)
                                UnsafeMutableRawPointer(dst + x).storeBytes(of: v.evenHalf, as: SIMD8<Float>.self)
                                x += 8
                            }
                            while x < owEnd { dst[x] = src[x * 2]; x += 1 }
                        } else {
                            var x = owStart
                            while x < owEnd { dst[x] = src[x * sw]; x += 1 }
                        }
                    }
                    // Edge columns of the rows inside the input, column-outer (strided stores;
                    // a per-row zero fill of 1-2 floats would be one memset call per row).
                    for x in 0..<ow where x < owStart || x >= owEnd {
                        var y = 0
                        while y < oh {
                            let iy = y * sh - ph + kh
                            if iy >= 0 && iy < h { dstRow[y * ow + x] = 0 }
                            y += 1
                        }
                    }
                }
            }
        }
    }

    /// col2im (adjoint of `im2col`): `[C*KH*KW, OH*OW] => [C, H, W]`, ACCUMULATING
    /// `gradInput[c, iy, ix] += columns[row, col]` for every window position that read it.
    /// `ldColumns` as in `im2col`.
    public static func col2im(_ columns: UnsafePointer<Float>, ldColumns: Int, geometry g: WindowGeometry,
                              gradInput: UnsafeMutablePointer<Float>) {
        let oh = g.outputHeight, ow = g.outputWidth
        let h = g.height, w = g.width
        let sh = g.strideHeight, sw = g.strideWidth, ph = g.paddingHeight, pw = g.paddingWidth
        var row = 0
        for c in 0..<g.channels {
            let plane = gradInput + c * h * w
            for kh in 0..<g.kernelHeight {
                for kw in 0..<g.kernelWidth {
                    let srcRow = columns + row * ldColumns
                    row += 1
                    let owStart = Swift.max(0, (pw - kw + sw - 1) / sw)
                    let owEnd = Swift.min(ow, (w + pw - kw + sw - 1) / sw)
                    if owStart >= owEnd { continue }
                    for y in 0..<oh {
                        let iy = y * sh - ph + kh
                        if iy < 0 || iy >= h { continue }
                        let src = srcRow + y * ow
                        let dst = plane + iy * w - pw + kw
                        var x = owStart
                        if sw == 1 {
                            while x < owEnd { dst[x] += src[x]; x += 1 }
                        } else {
                            while x < owEnd { dst[x * sw] += src[x]; x += 1 }
                        }
                    }
                }
            }
        }
    }

    /// Batch-to-channel-major transpose: `[B, C, P] => [C, B*P]` (`dst[c, b*P + p] = src[b, c, p]`).
    /// Used by 1x1 convolutions (stride 1, no padding), whose im2col is this copy.
    public static func batchToChannelMajor(_ src: UnsafePointer<Float>, batch: Int, channels: Int,
                                           plane: Int, dst: UnsafeMutablePointer<Float>) {
        let ld = batch * plane
        for b in 0..<batch {
            for c in 0..<channels {
                (dst + c * ld + b * plane).update(from: src + (b * channels + c) * plane, count: plane)
            }
        }
    }

    /// Channel-major-to-batch transpose: `[C, B*P] => [B, C, P]`, `dst[b, c, p] (+)= src[c, b*P + p]`;
    /// accumulates when `accumulate` is true.
    public static func channelMajorToBatch(_ src: UnsafePointer<Float>, batch: Int, channels: Int,
                                           plane: Int, dst: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let ld = batch * plane
        for b in 0..<batch {
            for c in 0..<channels {
                let s = src + c * ld + b * plane
                let d = dst + (b * channels + c) * plane
                if accumulate {
                    for p in 0..<plane { d[p] += s[p] }
                } else {
                    d.update(from: s, count: plane)
                }
            }
        }
    }
}

// MARK: - Shifted-block fast path (stride 1, output width = input width)

extension Kernels {
    /// `true` when `g` has stride 1 in both directions and `OW == W` (kernel width
    /// `2 * padW + 1`, e.g. 3x3 with padding 1, 1x1 without padding): every im2col row is then
    /// the input plane shifted by `(kh - padH) * W + (kw - padW)` floats, with whole output rows
    /// outside the input and `|kw - padW|` edge columns per row set to 0.
    @inlinable
    public static func isShiftedBlockGeometry(_ g: WindowGeometry) -> Bool {
        g.strideHeight == 1 && g.strideWidth == 1 && g.outputWidth == g.width
    }

    /// im2col for ``isShiftedBlockGeometry(_:)`` geometries: same result as ``im2col(_:geometry:columns:ldColumns:)``
    /// (`[C, H, W] => [C*KH*KW, OH*OW]` with row stride `ldColumns`), but each row is one
    /// contiguous copy of the valid block plus a few zero stores instead of one copy per output
    /// row. Precondition: `isShiftedBlockGeometry(g)`.
    public static func im2colShifted(_ input: UnsafePointer<Float>, geometry g: WindowGeometry,
                                     columns: UnsafeMutablePointer<Float>, ldColumns: Int) {
        precondition(isShiftedBlockGeometry(g), "im2colShifted: geometry \(g) needs stride 1 and output width = input width")
        let oh = g.outputHeight, h = g.height, w = g.width
        let plane = oh * w
        var row = 0
        for c in 0..<g.channels {
            let src = input + c * h * w
            for kh in 0..<g.kernelHeight {
                let dy = kh - g.paddingHeight
                // Output rows y whose input row y + dy exists.
                let y0 = Swift.max(0, -dy), y1 = Swift.min(oh, h - dy)
                for kw in 0..<g.kernelWidth {
                    let dx = kw - g.paddingWidth
                    let dst = columns + row * ldColumns
                    row += 1
                    if y1 <= y0 || Swift.abs(dx) >= w {
                        dst.update(repeating: 0, count: plane)
                        continue
                    }
                    if y0 > 0 { dst.update(repeating: 0, count: y0 * w) }
                    if y1 < oh { (dst + y1 * w).update(repeating: 0, count: (oh - y1) * w) }
                    // dst[t] = src[t + dy*W + dx] over the valid block, read inside the plane.
                    let t0 = y0 * w + Swift.max(0, -dx), t1 = y1 * w - Swift.max(0, dx)
                    (dst + t0).update(from: src + (t0 + dy * w + dx), count: t1 - t0)
                    // The block copy wrapped neighbouring-row values into the edge columns.
                    zeroEdgeColumns(dst, width: w, rows: y0..<y1, dx: dx)
                }
            }
        }
    }

    /// col2im for ``isShiftedBlockGeometry(_:)`` geometries: `gradInput[c, iy, ix] (+)= sum of
    /// columns[row, col]` over every window position that read `(c, iy, ix)` (the adjoint of
    /// im2col, as ``col2im(_:ldColumns:geometry:gradInput:)``). With `accumulate == false`,
    /// `gradInput` is overwritten (its prior contents are never read), which saves zero-filling it.
    ///
    /// Each row is added as one contiguous shifted block. To make that exact, this CLOBBERS
    /// `columns`: the entries at padding positions (those no input element reads) are set to 0
    /// before the block add. Summation order per element: the centre tap first (when it covers
    /// the whole plane and `accumulate == false`), then the other taps in row order.
    /// Precondition: `isShiftedBlockGeometry(g)`.
    public static func col2imShifted(_ columns: UnsafeMutablePointer<Float>, ldColumns: Int, geometry g: WindowGeometry,
                                     gradInput: UnsafeMutablePointer<Float>, accumulate: Bool) {
        precondition(isShiftedBlockGeometry(g), "col2imShifted: geometry \(g) needs stride 1 and output width = input width")
        let oh = g.outputHeight, h = g.height, w = g.width
        let kH = g.kernelHeight, kW = g.kernelWidth, ph = g.paddingHeight, pw = g.paddingWidth
        // The centre tap (dy = 0, dx = 0) reads every input element exactly once when OH >= H.
        let centre = ph < kH && pw < kW && oh >= h ? ph * kW + pw : -1
        for c in 0..<g.channels {
            let dstPlane = gradInput + c * h * w
            let rowBase = c * kH * kW
            var skip = -1
            if !accumulate {
                if centre >= 0 {
                    dstPlane.update(from: columns + (rowBase + centre) * ldColumns, count: h * w)
                    skip = centre
                } else {
                    dstPlane.update(repeating: 0, count: h * w)
                }
            }
            for kh in 0..<kH {
                let dy = kh - ph
                let y0 = Swift.max(0, -dy), y1 = Swift.min(oh, h - dy)
                if y1 <= y0 { continue }
                for kw in 0..<kW where kh * kW + kw != skip {
                    let dx = kw - pw
                    if Swift.abs(dx) >= w { continue }
                    let s = columns + (rowBase + kh * kW + kw) * ldColumns
                    zeroEdgeColumns(s, width: w, rows: y0..<y1, dx: dx)
                    let t0 = y0 * w + Swift.max(0, -dx), t1 = y1 * w - Swift.max(0, dx)
                    addInPlace(t1 - t0, source: s + t0, destination: dstPlane + (t0 + dy * w + dx))
                }
            }
        }
    }

    /// Sets columns `0..<-dx` (dx < 0) or `W-dx..<W` (dx > 0) of `rows` of a `[*, W]` block to 0.
    /// Column-outer, row-inner (strided stores): a row-inner loop of 1-2 floats is turned into
    /// one memset call per row by the compiler.
    @inline(__always)
    static func zeroEdgeColumns(_ block: UnsafeMutablePointer<Float>, width w: Int, rows: Range<Int>, dx: Int) {
        let columns = dx < 0 ? 0..<(-dx) : (w - dx)..<w
        for x in columns {
            var q = block + rows.lowerBound * w + x
            for _ in rows { q.pointee = 0; q += w }
        }
    }

    /// `destination[i] += source[i]` for `i < n` (explicit 8-wide SIMD; the buffers must not
    /// overlap).
    @inlinable
    public static func addInPlace(_ n: Int, source: UnsafePointer<Float>, destination: UnsafeMutablePointer<Float>) {
        let s = UnsafeRawPointer(source), d = UnsafeMutableRawPointer(destination)
        var i = 0
        while i + 8 <= n {
            let a = d.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            let b = s.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            d.storeBytes(of: a + b, toByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        while i < n { destination[i] += source[i]; i += 1 }
    }
}
