import Foundation

/// Learning-rate schedules. Positions are given in epochs (`epoch` counts from 0) and, for
/// per-step schedules, the step within the epoch.
///
/// - `constant`: `base`.
/// - `step(stepSize:gamma:)`: `base * gamma^floor(epoch / stepSize)` (PyTorch `StepLR`).
/// - `multiStep(milestones:gamma:)`: `base * gamma^(number of milestones <= epoch)` (`MultiStepLR`).
/// - `cosine(totalEpochs:perStep:)`: `0.5 * (1 + cos(pi * e / E)) * base` where e is the epoch
///   after warm-up and E the epochs after warm-up; as in the UM reference code (set once per
///   epoch) or, with `perStep`, with e fractional (epoch + step / stepsPerEpoch).
///
/// Linear warm-up (`warmupEpochs` > 0) comes first for any schedule: during epoch e <
/// warmupEpochs the rate is `base * (e + 1) / warmupEpochs` (the reference's `_warmup_lr`),
/// or per step `base * (e * S + s + 1) / (warmupEpochs * S)`.
public struct LearningRateSchedule: Equatable, Sendable, Codable {
    public enum Kind: Equatable, Sendable, Codable {
        case constant
        case step(stepSize: Int, gamma: Double)
        case multiStep(milestones: [Int], gamma: Double)
        case cosine(totalEpochs: Int)
    }

    public var base: Double
    public var kind: Kind
    public var warmupEpochs: Int
    /// Update every step instead of once per epoch (cosine and warm-up only).
    public var perStep: Bool

    public init(base: Double, kind: Kind, warmupEpochs: Int = 0, perStep: Bool = false) {
        self.base = base
        self.kind = kind
        self.warmupEpochs = warmupEpochs
        self.perStep = perStep
    }

    /// The learning rate for step `step` (0-based) of epoch `epoch` (0-based), with
    /// `stepsPerEpoch` steps per epoch.
    public func learningRate(epoch: Int, step: Int = 0, stepsPerEpoch: Int = 1) -> Double {
        let spe = max(1, stepsPerEpoch)
        if epoch < warmupEpochs {
            if perStep {
                return base * Double(epoch * spe + step + 1) / Double(warmupEpochs * spe)
            }
            return base * Double(epoch + 1) / Double(warmupEpochs)
        }
        switch kind {
        case .constant:
            return base
        case let .step(stepSize, gamma):
            return base * pow(gamma, Double(epoch / max(1, stepSize)))
        case let .multiStep(milestones, gamma):
            return base * pow(gamma, Double(milestones.filter { $0 <= epoch }.count))
        case let .cosine(totalEpochs):
            let es = Double(max(1, totalEpochs - warmupEpochs))
            var e = Double(epoch - warmupEpochs)
            if perStep { e += Double(step) / Double(spe) }
            return 0.5 * (1 + cos(Double.pi * e / es)) * base
        }
    }
}
