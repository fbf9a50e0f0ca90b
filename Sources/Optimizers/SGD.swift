import SafeTensors

/// Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight
/// decay, matching `torch.optim.SGD` (PyTorch 2.x, `maximize=False`, `foreach` or not):
///
/// ```
/// g = grad + weightDecay * p                                  (if weightDecay != 0)
/// if momentum != 0:
///     buf = g                                   on the first step (no dampening)
///     buf = momentum * buf + (1 - dampening) * g  afterwards
///     g   = g + momentum * buf                  if nesterov
///     g   = buf                                 otherwise
/// p = p - learningRate * g
/// ```
public struct SGDHyperparameters: Equatable, Sendable, Codable {
    /// Step size (same unit as the parameters per unit gradient).
    public var learningRate: Float
    /// Momentum factor in [0, 1).
    public var momentum: Float
    /// Dampening for momentum, in [0, 1].
    public var dampening: Float
    /// L2 penalty coefficient (added to the gradient, PyTorch's `weight_decay`).
    public var weightDecay: Float
    /// Nesterov momentum (requires momentum > 0 and dampening == 0, as in PyTorch).
    public var nesterov: Bool

    public init(learningRate: Float, momentum: Float = 0, dampening: Float = 0, weightDecay: Float = 0,
                nesterov: Bool = false) {
        self.learningRate = learningRate
        self.momentum = momentum
        self.dampening = dampening
        self.weightDecay = weightDecay
        self.nesterov = nesterov
    }

    /// Checks the ranges PyTorch checks.
    ///
    /// - Throws: ``OptimizerError/invalidHyperparameter(_:)`` naming the field and value.
    public func validate() throws {
        if !(learningRate >= 0) || !learningRate.isFinite {
            throw OptimizerError.invalidHyperparameter("learning rate must be a finite number >= 0, got \(learningRate)")
        }
        if !(momentum >= 0 && momentum < 1) {
            throw OptimizerError.invalidHyperparameter("momentum must be in [0, 1), got \(momentum)")
        }
        if !(dampening >= 0 && dampening <= 1) {
            throw OptimizerError.invalidHyperparameter("dampening must be in [0, 1], got \(dampening)")
        }
        if !(weightDecay >= 0) || !weightDecay.isFinite {
            throw OptimizerError.invalidHyperparameter("weight decay must be a finite number >= 0, got \(weightDecay)")
        }
        if nesterov && (momentum <= 0 || dampening != 0) {
            throw OptimizerError.invalidHyperparameter(
                "Nesterov momentum requires momentum > 0 and dampening = 0 (got momentum \(momentum), dampening \(dampening))")
        }
    }
}

/// Optimizer configuration errors.
public enum OptimizerError: Error, CustomStringConvertible, Equatable {
    case invalidHyperparameter(String)
    case stateMismatch(String)

    public var description: String {
        switch self {
        case let .invalidHyperparameter(m): return "invalid SGD setting: \(m). Hint: check the optimizer section of the config."
        case let .stateMismatch(m): return "optimizer state does not match the model: \(m). Hint: resume with the same model and config."
        }
    }
}

/// The SGD update on raw buffers (one parameter tensor, or a whole arena at once).
///
/// - Parameters:
///   - parameters: the values `p`, updated in place. `[n]`.
///   - gradients: `grad`, read only. `[n]`.
///   - momentumBuffer: `buf`, `[n]`, updated in place; ignored when momentum is 0.
///   - momentumInitialized: false on the first step for this buffer (PyTorch's
///     `momentum_buffer is None`): the buffer is then set to `g` without dampening.
///   - hp: the hyperparameters (learning rate of this step).
/// The arithmetic is done in Float in the order PyTorch's single-tensor path uses.
public func sgdUpdate(parameters: UnsafeMutableBufferPointer<Float>,
                      gradients: UnsafeBufferPointer<Float>,
                      momentumBuffer: UnsafeMutableBufferPointer<Float>?,
                      momentumInitialized: Bool,
                      hp: SGDHyperparameters) {
    precondition(parameters.count == gradients.count,
                 "sgdUpdate: parameters [\(parameters.count)] and gradients [\(gradients.count)] differ")
    let n = parameters.count
    guard n > 0 else { return }
    let p = parameters.baseAddress!
    let gr = gradients.baseAddress!
    let lr = hp.learningRate
    let wd = hp.weightDecay
    let mu = hp.momentum
    if mu == 0 {
        for i in 0..<n {
            var g = gr[i]
            if wd != 0 { g = g + wd * p[i] }
            p[i] = p[i] - lr * g
        }
        return
    }
    guard let bufBP = momentumBuffer else {
        preconditionFailure("sgdUpdate: momentum \(mu) needs a momentum buffer")
    }
    precondition(bufBP.count == n, "sgdUpdate: momentum buffer [\(bufBP.count)] != parameters [\(n)]")
    let buf = bufBP.baseAddress!
    let oneMinusDampening = 1 - hp.dampening
    for i in 0..<n {
        var g = gr[i]
        if wd != 0 { g = g + wd * p[i] }
        let b: Float
        if momentumInitialized {
            b = mu * buf[i] + oneMinusDampening * g
        } else {
            b = g
        }
        buf[i] = b
        let step = hp.nesterov ? g + mu * b : b
        p[i] = p[i] - lr * step
    }
}

/// SGD with its state: the momentum buffer over a flat parameter arena, PyTorch's lazily
/// created `momentum_buffer` (the first step sets it to the gradient), and its save and
/// restore (the shape of mlx-swift's optimizers; the update itself is ``sgdUpdate``'s flat loop).
///
/// State file (`optimizer.safetensors` in checkpoints): one F32 record `momentum` of shape
/// `[n]` (`[0]` without momentum) and the metadata `momentum_initialized` = `true`/`false`.
public final class SGD {
    /// The hyperparameters (the learning rate is given per step).
    public let hyperparameters: SGDHyperparameters
    /// PyTorch's `momentum_buffer` for the whole arena, `[n]`; empty when momentum is 0.
    public private(set) var momentumBuffer: [Float]
    /// False until the first step (PyTorch's `momentum_buffer is None`).
    public private(set) var momentumInitialized = false

    /// - Parameters:
    ///   - parameterCount: floats in the arena the optimizer updates.
    /// - Throws: ``OptimizerError/invalidHyperparameter(_:)`` for ranges PyTorch refuses.
    public init(parameterCount: Int, hyperparameters: SGDHyperparameters) throws {
        try hyperparameters.validate()
        self.hyperparameters = hyperparameters
        momentumBuffer = [Float](repeating: 0, count: hyperparameters.momentum > 0 ? parameterCount : 0)
    }

    /// One update of `parameters` (`[n]`, in place) from `gradients` (`[n]`) at `learningRate`.
    public func step(parameters: UnsafeMutableBufferPointer<Float>, gradients: UnsafeBufferPointer<Float>, learningRate: Float) {
        var hp = hyperparameters
        hp.learningRate = learningRate
        if hp.momentum > 0 {
            momentumBuffer.withUnsafeMutableBufferPointer { m in
                sgdUpdate(parameters: parameters, gradients: gradients, momentumBuffer: m, momentumInitialized: momentumInitialized, hp: hp)
            }
        } else {
            sgdUpdate(parameters: parameters, gradients: gradients, momentumBuffer: nil, momentumInitialized: false, hp: hp)
        }
        momentumInitialized = true
    }

    /// Forgets the momentum (as a freshly created PyTorch optimizer).
    public func resetState() {
        momentumBuffer = [Float](repeating: 0, count: momentumBuffer.count)
        momentumInitialized = false
    }

    /// The state as a safetensors file (see the type's documentation for the layout).
    public func stateFile() -> SafeTensorsFile {
        SafeTensorsFile(records: [SafeTensorsRecord(name: "momentum", shape: [momentumBuffer.count], floats: momentumBuffer)],
                        metadata: ["momentum_initialized": momentumInitialized ? "true" : "false"])
    }

    /// Restores the state written by ``stateFile()``.
    /// - Parameter source: the file's path, for error messages.
    /// - Throws: ``OptimizerError/stateMismatch(_:)`` when the momentum record is missing or
    ///   has another length; safetensors errors for unreadable data.
    public func restore(from file: SafeTensorsFile, source: String) throws {
        guard !momentumBuffer.isEmpty else { return }
        guard let rec = file.record(named: "momentum"), rec.shape == [momentumBuffer.count] else {
            throw OptimizerError.stateMismatch("\(source) has no momentum of \(momentumBuffer.count) values")
        }
        momentumBuffer = try rec.floats()
        momentumInitialized = file.metadata["momentum_initialized"] == "true"
    }
}
