import TensorCore
import Dispatch

/// Layers applied in order (PyTorch `nn.Sequential`). Children are named `"0"`, `"1"`, ...
/// unless explicit names are given. Backward runs the children in reverse order.
///
/// `recordedIndices`: outputs of these children are kept in `recordedOutputs` after each
/// forward (intermediate feature maps, e.g. for Mahalanobis scores).
public final class Sequential: Layer {
    public let layers: [any Layer]
    public let names: [String]
    public var recordedIndices: Set<Int> = []
    public private(set) var recordedOutputs: [Int: Tensor] = [:]

    public init(_ layers: [any Layer]) {
        self.layers = layers
        names = layers.indices.map(String.init)
    }

    /// Children with explicit names (e.g. `("conv1", conv)`). Precondition: names are unique.
    public init(named: [(String, any Layer)]) {
        layers = named.map(\.1)
        names = named.map(\.0)
        precondition(Set(names).count == names.count, "Sequential: duplicate child names \(names)")
    }

    public var children: [(name: String, layer: any Layer)] { zip(names, layers).map { ($0, $1) } }

    public func forward(_ x: Tensor, context: ForwardContext) -> Tensor {
        recordedOutputs = [:]
        var h = x
        for (i, layer) in layers.enumerated() {
            if let timing = LayerEvents.observer {
                let t0 = DispatchTime.now().uptimeNanoseconds
                h = layer.forward(h, context: context)
                timing("\(names[i]) \(type(of: layer))", false, t0, DispatchTime.now().uptimeNanoseconds)
            } else {
                h = layer.forward(h, context: context)
            }
            if recordedIndices.contains(i) { recordedOutputs[i] = h }
        }
        return h
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        var g = gradOutput
        for i in layers.indices.reversed() {
            let layer = layers[i]
            if let timing = LayerEvents.observer {
                let t0 = DispatchTime.now().uptimeNanoseconds
                g = layer.backward(g)
                timing("\(names[i]) \(type(of: layer))", true, t0, DispatchTime.now().uptimeNanoseconds)
            } else {
                g = layer.backward(g)
            }
            BackwardProgress.observer?(layer)
        }
        return g
    }
}

/// Per-layer timing for the training timeline (`train.trace`): when set, every child of a
/// ``Sequential`` reports `(name, backward?, start, end)` in `DispatchTime` nanoseconds after
/// its forward or backward (nested containers report their children too). Set by the trainer
/// around traced steps only.
public enum LayerEvents {
    nonisolated(unsafe) public static var observer: ((String, Bool, UInt64, UInt64) -> Void)?
}

/// Lets the trainer act while backward runs (launching a gradient bucket's allreduce as soon as
/// its last gradient exists): when set, `observer(layer)` is called after each child of a
/// ``Sequential`` and the head of a ``Classifier`` has finished its backward, so the
/// gradients of that layer's parameters are final. Only the training thread runs backward; the
/// trainer sets the observer around one backward call and clears it after.
public enum BackwardProgress {
    nonisolated(unsafe) public static var observer: ((any Layer) -> Void)?
}

/// Residual connection: `y = activation(body(x) + shortcut(x))`, shortcut = identity when nil
/// (ResNet basic block). `x [N, C, H, W]`; body and shortcut outputs must have equal shapes.
/// The body's children are this block's children (names like `conv1.weight`, as in PyTorch's
/// `BasicBlock`); the shortcut is named `shortcutName` (default `"shortcut"`).
public final class Residual: Layer {
    public let body: Sequential
    public let shortcut: (any Layer)?
    public let shortcutName: String
    public let activation: ReLU?

    public init(body: Sequential, shortcut: (any Layer)? = nil, shortcutName: String = "shortcut",
                reluAfterAdd: Bool = true) {
        self.body = body
        self.shortcut = shortcut
        self.shortcutName = shortcutName
        activation = reluAfterAdd ? ReLU() : nil
    }

    public var children: [(name: String, layer: any Layer)] {
        body.children + (shortcut.map { [(name: shortcutName, layer: $0)] } ?? [])
    }

    public func forward(_ x: Tensor, context: ForwardContext) -> Tensor {
        let main = body.forward(x, context: context)
        let side = shortcut?.forward(x, context: context) ?? x
        precondition(main.shape == side.shape, "Residual: body output \(main.shape) != shortcut output \(side.shape)")
        let sum = main + side
        return activation?.forward(sum, context: context) ?? sum
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        let g = activation?.backward(gradOutput) ?? gradOutput
        var gx = body.backward(g)
        if let shortcut {
            gx.addScaled(shortcut.backward(g))
        } else {
            gx.addScaled(g)
        }
        return gx
    }
}

/// Dense connection (DenseNet): `y = cat([x, body(x)], dim: 1)`,
/// `x [N, C, H, W] => [N, C + C', H, W]` where `body(x)` is `[N, C', H, W]`.
/// Backward: `gx = gy[:, :C] + body.backward(gy[:, C:])`. The body's children are this
/// block's children.
public final class DenseConcat: Layer {
    public let body: Sequential
    private var inputShape: [Int] = []
    private var bodyChannels = 0

    public init(body: Sequential) { self.body = body }

    public var children: [(name: String, layer: any Layer)] { body.children }

    public func forward(_ x: Tensor, context: ForwardContext) -> Tensor {
        let (n, _, h, w) = expectRank4(x, "DenseConcat")
        let out = body.forward(x, context: context)
        precondition(out.rank == 4 && out.shape[0] == n && out.shape[2] == h && out.shape[3] == w,
                     "DenseConcat: body output \(out.shape) does not match input \(x.shape) in N, H, W")
        inputShape = x.shape
        bodyChannels = out.shape[1]
        return Tensor.concatenateChannels(x, out)
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        let (n, c, h, w) = (inputShape[0], inputShape[1], inputShape[2], inputShape[3])
        precondition(gradOutput.shape == [n, c + bodyChannels, h, w],
                     "DenseConcat.backward: gradOutput \(gradOutput.shape) != [\(n), \(c + bodyChannels), \(h), \(w)]")
        // Body part: a copy of channels C..<C+C'; identity part: added straight from gradOutput.
        var gBody = Tensor(uninitialized: [n, bodyChannels, h, w])
        let p = h * w, total = c + bodyChannels
        gradOutput.withUnsafeBufferPointer { gb in
            gBody.withUnsafeMutableBufferPointer { bb in
                for s in 0..<n where bodyChannels * p > 0 {
                    (bb.baseAddress! + s * bodyChannels * p).update(from: gb.baseAddress! + (s * total + c) * p,
                                                                    count: bodyChannels * p)
                }
            }
        }
        var gx = body.backward(gBody)
        precondition(gx.shape == inputShape, "DenseConcat.backward: body returned \(gx.shape), input was \(inputShape)")
        gradOutput.withUnsafeBufferPointer { gb in
            gx.withUnsafeMutableBufferPointer { xb in
                for s in 0..<n where c * p > 0 {
                    Kernels.axpy(c * p, alpha: 1, x: gb.baseAddress! + s * total * p, y: xb.baseAddress! + s * c * p)
                }
            }
        }
        return gx
    }
}

extension Tensor {
    /// Channel concatenation: `[N, C1, H, W] ++ [N, C2, H, W] => [N, C1 + C2, H, W]`.
    public static func concatenateChannels(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.rank == 4 && b.rank == 4 && a.shape[0] == b.shape[0] && a.shape[2] == b.shape[2]
                     && a.shape[3] == b.shape[3], "concatenateChannels: \(a.shape) and \(b.shape) differ outside dim 1")
        let (n, c1, c2) = (a.shape[0], a.shape[1], b.shape[1])
        let p = a.shape[2] * a.shape[3]
        var out = Tensor(uninitialized: [n, c1 + c2, a.shape[2], a.shape[3]])  // both parts copied
        a.withUnsafeBufferPointer { ab in
            b.withUnsafeBufferPointer { bb in
                out.withUnsafeMutableBufferPointer { ob in
                    for s in 0..<n {
                        let dst = ob.baseAddress! + s * (c1 + c2) * p
                        if c1 * p > 0 { dst.update(from: ab.baseAddress! + s * c1 * p, count: c1 * p) }
                        if c2 * p > 0 { (dst + c1 * p).update(from: bb.baseAddress! + s * c2 * p, count: c2 * p) }
                    }
                }
            }
        }
        return out
    }

    /// Inverse of `concatenateChannels`: `[N, C, H, W] => ([N, c, H, W], [N, C - c, H, W])`.
    public static func splitChannels(_ x: Tensor, at c1: Int) -> (Tensor, Tensor) {
        precondition(x.rank == 4 && c1 >= 0 && c1 <= x.shape[1], "splitChannels: cannot split \(x.shape) at \(c1)")
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let c2 = c - c1, p = h * w
        var a = Tensor(uninitialized: [n, c1, h, w]), b = Tensor(uninitialized: [n, c2, h, w])
        x.withUnsafeBufferPointer { xb in
            a.withUnsafeMutableBufferPointer { ab in
                b.withUnsafeMutableBufferPointer { bb in
                    for s in 0..<n {
                        let src = xb.baseAddress! + s * c * p
                        if c1 * p > 0 { (ab.baseAddress! + s * c1 * p).update(from: src, count: c1 * p) }
                        if c2 * p > 0 { (bb.baseAddress! + s * c2 * p).update(from: src + c1 * p, count: c2 * p) }
                    }
                }
            }
        }
        return (a, b)
    }
}

/// Pre-activation wide residual block (Zagoruyko & Komodakis 2016, as in the OOD reference
/// `WideResNet` code): `a = relu1(bn1(x))`,
/// `y = conv2(dropout(relu2(bn2(conv1(a))))) + (inChannels == outChannels ? x : convShortcut(a))`.
/// `x [N, Cin, H, W] => [N, Cout, H/stride, W/stride]`. Children: `bn1`, `relu1`, `conv1`,
/// `bn2`, `relu2`, [`dropout`], `conv2`, [`convShortcut` (1x1, stride, no bias)].
public final class WideBasicBlock: Layer {
    public let bn1: BatchNorm2d
    public let relu1 = ReLU()
    public let conv1: Conv2d
    public let bn2: BatchNorm2d
    public let relu2 = ReLU()
    public let dropout: Dropout?
    public let conv2: Conv2d
    public let convShortcut: Conv2d?

    /// `rng` draws the conv initialisation (PyTorch default; models may re-initialise).
    public init(inChannels: Int, outChannels: Int, stride: Int, dropRate: Float, dropoutLayerIndex: UInt64,
                affineBatchNorm: Bool = true, rng: inout RandomStream) {
        bn1 = BatchNorm2d(numFeatures: inChannels, affine: affineBatchNorm)
        conv1 = Conv2d(inChannels: inChannels, outChannels: outChannels, kernelSize: 3, stride: stride, padding: 1,
                       bias: false, rng: &rng)
        bn2 = BatchNorm2d(numFeatures: outChannels, affine: affineBatchNorm)
        dropout = dropRate > 0 ? Dropout(p: dropRate, layerIndex: dropoutLayerIndex) : nil
        conv2 = Conv2d(inChannels: outChannels, outChannels: outChannels, kernelSize: 3, padding: 1, bias: false, rng: &rng)
        convShortcut = inChannels == outChannels ? nil
            : Conv2d(inChannels: inChannels, outChannels: outChannels, kernelSize: 1, stride: stride, bias: false, rng: &rng)
        precondition(inChannels != outChannels || stride == 1,
                     "WideBasicBlock: identity shortcut needs stride 1 (got \(inChannels) -> \(outChannels), stride \(stride))")
    }

    public var children: [(name: String, layer: any Layer)] {
        var out: [(name: String, layer: any Layer)] = [("bn1", bn1), ("relu1", relu1), ("conv1", conv1), ("bn2", bn2),
                                                       ("relu2", relu2)]
        if let dropout { out.append(("dropout", dropout)) }
        out.append(("conv2", conv2))
        if let convShortcut { out.append(("convShortcut", convShortcut)) }
        return out
    }

    public func forward(_ x: Tensor, context: ForwardContext) -> Tensor {
        let a = relu1.forward(bn1.forward(x, context: context), context: context)
        var h = relu2.forward(bn2.forward(conv1.forward(a, context: context), context: context), context: context)
        if let dropout { h = dropout.forward(h, context: context) }
        let main = conv2.forward(h, context: context)
        let side = convShortcut?.forward(a, context: context) ?? x
        precondition(main.shape == side.shape, "WideBasicBlock: main \(main.shape) != shortcut \(side.shape)")
        return main + side
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        var g = conv2.backward(gradOutput)
        if let dropout { g = dropout.backward(g) }
        var ga = conv1.backward(bn2.backward(relu2.backward(g)))
        if let convShortcut { ga.addScaled(convShortcut.backward(gradOutput)) }
        var gx = bn1.backward(relu1.backward(ga))
        if convShortcut == nil { gx.addScaled(gradOutput) }
        return gx
    }
}
