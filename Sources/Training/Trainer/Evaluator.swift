import Datasets
import Distributed
import Foundation
import NeuralNetwork
import TensorCore

/// Per-epoch or per-evaluation results.
public struct EvaluationResult: Sendable, Equatable {
    /// Mean cross-entropy in nats, summed in Double in sample-id order.
    public var loss: Double
    /// Fraction correct.
    public var accuracy: Double
    public var count: Int
    /// Per-sample values in ascending id order (identical for any world size).
    public var ids: [Int64]
    public var losses: [Double]
    public var predictions: [Int64]
}

/// Exact distributed evaluation: fixed batches of consecutive sample ids (the same batches
/// whatever the world size) dealt round-robin to ranks, per-sample results gathered by id and
/// reduced in ascending id order in Double. Results are identical for any number of ranks.
public enum Evaluator {
    /// Evaluates `model` (inference mode) on `ids` of `dataset`. Collective.
    /// A lazily loaded folder is decoded a few batches ahead on a loader thread.
    ///
    /// - Parameters:
    ///   - batchSize: the fixed evaluation batch (not per rank).
    ///   - augmentedEpoch: evaluate the training view of this epoch (augmentation on, keyed by
    ///     (seed, epoch, id)) instead of the plain images; nil = no augmentation.
    ///   - featureSink: optional; receives each batch's ids and the model's penultimate
    ///     features `[n, D]` on the rank that computed them (for detectors).
    /// - Returns: per-sample losses (nats) and predictions in ascending id order.
    /// - Throws: communicator errors; decoding errors of a lazy folder (naming the file).
    public static func evaluate(model: Classifier, comm: Communicator, data: TrainingData, dataset: SampleSet,
                                ids: [Int], batchSize: Int, augmentedEpoch: Int? = nil,
                                onBatch: ((_ ids: [Int], _ logits: Tensor) -> Void)? = nil) throws -> EvaluationResult {
        let schedule = EvaluationSchedule(ids: ids, batchSize: batchSize, worldSize: comm.worldSize)
        var myIds: [Int64] = [], myLoss: [Double] = [], myPred: [Int64] = []
        let mine = schedule.batches(rank: comm.rank).filter { !$0.isEmpty }
        let positions = dataset.positionBatches(mine.map(\.ids))
        try data.forEachBatch(dataset, positions, augmentedEpoch: augmentedEpoch) { k, x, labels in
            let eb = mine[k]
            let logits = model.forward(x, context: .eval)
            onBatch?(eb.ids, logits)
            let ce = softmaxCrossEntropy(logits: logits, labels: labels)
            myIds += eb.ids.map(Int64.init)
            myLoss += ce.perSampleLoss.map(Double.init)
            myPred += argmaxRows(logits).map(Int64.init)
        }
        let gathered = try GatherByID(localIDs: myIds, comm: comm)
        let losses = try gathered.gather(myLoss, comm: comm)
        let preds = try gathered.gather(myPred, comm: comm)
        var lossSum = 0.0
        var correct = 0
        let labelOf = dataset.labelsById()
        for (i, id) in gathered.ids.enumerated() {
            lossSum += losses[i]
            if Int(preds[i]) == labelOf[Int(id)]! { correct += 1 }
        }
        let sortedIds = gathered.ids
        let n = sortedIds.count
        return EvaluationResult(loss: lossSum / Double(max(n, 1)), accuracy: Double(correct) / Double(max(n, 1)), count: n,
                                ids: sortedIds, losses: losses, predictions: preds)
    }
}
