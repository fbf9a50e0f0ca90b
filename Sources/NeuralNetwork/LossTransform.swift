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
    /// Whether ``perSampleMultipliers(globalMeanLoss:sampleIDs:)`` returns multipliers (then the
    /// gradient is not one factor times the cross-entropy gradient).
    var hasPerSampleMultipliers: Bool { get }
}

extension LossTransform {
    public func perSampleMultipliers(globalMeanLoss: Double, sampleIDs: [Int64]) -> [Float]? { nil }
    public var hasPerSampleMultipliers: Bool { false }
}

/// Lets a method reshape what the trainer optimises without the trainer knowing the method
/// (UMAP learns per-weight scores while the weights stay frozen).
public protocol TrainingHooks: AnyObject {
    /// Every parameter the optimizer updates, in a fixed order (the gradient arena is laid
    /// out in this order and reduced in reversed buckets).
    func optimizedParameters() -> [Parameter]
    /// Called before each training forward (e.g. recompute masks and effective weights).
    func beforeForward()
    /// Called after each backward, before the gradient allreduce (e.g. route the gradient of
    /// the effective weights into the scores).
    func afterBackward()
    /// Called before evaluation and checkpoints: recompute derived state and verify it is
    /// identical on every rank (throws naming the difference).
    func prepareForEvaluation() throws
    /// Extra named tensors compared across ranks and saved in checkpoints.
    func extraState() -> [(name: String, values: [Float])]
    /// Restores `extraState()` from a checkpoint.
    func restoreExtraState(_ state: [String: [Float]]) throws
}
