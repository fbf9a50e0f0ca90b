import TensorCore

/// Batch normalisation over `[N, C, H, W]` with PyTorch `nn.BatchNorm2d` semantics
/// (Ioffe & Szegedy 2015, Algorithm 1): in training,
/// `y = (x - mean) / sqrt(var_biased + eps) * weight + bias` with per-channel batch statistics,
/// and `running = (1 - momentum) * running + momentum * batchStat` using the UNBIASED variance
/// (`var * M / (M - 1)`, M = N*H*W) for `running_var`; `num_batches_tracked` (int64) counts
/// training forwards. In eval, the running statistics normalise.
///
/// Affine (`weight`, `bias` [C] parameters, init 1 and 0) or non-affine (no parameters).
/// Buffers: `running_mean` [C] (init 0), `running_var` [C] (init 1), `num_batches_tracked`.
///
/// Synchronised BN: with `ForwardContext.batchNormReducer` set, the per-channel
/// `(sum, M2 about the replica's mean, n_r * mean_r^2, count)` are summed across replicas before
/// normalising (one allreduce of 3C + 1 Doubles), and backward
/// sums `(sum dy, sum dy*xhat)` the same way, so N replicas equal one process holding the global
/// batch. Parameter gradients stay LOCAL sums (the gradient allreduce adds them up). A replica
/// with 0 samples contributes count 0. With 0 samples globally, the output is empty and
/// nothing is updated.
public final class BatchNorm2d: Layer {
    public let numFeatures: Int
    public let eps: Double
    public let momentum: Double
    public let weight: Parameter?
    public let bias: Parameter?
    public let runningMean: Parameter
    public let runningVar: Parameter
    public let numBatchesTracked = Int64Buffer(localName: "num_batches_tracked")

    private var input: Tensor?         // forward input [N, C, H, W] (a reference, not a copy)
    private var invStd: [Double] = []  // per channel
    // The Float mean and 1/std the forward normalised with: backward recomputes
    // xhat = (x - mean) * invStd with exactly the same operations, so it sees the same values
    // without the forward storing a normalised copy of the activations.
    private var normMean: [Float] = []
    private var normInvStd: [Float] = []
    private var globalCount: Double = 0
    private var wasTraining = false
    private var accumulate = true
    private var reducer: (any BatchNormStatisticsReducer)?
    private let xhatScratch = ScratchBuffer()

    public init(numFeatures: Int, affine: Bool = true, eps: Double = 1e-5, momentum: Double = 0.1) {
        precondition(numFeatures > 0, "BatchNorm2d: numFeatures \(numFeatures) must be positive")
        self.numFeatures = numFeatures
        self.eps = eps
        self.momentum = momentum
        if affine {
            let w = Parameter(localName: "weight", shape: [numFeatures])
            w.value = Tensor(shape: [numFeatures], filledWith: 1)
            weight = w
            bias = Parameter(localName: "bias", shape: [numFeatures])
        } else {
            weight = nil
            bias = nil
        }
        runningMean = Parameter(localName: "running_mean", shape: [numFeatures], role: .buffer)
        runningVar = Parameter(localName: "running_var", shape: [numFeatures], role: .buffer)
        runningVar.value = Tensor(shape: [numFeatures], filledWith: 1)
    }

    public var isAffine: Bool { weight != nil }

    public var localParameters: [Parameter] {
        (weight.map { [$0] } ?? []) + (bias.map { [$0] } ?? []) + [runningMean, runningVar]
    }
    public var localInt64Buffers: [Int64Buffer] { [numBatchesTracked] }

    /// `x [N, C, H, W] => [N, C, H, W]`.
    public func forward(_ x: Tensor, context: ForwardContext) -> Tensor {
        let (n, c, h, w) = expectRank4(x, "BatchNorm2d")
        precondition(c == numFeatures, "BatchNorm2d: expected \(numFeatures) channels, got input \(x.shape)")
        let p = h * w
        accumulate = context.computeParameterGradients
        wasTraining = context.mode == .train
        reducer = context.batchNormReducer
        var gamma = [Float](repeating: 1, count: c), beta = [Float](repeating: 0, count: c)
        if let weight, let bias { gamma = weight.value.scalars; beta = bias.value.scalars }

        var mean = [Double](repeating: 0, count: c)
        var variance = [Double](repeating: 0, count: c)
        if wasTraining {
            // Sums are shifted by the first value of each channel in this replica's batch, so
            // var = E[(x-K)^2] - E[x-K]^2 does not cancel when |mean| >> std, and are accumulated
            // fast in blocked Float SIMD (Double across blocks). With a reducer the replicas' shifts
            // differ, so each replica turns its sums into moments that are simply summed across
            // replicas (Chan, Golub & LeVeque 1979, pairwise variance): sum x, M2 = sum (x - mean_r)^2
            // and n_r mean_r^2; then M2_total = sum M2_r + sum n_r mean_r^2 - n mean^2, where the
            // last difference (the between-replica spread) is formed in Double.
            var shift = [Double](repeating: 0, count: c)
            if n > 0 {
                x.withUnsafeBufferPointer { xb in for ch in 0..<c { shift[ch] = Double(xb[ch * p]) } }
            }
            var sums = [Double](repeating: 0, count: 2 * c)
            if n > 0 {
                sums.withUnsafeMutableBufferPointer { s in
                    x.withUnsafeBufferPointer { xb in
                        shift.withUnsafeBufferPointer { kb in
                            Kernels.channelSumAndSumOfSquares(xb.baseAddress!, batch: n, channels: c, plane: p,
                                                              shift: kb.baseAddress!, sum: s.baseAddress!,
                                                              sumOfSquares: s.baseAddress! + c)
                        }
                    }
                }
            }
            let localCount = Double(n * p)
            let m: Double
            if let reducer {
                // [sum x (C), M2 (C), n_r mean_r^2 (C), count]
                var stats = [Double](repeating: 0, count: 3 * c + 1)
                if n > 0 {
                    for i in 0..<c {
                        let d = sums[i] / localCount
                        let total = shift[i] * localCount + sums[i]
                        stats[i] = total
                        stats[c + i] = Swift.max(sums[c + i] - sums[i] * d, 0)
                        stats[2 * c + i] = total * (total / localCount)
                    }
                }
                stats[3 * c] = localCount
                stats.withUnsafeMutableBufferPointer { reducer.sumAcrossReplicas($0) }
                m = stats[3 * c]
                if m > 0 {
                    for i in 0..<c {
                        mean[i] = stats[i] / m
                        let between = stats[2 * c + i] - stats[i] * mean[i]
                        variance[i] = Swift.max((stats[c + i] + between) / m, 0)
                    }
                }
            } else {
                m = localCount
                if m > 0 {
                    for i in 0..<c {
                        let shiftedMean = sums[i] / m
                        mean[i] = shift[i] + shiftedMean
                        variance[i] = Swift.max(sums[c + i] / m - shiftedMean * shiftedMean, 0)
                    }
                }
            }
            globalCount = m
            if m == 0 {
                input = x
                invStd = []
                return Tensor(zeros: x.shape)
            }
            // Running statistics (unbiased variance; PyTorch uses M / (M - 1)).
            let unbiasing = m > 1 ? m / (m - 1) : 1
            let mom = momentum
            runningMean.value.withUnsafeMutableBufferPointer { rm in
                for i in 0..<c { rm[i] = Float((1 - mom) * Double(rm[i]) + mom * mean[i]) }
            }
            runningVar.value.withUnsafeMutableBufferPointer { rv in
                for i in 0..<c { rv[i] = Float((1 - mom) * Double(rv[i]) + mom * variance[i] * unbiasing) }
            }
            numBatchesTracked.value += 1
        } else {
            let rm = runningMean.value.scalars, rv = runningVar.value.scalars
            for i in 0..<c { mean[i] = Double(rm[i]); variance[i] = Double(rv[i]) }
        }
        invStd = variance.map { 1 / ($0 + eps).squareRoot() }

        normMean = mean.map { Float($0) }
        normInvStd = invStd.map { Float($0) }
        var y = Tensor(uninitialized: x.shape)  // fully written below
        x.withUnsafeBufferPointer { xb in
            y.withUnsafeMutableBufferPointer { yb in
                let xp = xb.baseAddress!, yp = yb.baseAddress!
                for s in 0..<n {
                    for ch in 0..<c {
                        let base = (s * c + ch) * p
                        let mu = normMean[ch], istd = normInvStd[ch]
                        let g = gamma[ch], b = beta[ch]
                        let src = xp + base, dst = yp + base
                        for i in 0..<p { dst[i] = ((src[i] - mu) * istd) * g + b }
                    }
                }
            }
        }
        input = x
        return y
    }

    /// `gradOutput [N, C, H, W] => gradInput [N, C, H, W]`. Training mode:
    /// `dx = weight * invStd * (dy - mean(dy) - xhat * mean(dy * xhat))` (means over the global
    /// batch); eval mode: `dx = dy * weight * invStd_running`. Accumulates `weight.grad +=
    /// sum(dy * xhat)`, `bias.grad += sum(dy)` (local sums).
    public func backward(_ gradOutput: Tensor) -> Tensor {
        guard let xh = input else { preconditionFailure("BatchNorm2d.backward called without a forward") }
        precondition(gradOutput.shape == xh.shape, "BatchNorm2d.backward: gradOutput \(gradOutput.shape) != \(xh.shape)")
        let (n, c) = (xh.shape[0], xh.shape[1])
        let p = xh.shape[2] * xh.shape[3]
        // Fully written by either path below (or empty / early zero return).
        var gx = globalCount == 0 && wasTraining ? Tensor(zeros: xh.shape) : Tensor(uninitialized: xh.shape)
        let gamma = weight?.value.scalars ?? [Float](repeating: 1, count: c)
        // Local per-channel sums of dy and dy * xhat.
        var sums = [Double](repeating: 0, count: 2 * c)
        if !(wasTraining && globalCount == 0) && n > 0 {
            // xhat of one plane at a time (recomputed as in forward) into a small scratch.
            let plane = xhatScratch.reserve(p)
            gradOutput.withUnsafeBufferPointer { gb in
                xh.withUnsafeBufferPointer { xb in
                    for s in 0..<n {
                        for ch in 0..<c {
                            let base = (s * c + ch) * p
                            let src = xb.baseAddress! + base
                            let mu = normMean[ch], istd = normInvStd[ch]
                            for i in 0..<p { plane[i] = (src[i] - mu) * istd }
                            let (sdy, sdyx) = Kernels.sumAndDot(gb.baseAddress! + base, plane, count: p)
                            sums[ch] += sdy
                            sums[c + ch] += sdyx
                        }
                    }
                }
            }
        }
        if accumulate, let weight, let bias {
            if weight.role == .trainable {
                weight.grad.withUnsafeMutableBufferPointer { for i in 0..<c { $0[i] += Float(sums[c + i]) } }
            }
            if bias.role == .trainable {
                bias.grad.withUnsafeMutableBufferPointer { for i in 0..<c { $0[i] += Float(sums[i]) } }
            }
        }
        if wasTraining {
            if let reducer {
                sums.withUnsafeMutableBufferPointer { reducer.sumAcrossReplicas($0) }
            }
            if globalCount == 0 || n == 0 { return gx }
            let m = globalCount
            gradOutput.withUnsafeBufferPointer { gb in
                xh.withUnsafeBufferPointer { xb in
                    gx.withUnsafeMutableBufferPointer { ob in
                        let gp = gb.baseAddress!, xp = xb.baseAddress!, op = ob.baseAddress!
                        for ch in 0..<c {
                            let k = Float(Double(gamma[ch]) * invStd[ch])
                            let meanDy = Float(sums[ch] / m), meanDyX = Float(sums[c + ch] / m)
                            let mu = normMean[ch], istd = normInvStd[ch]
                            for s in 0..<n {
                                let base = (s * c + ch) * p
                                let g = gp + base, x = xp + base, o = op + base
                                for i in 0..<p {
                                    o[i] = k * (g[i] - meanDy - ((x[i] - mu) * istd) * meanDyX)
                                }
                            }
                        }
                    }
                }
            }
        } else {
            gradOutput.withUnsafeBufferPointer { gb in
                gx.withUnsafeMutableBufferPointer { ob in
                    for s in 0..<n {
                        for ch in 0..<c {
                            let k = Float(Double(gamma[ch]) * invStd[ch])
                            let base = (s * c + ch) * p
                            for i in 0..<p { ob[base + i] = k * gb[base + i] }
                        }
                    }
                }
            }
        }
        return gx
    }
}
