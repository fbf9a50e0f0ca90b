import TensorCore

/// How a tensor of a layer takes part in training.
public enum ParameterRole: Sendable, Equatable {
    /// Updated by the optimizer; gradients are accumulated in backward.
    case trainable
    /// A parameter kept fixed (e.g. UMAP's frozen weights); layers skip its gradient.
    case frozen
    /// State that is not a parameter (BatchNorm running statistics); no gradient.
    case buffer
}

/// A named tensor of a layer: value, gradient (same shape; empty for buffers) and role.
///
/// `name` is the full dotted PyTorch-style name (e.g. `features.0.weight`), assigned by
/// `Layer.assignNames(prefix:)` (models do this when built); `localName` is the last component.
/// Once a `ParameterArena` adopts the parameter, `value` and `grad` are views into the arena's
/// two allocations and write in place.
public final class Parameter {
    public var name: String
    public let localName: String
    public var value: Tensor
    public var grad: Tensor
    public var role: ParameterRole

    /// A zero-filled parameter of `shape` (gradient zero-filled too unless `role == .buffer`).
    public init(localName: String, shape: [Int], role: ParameterRole = .trainable) {
        self.localName = localName
        name = localName
        value = Tensor(zeros: shape)
        grad = Tensor(zeros: role == .buffer ? [0] : shape)
        self.role = role
    }

    /// Shape of the value.
    public var shape: [Int] { value.shape }
    /// Number of scalars in the value.
    public var count: Int { value.count }
}

/// A 64-bit integer buffer, e.g. BatchNorm's `num_batches_tracked` (int64 in PyTorch, stored
/// as I64 in checkpoints).
public final class Int64Buffer {
    public var name: String
    public let localName: String
    public var value: Int64
    public init(localName: String, value: Int64 = 0) {
        self.localName = localName
        name = localName
        self.value = value
    }
}

/// One allocation for the values and one for the gradients of a list of parameters, laid out
/// in the given (registration) order without gaps: parameter `i` occupies
/// `[offsets[i], offsets[i] + parameters[i].count)` of both.
///
/// Adopting a parameter copies its current value into the arena and rebinds `value` and `grad`
/// to arena views (reference semantics), so a distributed trainer can allreduce the gradient
/// arena in buckets and `zeroGradients()` is one memset. Buffers may get their own arena built
/// with `withGradients: false`.
public final class ParameterArena {
    public let parameters: [Parameter]
    /// Start of each parameter, in floats.
    public let offsets: [Int]
    /// Total number of floats.
    public let count: Int
    /// The value allocation (`count` floats).
    public let valueStorage: TensorStorage
    /// The gradient allocation (`count` floats; empty without gradients).
    public let gradientStorage: TensorStorage

    /// Adopts `parameters` in order. Precondition: no parameter appears twice.
    public init(parameters: [Parameter], withGradients: Bool = true) {
        precondition(Set(parameters.map { ObjectIdentifier($0) }).count == parameters.count,
                     "ParameterArena: a parameter is listed twice (\(parameters.map(\.name)))")
        self.parameters = parameters
        var offs: [Int] = []
        var total = 0
        for p in parameters {
            offs.append(total)
            total += p.count
        }
        offsets = offs
        count = total
        valueStorage = TensorStorage(capacity: total, isArena: true)
        gradientStorage = TensorStorage(capacity: withGradients ? total : 0, isArena: true)
        for (p, off) in zip(parameters, offs) {
            var view = Tensor(storage: valueStorage, offset: off, shape: p.shape)
            view.assign(p.value)
            p.value = view
            if withGradients {
                var g = Tensor(storage: gradientStorage, offset: off, shape: p.shape)
                if p.grad.count == p.count { g.assign(p.grad) }
                p.grad = g
            }
        }
    }

    /// All values as one flat `[count]` tensor view (writes go in place).
    public var values: Tensor { Tensor(storage: valueStorage, offset: 0, shape: [count]) }
    /// All gradients as one flat `[count]` tensor view (writes go in place).
    public var gradients: Tensor { Tensor(storage: gradientStorage, offset: 0, shape: [gradientStorage.capacity]) }

    /// Zeroes every gradient: one memset over the gradient allocation.
    public func zeroGradients() {
        gradientStorage.pointer.update(repeating: 0, count: gradientStorage.capacity)
    }
}
