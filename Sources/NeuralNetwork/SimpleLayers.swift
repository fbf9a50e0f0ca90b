import TensorCore

/// `max(x, 0)` elementwise, any shape (PyTorch `nn.ReLU`; gradient 0 at x = 0).
public final class ReLU: Layer {
    private var output: Tensor?
    public init() {}

    public func forward(_ x: Tensor, context: ForwardContext) -> Tensor {
        var y = Tensor(uninitialized: x.shape)
        let n = x.count
        x.withUnsafeBufferPointer { xb in
            y.withUnsafeMutableBufferPointer { yb in
                if n > 0 { Kernels.reluForward(n, x: xb.baseAddress!, out: yb.baseAddress!) }
            }
        }
        output = y
        return y
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        guard let y = output else { preconditionFailure("ReLU.backward called without a forward") }
        precondition(gradOutput.shape == y.shape, "ReLU.backward: gradOutput \(gradOutput.shape) != \(y.shape)")
        var gx = Tensor(uninitialized: y.shape)
        let n = y.count
        if n == 0 { return gx }
        y.withUnsafeBufferPointer { yb in
            gradOutput.withUnsafeBufferPointer { gb in
                gx.withUnsafeMutableBufferPointer { ob in
                    Kernels.reluBackward(n, output: yb.baseAddress!, gradOutput: gb.baseAddress!, gradInput: ob.baseAddress!)
                }
            }
        }
        return gx
    }
}

/// Square-or-rectangular window pooling geometry shared by the pooling layers.
public struct PoolingWindow: Sendable {
    public let kernel: (height: Int, width: Int)
    public let stride: (height: Int, width: Int)
    public let padding: (height: Int, width: Int)
    /// PyTorch default: stride = kernel size.
    public init(kernelSize: Int, stride: Int? = nil, padding: Int = 0) {
        kernel = (kernelSize, kernelSize)
        self.stride = (stride ?? kernelSize, stride ?? kernelSize)
        self.padding = (padding, padding)
    }
    public init(kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int)) {
        self.kernel = (kernel.0, kernel.1)
        self.stride = (stride.0, stride.1)
        self.padding = (padding.0, padding.1)
    }
    func geometry(_ h: Int, _ w: Int) -> WindowGeometry {
        WindowGeometry(channels: 1, height: h, width: w, kernelHeight: kernel.height, kernelWidth: kernel.width,
                       strideHeight: stride.height, strideWidth: stride.width,
                       paddingHeight: padding.height, paddingWidth: padding.width)
    }
}

/// Max pooling with PyTorch `nn.MaxPool2d` semantics (floor mode, padding = -inf, first max
/// wins ties): `[N, C, H, W] => [N, C, OH, OW]`.
public final class MaxPool2d: Layer {
    public let window: PoolingWindow
    private var inputShape: [Int] = []
    private var argmax: [Int32] = []

    public init(kernelSize: Int, stride: Int? = nil, padding: Int = 0) {
        window = PoolingWindow(kernelSize: kernelSize, stride: stride, padding: padding)
    }
    public init(window: PoolingWindow) { self.window = window }

    public func forward(_ x: Tensor, context: ForwardContext) -> Tensor {
        let (n, c, h, w) = expectRank4(x, "MaxPool2d")
        let g = window.geometry(h, w)
        inputShape = x.shape
        var y = Tensor(uninitialized: [n, c, g.outputHeight, g.outputWidth])  // every element written by the kernel
        let count = y.count
        argmax = [Int32](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }  // likewise
        if y.count == 0 { return y }
        x.withUnsafeBufferPointer { xb in
            y.withUnsafeMutableBufferPointer { yb in
                argmax.withUnsafeMutableBufferPointer { ab in
                    Kernels.maxPoolForward(xb.baseAddress!, planes: n * c, geometry: g, output: yb.baseAddress!,
                                           argmax: ab.baseAddress!)
                }
            }
        }
        return y
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        precondition(!inputShape.isEmpty, "MaxPool2d.backward called without a forward")
        let g = window.geometry(inputShape[2], inputShape[3])
        let planes = inputShape[0] * inputShape[1]
        precondition(gradOutput.shape == [inputShape[0], inputShape[1], g.outputHeight, g.outputWidth],
                     "MaxPool2d.backward: gradOutput \(gradOutput.shape) does not match input \(inputShape)")
        var gx = Tensor(zeros: inputShape)
        if gradOutput.count == 0 { return gx }
        gradOutput.withUnsafeBufferPointer { gb in
            argmax.withUnsafeBufferPointer { ab in
                gx.withUnsafeMutableBufferPointer { ob in
                    Kernels.maxPoolBackward(gb.baseAddress!, argmax: ab.baseAddress!, planes: planes, geometry: g,
                                            gradInput: ob.baseAddress!)
                }
            }
        }
        return gx
    }
}

/// Average pooling with PyTorch `nn.AvgPool2d` defaults (`count_include_pad=True`, floor mode):
/// `[N, C, H, W] => [N, C, OH, OW]`.
public final class AvgPool2d: Layer {
    public let window: PoolingWindow
    private var inputShape: [Int] = []

    public init(kernelSize: Int, stride: Int? = nil, padding: Int = 0) {
        window = PoolingWindow(kernelSize: kernelSize, stride: stride, padding: padding)
    }
    public init(window: PoolingWindow) { self.window = window }

    public func forward(_ x: Tensor, context: ForwardContext) -> Tensor {
        let (n, c, h, w) = expectRank4(x, "AvgPool2d")
        let g = window.geometry(h, w)
        inputShape = x.shape
        var y = Tensor(zeros: [n, c, g.outputHeight, g.outputWidth])
        if y.count == 0 { return y }
        x.withUnsafeBufferPointer { xb in
            y.withUnsafeMutableBufferPointer { yb in
                Kernels.avgPoolForward(xb.baseAddress!, planes: n * c, geometry: g, output: yb.baseAddress!)
            }
        }
        return y
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        precondition(!inputShape.isEmpty, "AvgPool2d.backward called without a forward")
        let g = window.geometry(inputShape[2], inputShape[3])
        precondition(gradOutput.shape == [inputShape[0], inputShape[1], g.outputHeight, g.outputWidth],
                     "AvgPool2d.backward: gradOutput \(gradOutput.shape) does not match input \(inputShape)")
        var gx = Tensor(zeros: inputShape)
        if gradOutput.count == 0 { return gx }
        gradOutput.withUnsafeBufferPointer { gb in
            gx.withUnsafeMutableBufferPointer { ob in
                Kernels.avgPoolBackward(gb.baseAddress!, planes: inputShape[0] * inputShape[1], geometry: g,
                                        gradInput: ob.baseAddress!)
            }
        }
        return gx
    }
}

/// Global average pooling, `[N, C, H, W] => [N, C]` (PyTorch `AdaptiveAvgPool2d(1)` followed
/// by `flatten(1)`).
public final class GlobalAvgPool2d: Layer {
    private var inputShape: [Int] = []
    public init() {}

    public func forward(_ x: Tensor, context: ForwardContext) -> Tensor {
        let (n, c, h, w) = expectRank4(x, "GlobalAvgPool2d")
        precondition(h * w > 0, "GlobalAvgPool2d: empty plane in input \(x.shape)")
        inputShape = x.shape
        var y = Tensor(zeros: [n, c])
        if n == 0 { return y }
        x.withUnsafeBufferPointer { xb in
            y.withUnsafeMutableBufferPointer { yb in
                Kernels.globalAvgPoolForward(xb.baseAddress!, planes: n * c, plane: h * w, output: yb.baseAddress!)
            }
        }
        return y
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        precondition(!inputShape.isEmpty, "GlobalAvgPool2d.backward called without a forward")
        let (n, c) = (inputShape[0], inputShape[1])
        precondition(gradOutput.count == n * c, "GlobalAvgPool2d.backward: gradOutput \(gradOutput.shape) != [\(n), \(c)]")
        var gx = Tensor(zeros: inputShape)
        if n == 0 { return gx }
        gradOutput.withUnsafeBufferPointer { gb in
            gx.withUnsafeMutableBufferPointer { ob in
                Kernels.globalAvgPoolBackward(gb.baseAddress!, planes: n * c, plane: inputShape[2] * inputShape[3],
                                              gradInput: ob.baseAddress!)
            }
        }
        return gx
    }
}

/// `[N, d1, d2, ...] => [N, d1*d2*...]` (PyTorch `nn.Flatten()`); shares storage.
public final class Flatten: Layer {
    private var inputShape: [Int] = []
    public init() {}

    public func forward(_ x: Tensor, context: ForwardContext) -> Tensor {
        precondition(x.rank >= 1, "Flatten: input needs a batch dimension, got \(x.shape)")
        inputShape = x.shape
        let n = x.shape[0]
        return x.reshaped([n, x.shape.dropFirst().reduce(1, *)])
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        precondition(gradOutput.count == Tensor.elementCount(inputShape),
                     "Flatten.backward: gradOutput \(gradOutput.shape) vs input \(inputShape)")
        return gradOutput.reshaped(inputShape)
    }
}

/// Inverted dropout (PyTorch `nn.Dropout`): in training, each element is kept with
/// probability `1 - p` and scaled by `1 / (1 - p)`; identity in eval.
///
/// The mask of batch row `i` is drawn from `RandomStream(seed: context.seed,
/// stream: [epoch, sampleIDs[i], layerIndex])`, so it depends only on the global sample id,
/// not on how samples are split across ranks or batches. Training mode therefore requires
/// `context.sampleIDs` (one per row).
public final class Dropout: Layer {
    public let p: Float
    /// Distinguishes dropout layers in the random key.
    public let layerIndex: UInt64
    private var mask: Tensor?

    public init(p: Float, layerIndex: UInt64) {
        precondition(p >= 0 && p < 1, "Dropout: p = \(p) must be in [0, 1)")
        self.p = p
        self.layerIndex = layerIndex
    }

    public func forward(_ x: Tensor, context: ForwardContext) -> Tensor {
        guard context.mode == .train, p > 0 else { mask = nil; return x }
        precondition(x.rank >= 1, "Dropout: input needs a batch dimension, got \(x.shape)")
        let n = x.shape[0]
        guard let ids = context.sampleIDs, ids.count == n else {
            preconditionFailure("Dropout (training): context.sampleIDs must hold \(n) global sample ids for input \(x.shape), got \(context.sampleIDs?.count ?? 0)")
        }
        let per = n == 0 ? 0 : x.count / n
        var m = Tensor(uninitialized: x.shape)  // every row filled below
        let keepScale = 1 / (1 - p)
        let drop = p
        m.withUnsafeMutableBufferPointer { mb in
            for i in 0..<n {
                var rng = RandomStream(seed: context.seed,
                                       stream: [UInt64(bitPattern: Int64(context.epoch)), UInt64(bitPattern: ids[i]), layerIndex])
                let row = mb.baseAddress! + i * per
                rng.fillUniform(row, count: per, low: 0, high: 1)
                Dropout.threshold(row, count: per, p: drop, keepScale: keepScale)
            }
        }
        mask = m
        return multiply(x, m)
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        guard let m = mask else { return gradOutput }
        precondition(gradOutput.shape == m.shape, "Dropout.backward: gradOutput \(gradOutput.shape) != \(m.shape)")
        return multiply(gradOutput, m)
    }

    /// `u[j] = u[j] < p ? 0 : keepScale` (branch-free).
    static func threshold(_ u: UnsafeMutablePointer<Float>, count: Int, p: Float, keepScale: Float) {
        let pv = SIMD8<Float>(repeating: p), kv = SIMD8<Float>(repeating: keepScale), zero = SIMD8<Float>(repeating: 0)
        let raw = UnsafeMutableRawPointer(u)
        var j = 0
        while j + 8 <= count {
            let v = raw.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self)
            raw.storeBytes(of: kv.replacing(with: zero, where: v .< pv), toByteOffset: j * 4, as: SIMD8<Float>.self)
            j += 8
        }
        while j < count { u[j] = u[j] < p ? 0 : keepScale; j += 1 }
    }

    private func multiply(_ a: Tensor, _ b: Tensor) -> Tensor {
        var out = Tensor(uninitialized: a.shape)
        let n = a.count
        a.withUnsafeBufferPointer { ab in
            b.withUnsafeBufferPointer { bb in
                out.withUnsafeMutableBufferPointer { ob in for i in 0..<n { ob[i] = ab[i] * bb[i] } }
            }
        }
        return out
    }
}

/// ResNet option-A shortcut (He et al. 2016, CIFAR): subsample by `stride` and zero-pad the
/// channels evenly, `x [N, C, H, W] => [N, outChannels, ceil(H/s), ceil(W/s)]` with
/// `y[n, pad + c, i, j] = x[n, c, i*s, j*s]`, `pad = (outChannels - C) / 2` (PyTorch:
/// `F.pad(x[:, :, ::s, ::s], (0, 0, 0, 0, pad, pad))`). No parameters.
public final class ChannelPadShortcut: Layer {
    public let outChannels: Int
    public let stride: Int
    private var inputShape: [Int] = []

    public init(outChannels: Int, stride: Int) {
        precondition(outChannels > 0 && stride > 0, "ChannelPadShortcut: outChannels \(outChannels), stride \(stride)")
        self.outChannels = outChannels
        self.stride = stride
    }

    public func forward(_ x: Tensor, context: ForwardContext) -> Tensor {
        let (n, c, h, w) = expectRank4(x, "ChannelPadShortcut")
        precondition(outChannels >= c && (outChannels - c) % 2 == 0,
                     "ChannelPadShortcut: cannot pad \(c) channels evenly to \(outChannels) (input \(x.shape))")
        inputShape = x.shape
        let oh = (h + stride - 1) / stride, ow = (w + stride - 1) / stride, pad = (outChannels - c) / 2
        var y = Tensor(zeros: [n, outChannels, oh, ow])
        x.withUnsafeBufferPointer { xb in
            y.withUnsafeMutableBufferPointer { yb in
                for s in 0..<n { for ch in 0..<c {
                    let src = xb.baseAddress! + (s * c + ch) * h * w
                    let dst = yb.baseAddress! + (s * outChannels + pad + ch) * oh * ow
                    for i in 0..<oh { for j in 0..<ow { dst[i * ow + j] = src[i * stride * w + j * stride] } }
                } }
            }
        }
        return y
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        precondition(!inputShape.isEmpty, "ChannelPadShortcut.backward called without a forward")
        let (n, c, h, w) = (inputShape[0], inputShape[1], inputShape[2], inputShape[3])
        let oh = (h + stride - 1) / stride, ow = (w + stride - 1) / stride, pad = (outChannels - c) / 2
        precondition(gradOutput.shape == [n, outChannels, oh, ow],
                     "ChannelPadShortcut.backward: gradOutput \(gradOutput.shape) != [\(n), \(outChannels), \(oh), \(ow)]")
        var gx = Tensor(zeros: inputShape)
        gradOutput.withUnsafeBufferPointer { gb in
            gx.withUnsafeMutableBufferPointer { ob in
                for s in 0..<n { for ch in 0..<c {
                    let src = gb.baseAddress! + (s * outChannels + pad + ch) * oh * ow
                    let dst = ob.baseAddress! + (s * c + ch) * h * w
                    for i in 0..<oh { for j in 0..<ow { dst[i * stride * w + j * stride] = src[i * ow + j] } }
                } }
            }
        }
        return gx
    }
}
