import Foundation

/// Errors that stop training.
public enum TrainingError: Error, CustomStringConvertible {
    case nonFiniteLoss(step: Int, epoch: Int, rank: Int, lastCheckpoint: String?)
    case modelMismatch(String)
    case replicasDiverged(String)
    case resume(String)

    public var description: String {
        switch self {
        case let .nonFiniteLoss(step, epoch, rank, last):
            return "non-finite training loss at step \(step) (epoch \(epoch + 1)), first seen on rank \(rank). "
                + "Last good checkpoint: \(last ?? "none"). Hint: lower the learning rate or check the data normalisation."
        case let .modelMismatch(m):
            return "ranks built different models: \(m). Hint: every rank must run the same binary with the same config."
        case let .replicasDiverged(m):
            return "model replicas differ between ranks: \(m). Hint: this is a bug; please report it with the run folder."
        case let .resume(m):
            return "cannot resume: \(m)"
        }
    }
}

