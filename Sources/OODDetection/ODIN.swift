// ODIN input pre-processing (Liang, Li & Srikant, "Enhancing the Reliability of Out-of-distribution
// Image Detection in Neural Networks", ICLR 2018, Eq. 2): x~ = x - eps * sign(-grad_x log S_yhat(x; T)),
// where S is the softmax at temperature T and yhat the predicted class. The gradient itself needs
// the network, so the trainer computes it (an INPUT gradient: no parameter-gradient allreduce) and
// hands it here; the score is then `LogitScore.logMaxSoftmax(logits: f(x~), temperature: T)` (the
// log of the temperature-scaled MSP: the same ranking without saturation).

/// Applies the ODIN perturbation step to a batch of inputs.
public enum ODIN {
    /// Perturbs `inputs` in place: `x -= epsilon / std_c * sign(g)`, where `g` is the gradient of
    /// the cross-entropy loss at the predicted label, `-log softmax(f(x) / T)_yhat`, w.r.t. the
    /// (normalised) inputs, i.e. `g = -grad_x log S_yhat`. This lowers the loss and raises the max
    /// softmax, more for ID than OOD inputs.
    ///
    /// - Parameters:
    ///   - inputs: `[N, C, H, W]` (any trailing layout with channel-major planes) flattened, in the
    ///     space the model consumes (normalised if normalisation happens before the model).
    ///   - lossGradient: same shape as `inputs`.
    ///   - epsilon: step in [0, 1] pixel units (ODIN: 0.0014 for CIFAR with T = 1000).
    ///   - channelStd: per-channel normalisation std `[C]` when `inputs` are normalised outside the
    ///     model (the step becomes `epsilon / std_c` in normalised units, as in the ODIN code); `nil`
    ///     when inputs are raw [0, 1] pixels (normalisation inside the model).
    ///   - channels: C; `planeSize` = H * W.
    /// - sign(0) = +1, as the authors' code (`torch.ge(grad, 0)` mapped to {-1, +1}); zero-gradient
    ///   entries therefore move by -epsilon. (torch.sign would give 0; this is deliberate.)
    public static func perturb(_ inputs: inout [Float], lossGradient: [Float], epsilon: Double,
                               channels: Int, planeSize: Int, channelStd: [Float]? = nil) {
        precondition(inputs.count == lossGradient.count,
                     "inputs.count \(inputs.count) != lossGradient.count \(lossGradient.count) (expected equal [N, C, H, W])")
        precondition(channels > 0 && planeSize > 0 && inputs.count % (channels * planeSize) == 0,
                     "inputs.count \(inputs.count) is not a multiple of C * H * W = \(channels) * \(planeSize)")
        precondition(epsilon >= 0 && epsilon.isFinite, "epsilon must be finite and >= 0, got \(epsilon)")
        if let s = channelStd {
            precondition(s.count == channels && s.allSatisfy { $0 > 0 }, "channelStd must be [\(channels)] positive values, got \(s)")
        }
        let step: [Double] = (0..<channels).map { c in epsilon / Double(channelStd?[c] ?? 1) }
        inputs.withUnsafeMutableBufferPointer { x in
            lossGradient.withUnsafeBufferPointer { g in
                for i in 0..<x.count {
                    let c = (i / planeSize) % channels
                    let direction: Double = g[i] >= 0 ? 1 : -1  // NaN gradient -> -1, matching torch.ge
                    x[i] = Float(Double(x[i]) - step[c] * direction)
                }
            }
        }
    }
}
