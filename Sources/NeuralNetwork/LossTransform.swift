/// Rescales the gradient of the mean cross-entropy of a step, given the GLOBAL batch loss.
///
/// The trainer calls it once per step after one small allreduce of (loss sum, count), so the
/// decision is the same on every rank and does not depend on how the batch was split. This
/// is the hook UM's flooding objective uses; the trainer itself knows nothing about UM.
public protocol LossTransform {
    /// Multiplier for the whole batch's gradient (1 = plain cross-entropy).
    func gradientMultiplier(globalMeanLoss: Double) -> Double
    /// Optional per-sample multipliers `[N]` for the rank's samples (by global sample id);
    /// when non-nil they replace `gradientMultiplier` for this step.
    func perSampleMultipliers(globalMeanLoss: Double, sampleIDs: [Int64]) -> [Float]?
    /// One line for the run log, e.g. `flooding |CE_B - 0.0800| + 0.0800 (UM)`.
    var objectiveDescription: String { get }
}

extension LossTransform {
    public func perSampleMultipliers(globalMeanLoss: Double, sampleIDs: [Int64]) -> [Float]? { nil }
}
