import Datasets
import Distributed
import Foundation
import NeuralNetwork
import TensorCore

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
        let allIds = try myIds.withUnsafeBufferPointer { try comm.allgatherv($0) }.values
        let allLoss = try myLoss.withUnsafeBufferPointer { try comm.allgatherv($0) }.values
        let allPred = try myPred.withUnsafeBufferPointer { try comm.allgatherv($0) }.values
        let order = allIds.indices.sorted { allIds[$0] < allIds[$1] }
        var sortedIds: [Int64] = [], losses: [Double] = [], preds: [Int64] = []
        sortedIds.reserveCapacity(order.count)
        var lossSum = 0.0
        var correct = 0
        let labelOf = dataset.labelsById()
        for i in order {
            sortedIds.append(allIds[i])
            losses.append(allLoss[i])
            preds.append(allPred[i])
            lossSum += allLoss[i]
            if Int(allPred[i]) == labelOf[Int(allIds[i])]! { correct += 1 }
        }
        let n = sortedIds.count
        return EvaluationResult(loss: lossSum / Double(max(n, 1)), accuracy: Double(correct) / Double(max(n, 1)), count: n,
                                ids: sortedIds, losses: losses, predictions: preds)
    }
}
