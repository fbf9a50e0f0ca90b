import Foundation

/// Errors that stop training.
public enum TrainingError: Error, CustomStringConvertible {
    case nonFiniteLoss(step: Int, epoch: Int, rank: Int, lastCheckpoint: String?)
    /// Parameters (or BatchNorm statistics) hold NaN or infinity: `tensors` names them with
    /// their counts; `when` says where it was found (after step N, before a checkpoint, ...).
    case nonFiniteParameters(when: String, tensors: String, lastCheckpoint: String?)
    case modelMismatch(String)
    case replicasDiverged(String)
    case resume(String)

    public var description: String {
        switch self {
        case let .nonFiniteLoss(step, epoch, rank, last):
            return "non-finite training loss at step \(step) (epoch \(epoch + 1)), first seen on rank \(rank). "
                + "Last good checkpoint: \(last ?? "none"). Hint: lower the learning rate or check the data normalisation."
        case let .nonFiniteParameters(when, tensors, last):
            return "non-finite parameters \(when): \(tensors). Nothing was written with them. Last good checkpoint: \(last ?? "none"). "
                + "Hint: the run diverged: lower the learning rate (or add warm-up), check the data normalisation, and resume from the last good checkpoint."
        case let .modelMismatch(m):
            return "ranks built different models: \(m). Hint: every rank must run the same binary with the same config."
        case let .replicasDiverged(m):
            return "model replicas differ between ranks: \(m). Hint: this is a bug; please report it with the run folder."
        case let .resume(m):
            return "cannot resume: \(m)"
        }
    }
}

