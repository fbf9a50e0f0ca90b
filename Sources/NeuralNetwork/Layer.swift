import TensorCore

/// Training or evaluation behaviour (BatchNorm statistics, Dropout).
public enum Mode: Sendable, Equatable {
    case train
    case eval
}

/// Sums a vector of Doubles across data-parallel replicas, in place (an allreduce SUM).
///
/// BatchNorm2d calls it, when set in the `ForwardContext`, to synchronise statistics: in a
/// training forward with `[sum[C], sumOfSquares[C], count]` and in the matching backward with
/// `[sum(dy)[C], sum(dy * xhat)[C]]`. Every replica must call it the same number of times with
/// the same length (a replica with 0 samples contributes zeros and count 0).
public protocol BatchNormStatisticsReducer: AnyObject {
    func sumAcrossReplicas(_ values: UnsafeMutableBufferPointer<Double>)
}

/// What a forward pass needs besides its input.
public struct ForwardContext {
    /// Train or eval behaviour.
    public var mode: Mode
    /// `false` = input-gradient-only mode: the following backward returns the input gradient
    /// and leaves every parameter gradient untouched (ODIN, input pre-processing).
    public var computeParameterGradients: Bool
    /// Run seed; with `epoch`, the sample ids and a layer index it keys per-sample randomness.
    public var seed: UInt64
    /// Epoch number (keys per-sample randomness).
    public var epoch: Int
    /// Global sample id of each batch row (`[N]`); required by Dropout in training mode.
    public var sampleIDs: [Int64]?
    /// Synchronised BatchNorm across replicas when set (see `BatchNormStatisticsReducer`).
    public var batchNormReducer: (any BatchNormStatisticsReducer)?

    public init(mode: Mode, computeParameterGradients: Bool = true, seed: UInt64 = 0, epoch: Int = 0,
                sampleIDs: [Int64]? = nil, batchNormReducer: (any BatchNormStatisticsReducer)? = nil) {
        self.mode = mode
        self.computeParameterGradients = computeParameterGradients
        self.seed = seed
        self.epoch = epoch
        self.sampleIDs = sampleIDs
        self.batchNormReducer = batchNormReducer
    }

    /// Evaluation mode, parameter gradients off.
    public static var eval: ForwardContext { ForwardContext(mode: .eval, computeParameterGradients: false) }
}

/// A state-dict entry: a Float tensor (parameter or buffer) or an int64 buffer.
public enum StateEntry {
    case float(Parameter)
    case int64(Int64Buffer)
}

/// A differentiable layer with a hand-written backward pass.
///
/// Contract: `backward(_:)` needs a preceding `forward` on the same batch (the layer caches
/// what it needs); it ACCUMULATES into parameter gradients (unless the forward context had
/// `computeParameterGradients == false`, or the parameter is frozen) and returns the input
/// gradient with the input's shape. Layers are final classes and are not thread-safe.
public protocol Layer: AnyObject {
    /// `x` => output; shapes are documented per layer.
    func forward(_ x: Tensor, context: ForwardContext) -> Tensor
    /// `gradOutput` (shape of the last output) => gradient w.r.t. the last input.
    func backward(_ gradOutput: Tensor) -> Tensor
    /// This layer's own Float tensors (parameters then buffers), with local names.
    var localParameters: [Parameter] { get }
    /// This layer's own int64 buffers.
    var localInt64Buffers: [Int64Buffer] { get }
    /// Sub-layers with their local names (name components of the dotted path).
    var children: [(name: String, layer: any Layer)] { get }
}

extension Layer {
    public var localParameters: [Parameter] { [] }
    public var localInt64Buffers: [Int64Buffer] { [] }
    public var children: [(name: String, layer: any Layer)] { [] }

    /// Every state entry in PyTorch `state_dict` order (own parameters, own buffers, own int64
    /// buffers, then children recursively), each with its full dotted name.
    public func stateEntries(prefix: String = "") -> [(name: String, entry: StateEntry)] {
        var out: [(name: String, entry: StateEntry)] = []
        for p in localParameters where p.role != .buffer { out.append((prefix + p.localName, .float(p))) }
        for p in localParameters where p.role == .buffer { out.append((prefix + p.localName, .float(p))) }
        for b in localInt64Buffers { out.append((prefix + b.localName, .int64(b))) }
        for (name, child) in children { out += child.stateEntries(prefix: prefix + name + ".") }
        return out
    }

    /// Sets every `Parameter.name` / `Int64Buffer.name` to its full dotted path under `prefix`.
    public func assignNames(prefix: String = "") {
        for p in localParameters { p.name = prefix + p.localName }
        for b in localInt64Buffers { b.name = prefix + b.localName }
        for (name, child) in children { child.assignNames(prefix: prefix + name + ".") }
    }

    /// Trainable and frozen parameters (no buffers), in registration (`state_dict`) order.
    public var parameters: [Parameter] {
        stateEntries().compactMap { if case .float(let p) = $0.entry, p.role != .buffer { return p } else { return nil } }
    }

    /// Float buffers (running statistics), in `state_dict` order.
    public var buffers: [Parameter] {
        stateEntries().compactMap { if case .float(let p) = $0.entry, p.role == .buffer { return p } else { return nil } }
    }

    /// Int64 buffers (e.g. `num_batches_tracked`), in `state_dict` order.
    public var int64Buffers: [Int64Buffer] {
        stateEntries().compactMap { if case .int64(let b) = $0.entry { return b } else { return nil } }
    }

    /// Number of trainable scalars.
    public var trainableParameterCount: Int { parameters.filter { $0.role == .trainable }.reduce(0) { $0 + $1.count } }

    /// Zeroes every parameter gradient (use `ParameterArena.zeroGradients()` when adopted).
    public func zeroGradients() {
        for p in parameters { p.grad.zero() }
    }
}

func expectRank4(_ x: Tensor, _ layer: String) -> (Int, Int, Int, Int) {
    precondition(x.rank == 4, "\(layer): expected input [N, C, H, W], got \(x.shape)")
    return (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
}

extension Layer {
    /// This layer and every layer reachable through `children`, pre-order (registration order),
    /// each with its dotted path as in PyTorch's `named_modules()` (`""` for this layer,
    /// `"layer1.0.conv1"`, ...).
    public func namedDescendants() -> [(path: String, layer: any Layer)] {
        var out: [(path: String, layer: any Layer)] = []
        func walk(_ layer: any Layer, _ path: String) {
            out.append((path, layer))
            for (name, child) in layer.children { walk(child, path.isEmpty ? name : path + "." + name) }
        }
        walk(self, "")
        return out
    }

    /// Multiply-accumulates of the last forward pass of this layer tree (whole batch): the sum
    /// of `Conv2d.lastForwardMACs` (`N * Cout * OH * OW * Cin * KH * KW`) and
    /// `Linear.lastForwardMACs` (`N * in * out`) over every layer reachable through `children`.
    /// Convention (as the usual "FLOPs" tables of CIFAR/ImageNet models): only convolutions and
    /// linear layers count; BatchNorm, activations, pooling, additions and biases do not.
    /// Layers that never ran forward contribute 0.
    public var lastForwardMACsInTree: Int {
        var own = 0
        if let conv = self as? Conv2d { own = conv.lastForwardMACs }
        if let linear = self as? Linear { own = linear.lastForwardMACs }
        return children.reduce(own) { $0 + $1.layer.lastForwardMACsInTree }
    }
}
