import TensorCore

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Result of `softmaxCrossEntropy`.
public struct CrossEntropyResult {
    /// Mean of `perSampleLoss` (nats); 0 for an empty batch.
    public let meanLoss: Double
    /// Sum of `perSampleLoss` (nats), accumulated in Double.
    public let lossSum: Double
    /// Loss of each sample (nats), `[N]`.
    public let perSampleLoss: [Float]
    /// `gradientScale * (softmax(logits) - target)`, `[N, K]`.
    public let logitsGradient: Tensor
}

/// Fused softmax cross-entropy with PyTorch `nn.CrossEntropyLoss` semantics (including
/// `label_smoothing`): for logits `z [N, K]` and labels `y [N]` in `0..<K`,
/// `target = (1 - s) * onehot(y) + s / K`, `loss_i = logsumexp(z_i) - sum_k target_k z_ik`
/// (nats; stable log-sum-exp in Double). The logits gradient of sample i is
/// `gradientScale * (softmax(z_i) - target)`; `gradientScale` defaults to `1 / N` (gradient
/// of the mean). A trainer that backpropagates `lossSum / globalCount` passes
/// `1 / globalCount`.
///
/// Preconditions: logits `[N, K]`, `labels.count == N`, labels in `0..<K`, `0 <= s <= 1`.
public func softmaxCrossEntropy(logits: Tensor, labels: [Int], labelSmoothing: Float = 0,
                                gradientScale: Float? = nil) -> CrossEntropyResult {
    precondition(logits.rank == 2, "softmaxCrossEntropy: logits must be [N, K], got \(logits.shape)")
    let n = logits.shape[0], k = logits.shape[1]
    precondition(labels.count == n, "softmaxCrossEntropy: \(labels.count) labels for logits \(logits.shape)")
    precondition(labelSmoothing >= 0 && labelSmoothing <= 1, "softmaxCrossEntropy: labelSmoothing \(labelSmoothing) not in [0, 1]")
    let scale = Double(gradientScale ?? (n > 0 ? 1 / Float(n) : 0))
    let s = Double(labelSmoothing)
    var losses = [Float](repeating: 0, count: n)
    var grad = Tensor(zeros: [n, k])
    var total = 0.0
    logits.withUnsafeBufferPointer { zb in
        grad.withUnsafeMutableBufferPointer { gb in
            for i in 0..<n {
                let label = labels[i]
                precondition(label >= 0 && label < k, "softmaxCrossEntropy: label \(label) of sample \(i) not in 0..<\(k)")
                let z = zb.baseAddress! + i * k
                let g = gb.baseAddress! + i * k
                var zmax = -Double.infinity
                var zsum = 0.0
                for j in 0..<k { zmax = Swift.max(zmax, Double(z[j])); zsum += Double(z[j]) }
                var e = 0.0
                for j in 0..<k { e += exp(Double(z[j]) - zmax) }
                let lse = zmax + log(e)
                // sum_k target_k z_k = (1 - s) z_y + (s / K) sum z
                let loss = lse - ((1 - s) * Double(z[label]) + s / Double(k) * zsum)
                losses[i] = Float(loss)
                total += loss
                for j in 0..<k {
                    let p = exp(Double(z[j]) - lse)
                    let t = (j == label ? 1 - s : 0) + s / Double(k)
                    g[j] = Float(scale * (p - t))
                }
            }
        }
    }
    return CrossEntropyResult(meanLoss: n > 0 ? total / Double(n) : 0, lossSum: total, perSampleLoss: losses,
                              logitsGradient: grad)
}
