extension Kernels {
    /// Max pooling forward over `planes` independent planes (N*C):
    /// `[planes, H, W] => output [planes, OH, OW]`, plus `argmax [planes, OH, OW]` holding the
    /// flat `iy*W + ix` index of the chosen input in its plane. PyTorch semantics: padding is
    /// -infinity (never chosen), ties take the first maximum in row-major window order, NaN wins.
    public static func maxPoolForward(_ input: UnsafePointer<Float>, planes: Int, geometry g: WindowGeometry,
                                      output: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<Int32>) {
        let oh = g.outputHeight, ow = g.outputWidth, h = g.height, w = g.width
        if g.kernelHeight == 2 && g.kernelWidth == 2 && g.strideHeight == 2 && g.strideWidth == 2
            && g.paddingHeight == 0 && g.paddingWidth == 0 {
            maxPool2x2Forward(input, planes: planes, height: h, width: w, outputHeight: oh, outputWidth: ow, output: output, argmax: argmax)
            return
        }
        maxPoolForwardGeneric(input, planes: planes, geometry: g, output: output, argmax: argmax)
    }

    /// Any window: the reference the 2x2 path must equal.
    static func maxPoolForwardGeneric(_ input: UnsafePointer<Float>, planes: Int, geometry g: WindowGeometry,
                                      output: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<Int32>) {
        let oh = g.outputHeight, ow = g.outputWidth, h = g.height, w = g.width
        for p in 0..<planes {
            let src = input + p * h * w
            let dst = output + p * oh * ow
            let arg = argmax + p * oh * ow
            for y in 0..<oh {
                let y0 = y * g.strideHeight - g.paddingHeight
                let yStart = Swift.max(y0, 0), yEnd = Swift.min(y0 + g.kernelHeight, h)
                for x in 0..<ow {
                    let x0 = x * g.strideWidth - g.paddingWidth
                    let xStart = Swift.max(x0, 0), xEnd = Swift.min(x0 + g.kernelWidth, w)
                    var best = -Float.infinity
                    var bestIndex = yStart * w + xStart
                    for iy in yStart..<yEnd {
                        for ix in xStart..<xEnd {
                            let v = src[iy * w + ix]
                            if v > best || v.isNaN { best = v; bestIndex = iy * w + ix; }
                        }
                    }
                    dst[y * ow + x] = best
                    arg[y * ow + x] = Int32(bestIndex)
                }
            }
        }
    }

    /// The 2x2, stride-2, unpadded case of ``maxPoolForward(_:planes:geometry:output:argmax:)``
    /// (every max-pool of cnn5 and the ResNets' stems are 3x3): the same scan of the window in
    /// row-major order with the same comparisons (first maximum wins, a NaN replaces the best),
    /// unrolled, so results and argmax are identical.
    static func maxPool2x2Forward(_ input: UnsafePointer<Float>, planes: Int, height h: Int, width w: Int, outputHeight oh: Int,
                                  outputWidth ow: Int, output: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<Int32>) {
        let below = Int32(truncatingIfNeeded: w)
        /// One step of the scan: `v` replaces the best when larger or NaN. Written as selects on
        /// a comparison mask so the compiler emits no data-dependent branch (the position of the
        /// maximum is random, and a mispredicted branch per element cost more than the work).
        @inline(__always) func step(_ best: inout Float, _ k: inout Int32, _ v: Float, _ index: Int32) {
            let take = v > best || v != v  // larger, or NaN
            best = take ? v : best
            k = take ? index : k
        }
        for p in 0..<planes {
            let src = input + p * h * w
            let dst = output + p * oh * ow
            let arg = argmax + p * oh * ow
            for y in 0..<oh {
                let r0 = src + 2 * y * w, r1 = r0 + w
                let rowBase = Int32(truncatingIfNeeded: 2 * y * w)
                let o = dst + y * ow, ao = arg + y * ow
                for x in 0..<ow {
                    var best = -Float.infinity, k: Int32 = 0
                    step(&best, &k, r0[2 &* x], 0)
                    step(&best, &k, r0[2 &* x &+ 1], 1)
                    step(&best, &k, r1[2 &* x], below)
                    step(&best, &k, r1[2 &* x &+ 1], below &+ 1)
                    o[x] = best
                    ao[x] = rowBase &+ Int32(truncatingIfNeeded: 2 &* x) &+ k
                }
            }
        }
    }

    /// Max pooling backward: `gradOutput [planes, OH, OW] => gradInput [planes, H, W]`,
    /// ACCUMULATING `gradInput[p, argmax[p, o]] += gradOutput[p, o]`.
    public static func maxPoolBackward(_ gradOutput: UnsafePointer<Float>, argmax: UnsafePointer<Int32>,
                                       planes: Int, geometry g: WindowGeometry,
                                       gradInput: UnsafeMutablePointer<Float>) {
        let outPlane = g.outputPlane, inPlane = g.inputPlane
        for p in 0..<planes {
            let go = gradOutput + p * outPlane
            let arg = argmax + p * outPlane
            let gi = gradInput + p * inPlane
            for o in 0..<outPlane { gi[Int(arg[o])] += go[o] }
        }
    }

    /// Average pooling forward: `[planes, H, W] => [planes, OH, OW]`, the sum over the window
    /// divided by `KH*KW` (PyTorch `AvgPool2d` defaults: `count_include_pad=True`,
    /// `ceil_mode=False`, so padded zeros count in the divisor).
    public static func avgPoolForward(_ input: UnsafePointer<Float>, planes: Int, geometry g: WindowGeometry,
                                      output: UnsafeMutablePointer<Float>) {
        let oh = g.outputHeight, ow = g.outputWidth, h = g.height, w = g.width
        let scale = 1 / Float(g.kernelHeight * g.kernelWidth)
        for p in 0..<planes {
            let src = input + p * h * w
            let dst = output + p * oh * ow
            for y in 0..<oh {
                let y0 = y * g.strideHeight - g.paddingHeight
                let yStart = Swift.max(y0, 0), yEnd = Swift.min(y0 + g.kernelHeight, h)
                for x in 0..<ow {
                    let x0 = x * g.strideWidth - g.paddingWidth
                    let xStart = Swift.max(x0, 0), xEnd = Swift.min(x0 + g.kernelWidth, w)
                    var s: Float = 0
                    for iy in yStart..<yEnd { for ix in xStart..<xEnd { s += src[iy * w + ix] } }
                    dst[y * ow + x] = s * scale
                }
            }
        }
    }

    /// Average pooling backward: `gradOutput [planes, OH, OW] => gradInput [planes, H, W]`,
    /// ACCUMULATING `gradOutput / (KH*KW)` into every in-bounds input of each window.
    public static func avgPoolBackward(_ gradOutput: UnsafePointer<Float>, planes: Int, geometry g: WindowGeometry,
                                       gradInput: UnsafeMutablePointer<Float>) {
        let oh = g.outputHeight, ow = g.outputWidth, h = g.height, w = g.width
        let scale = 1 / Float(g.kernelHeight * g.kernelWidth)
        for p in 0..<planes {
            let go = gradOutput + p * oh * ow
            let gi = gradInput + p * h * w
            for y in 0..<oh {
                let y0 = y * g.strideHeight - g.paddingHeight
                let yStart = Swift.max(y0, 0), yEnd = Swift.min(y0 + g.kernelHeight, h)
                for x in 0..<ow {
                    let x0 = x * g.strideWidth - g.paddingWidth
                    let xStart = Swift.max(x0, 0), xEnd = Swift.min(x0 + g.kernelWidth, w)
                    let v = go[y * ow + x] * scale
                    for iy in yStart..<yEnd { for ix in xStart..<xEnd { gi[iy * w + ix] += v } }
                }
            }
        }
    }

    /// Global average pooling: `[planes, P] => [planes]`, `out[p] = mean of the P values`
    /// (Double accumulation).
    public static func globalAvgPoolForward(_ input: UnsafePointer<Float>, planes: Int, plane: Int,
                                            output: UnsafeMutablePointer<Float>) {
        let inv = 1 / Double(plane)
        for p in 0..<planes { output[p] = Float(sum(plane, input + p * plane) * inv) }
    }

    /// Global average pooling backward: `[planes] => [planes, P]`, ACCUMULATING
    /// `gradInput[p, i] += gradOutput[p] / P`.
    public static func globalAvgPoolBackward(_ gradOutput: UnsafePointer<Float>, planes: Int, plane: Int,
                                             gradInput: UnsafeMutablePointer<Float>) {
        let inv = 1 / Float(plane)
        for p in 0..<planes {
            let v = gradOutput[p] * inv
            let gi = gradInput + p * plane
            for i in 0..<plane { gi[i] += v }
        }
    }
}
