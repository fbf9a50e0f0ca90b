import TensorCore

/// Reference ("naive twin") implementations written straight from the definitions, with
/// Double accumulation and plain loops. Slow; for tests only.
public enum NaiveKernels {
    /// `C[M, N] = A[M, K] * B[K, N]` (row-major arrays).
    public static func matmul(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k { s += Double(a[i * k + p]) * Double(b[p * n + j]) }
                c[i * n + j] = Float(s)
            }
        }
        return c
    }

    /// Direct convolution (PyTorch `conv2d`, cross-correlation):
    /// `x [N, C, H, W], weight [O, C, KH, KW], bias [O]? => [N, O, OH, OW]`,
    /// `y[n,o,i,j] = b[o] + sum_{c,kh,kw} w[o,c,kh,kw] * x[n, c, i*s - p + kh, j*s - p + kw]`.
    public static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: (Int, Int),
                              padding: (Int, Int)) -> Tensor {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (o, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        let oh = (h + 2 * padding.0 - kh) / stride.0 + 1
        let ow = (w + 2 * padding.1 - kw) / stride.1 + 1
        let xs = x.scalars, ws = weight.scalars, bs = bias?.scalars
        var y = [Float](repeating: 0, count: n * o * oh * ow)
        for b in 0..<n { for oc in 0..<o { for i in 0..<oh { for j in 0..<ow {
            var s = Double(bs?[oc] ?? 0)
            for ic in 0..<c { for u in 0..<kh { for v in 0..<kw {
                let iy = i * stride.0 - padding.0 + u, ix = j * stride.1 - padding.1 + v
                if iy < 0 || iy >= h || ix < 0 || ix >= w { continue }
                s += Double(ws[((oc * c + ic) * kh + u) * kw + v]) * Double(xs[((b * c + ic) * h + iy) * w + ix])
            } } }
            y[((b * o + oc) * oh + i) * ow + j] = Float(s)
        } } } }
        return Tensor(shape: [n, o, oh, ow], values: y)
    }

    /// Adjoints of `conv2d` for an output gradient `gy [N, O, OH, OW]`:
    /// `gradInput [N, C, H, W]`, `gradWeight [O, C, KH, KW]`, `gradBias [O]`.
    public static func conv2dBackward(_ x: Tensor, weight: Tensor, gradOutput gy: Tensor, stride: (Int, Int),
                                      padding: (Int, Int)) -> (gradInput: Tensor, gradWeight: Tensor, gradBias: Tensor) {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (o, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        let (oh, ow) = (gy.shape[2], gy.shape[3])
        let xs = x.scalars, ws = weight.scalars, gs = gy.scalars
        var gx = [Double](repeating: 0, count: x.count)
        var gw = [Double](repeating: 0, count: weight.count)
        var gb = [Double](repeating: 0, count: o)
        for b in 0..<n { for oc in 0..<o { for i in 0..<oh { for j in 0..<ow {
            let g = Double(gs[((b * o + oc) * oh + i) * ow + j])
            gb[oc] += g
            for ic in 0..<c { for u in 0..<kh { for v in 0..<kw {
                let iy = i * stride.0 - padding.0 + u, ix = j * stride.1 - padding.1 + v
                if iy < 0 || iy >= h || ix < 0 || ix >= w { continue }
                let xi = ((b * c + ic) * h + iy) * w + ix, wi = ((oc * c + ic) * kh + u) * kw + v
                gx[xi] += g * Double(ws[wi])
                gw[wi] += g * Double(xs[xi])
            } } }
        } } } }
        return (Tensor(shape: x.shape, values: gx.map { Float($0) }),
                Tensor(shape: weight.shape, values: gw.map { Float($0) }),
                Tensor(shape: [o], values: gb.map { Float($0) }))
    }

    /// Max pooling `[N, C, H, W] => [N, C, OH, OW]` (padding = -inf) and its backward for `gy`,
    /// routing each output gradient to the first maximum of its window (row-major order).
    public static func maxPool2d(_ x: Tensor, kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int),
                                 gradOutput gy: Tensor?) -> (output: Tensor, gradInput: Tensor?) {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let oh = (h + 2 * padding.0 - kernel.0) / stride.0 + 1
        let ow = (w + 2 * padding.1 - kernel.1) / stride.1 + 1
        let xs = x.scalars
        let gs = gy?.scalars
        var y = [Float](repeating: 0, count: n * c * oh * ow)
        var gx = [Float](repeating: 0, count: x.count)
        for p in 0..<(n * c) { for i in 0..<oh { for j in 0..<ow {
            var best = -Float.infinity, bestAt = -1
            for u in 0..<kernel.0 { for v in 0..<kernel.1 {
                let iy = i * stride.0 - padding.0 + u, ix = j * stride.1 - padding.1 + v
                if iy < 0 || iy >= h || ix < 0 || ix >= w { continue }
                let at = (p * h + iy) * w + ix
                if xs[at] > best { best = xs[at]; bestAt = at }
            } }
            let oi = (p * oh + i) * ow + j
            y[oi] = best
            if let gs, bestAt >= 0 { gx[bestAt] += gs[oi] }
        } } }
        return (Tensor(shape: [n, c, oh, ow], values: y), gy == nil ? nil : Tensor(shape: x.shape, values: gx))
    }

    /// Average pooling (count_include_pad) `[N, C, H, W] => [N, C, OH, OW]` and its backward.
    public static func avgPool2d(_ x: Tensor, kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int),
                                 gradOutput gy: Tensor?) -> (output: Tensor, gradInput: Tensor?) {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let oh = (h + 2 * padding.0 - kernel.0) / stride.0 + 1
        let ow = (w + 2 * padding.1 - kernel.1) / stride.1 + 1
        let xs = x.scalars
        let gs = gy?.scalars
        let area = Double(kernel.0 * kernel.1)
        var y = [Float](repeating: 0, count: n * c * oh * ow)
        var gx = [Double](repeating: 0, count: x.count)
        for p in 0..<(n * c) { for i in 0..<oh { for j in 0..<ow {
            var s = 0.0
            let oi = (p * oh + i) * ow + j
            for u in 0..<kernel.0 { for v in 0..<kernel.1 {
                let iy = i * stride.0 - padding.0 + u, ix = j * stride.1 - padding.1 + v
                if iy < 0 || iy >= h || ix < 0 || ix >= w { continue }
                s += Double(xs[(p * h + iy) * w + ix])
                if let gs { gx[(p * h + iy) * w + ix] += Double(gs[oi]) / area }
            } }
            y[oi] = Float(s / area)
        } } }
        return (Tensor(shape: [n, c, oh, ow], values: y),
                gy == nil ? nil : Tensor(shape: x.shape, values: gx.map { Float($0) }))
    }
}
