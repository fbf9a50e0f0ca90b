import Datasets
import Distributed
import Foundation
import NeuralNetwork
import OODDetection
import SafeTensors
import TensorCore

/// Per-sample scores of one set for every score kind, in ascending sample-id order.
public struct SetScores: Sendable {
    public var ids: [Int64]
    /// Per score kind, one value per id (higher = more in-distribution).
    public var scores: [ScoreKind: [Double]]
    /// Mean cross-entropy and accuracy from the same forward pass (the ID test set only).
    public var classification: EvaluationResult?

    public init(ids: [Int64], scores: [ScoreKind: [Double]], classification: EvaluationResult? = nil) {
        self.ids = ids
        self.scores = scores
        self.classification = classification
    }

    /// The per-sample score file (`scores/<set>.csv`, `umtrain score`): a header `id,<score>...`,
    /// then one line per id with each score in `columns` order (Swift's shortest round-trip
    /// decimal form). `umtrain metrics` reads it back.
    public func csv(columns: [ScoreKind]) -> String {
        let kinds = columns.filter { scores[$0] != nil }
        var t = "id," + kinds.map(\.rawValue).joined(separator: ",") + "\n"
        for (i, id) in ids.enumerated() {
            t += "\(id)," + kinds.map { String(scores[$0]![i]) }.joined(separator: ",") + "\n"
        }
        return t
    }
}

/// Per-sample OOD scores of a set, computed in fixed batches over the ranks and gathered by id.
extension OODEvaluation {
    /// Scores `ids` of `dataset` on this rank's batches (fixed batches of consecutive ids, the
    /// same for any world size), then gathers by id. Collective.
    ///
    /// - Parameters:
    ///   - e: batch size, temperatures and ODIN's settings.
    ///   - fitted: the detectors the feature scores need (Mahalanobis, KNN, ReAct).
    ///   - kinds: the scores to compute.
    ///   - classify: also return the mean cross-entropy and accuracy against the set's labels,
    ///     from the same forward pass (as ``Evaluator/evaluate(model:comm:data:dataset:ids:batchSize:augmentedEpoch:onBatch:)``
    ///     computes them: per-sample losses summed in Double in id order), for the ID test set.
    /// - Returns: per-sample scores in ascending id order, identical on every rank.
    static func score(model: Classifier, comm: Communicator, data: TrainingData, dataset: SampleSet, ids: [Int],
                      e: EvaluateSection, fitted: Fitted, kinds: [ScoreKind], classify: Bool = false,
                      cost: EvaluationCost = EvaluationCost()) throws -> SetScores {
        let schedule = EvaluationSchedule(ids: ids, batchSize: e.batchSize, worldSize: comm.worldSize)
        var myIds: [Int64] = [], myLoss: [Double] = [], myPred: [Int64] = []
        var mine: [ScoreKind: [Double]] = [:]
        for k in kinds { mine[k] = [] }
        let k = model.classifier.outFeatures
        let myBatches = schedule.batches(rank: comm.rank).filter { !$0.isEmpty }
        // The head in Double (and fDBD's boundary norms) once per set, not once per batch.
        let head = kinds.contains(where: { [.fdbd, .ash, .scale].contains($0) }) ? Self.head(model) : nil
        let fdbd = kinds.contains(.fdbd) ? FDBDDetector(head: head!, trainMean: fitted.trainMean) : nil
        // KNN and NNGuide search a bank split across ranks: every rank needs every query, so their
        // features are gathered by id after the forward passes and searched in chunks.
        let needsAllQueries = kinds.contains(.knn) || kinds.contains(.nnguide)
        var myFeatures: [Float] = []
        try data.forEachBatch(dataset, dataset.positionBatches(myBatches.map(\.ids))) { b, x, labels in
            let eb = myBatches[b]
            let logits = cost.time("forward") { model.forward(x, context: .eval) }
            if classify {
                cost.time("ID accuracy") {
                    myLoss += softmaxCrossEntropy(logits: logits, labels: labels).perSampleLoss.map(Double.init)
                    myPred += argmaxRows(logits).map(Int64.init)
                }
            }
            let z = logits.scalars
            let features = model.penultimateFeatures!.scalars
            myIds += eb.ids.map(Int64.init)
            if needsAllQueries { myFeatures += features }
            // ODIN reuses this forward pass for its input gradient (before anything else runs a
            // forward through the model and replaces the cached activations).
            let odinScores = kinds.contains(.odin)
                ? try cost.time("odin: backward + forward") { try odin(model: model, x: x, logits: logits, e: e, data: data) } : []
            for kind in kinds {
                switch kind {
                case .msp, .maxLogit, .energy:
                    mine[kind]! += cost.time("\(kind.rawValue): from logits") { logitScores(kind, logits: z, numClasses: k, e: e) }
                case .mahalanobis: mine[kind]! += cost.time("mahalanobis: distances") { fitted.mahalanobis!.scores(features: features) }
                case .knn, .nnguide: break  // after the gather, below
                case .react:
                    mine[kind]! += cost.time("react: clip + head") {
                        var clipped = features
                        ReAct.clip(&clipped, threshold: fitted.reactThreshold!)
                        let d = clipped.count / max(eb.ids.count, 1)
                        let head = model.classifier.forward(Tensor(shape: [eb.ids.count, d], values: clipped), context: .eval)
                        return LogitScore.energy(logits: head.scalars, numClasses: k, temperature: e.energyTemperature)
                    }
                case .odin:
                    mine[kind]! += odinScores
                case .gen:
                    mine[kind]! += cost.time("gen: from logits") { GEN.scores(logits: z, numClasses: k, gamma: e.genGamma, m: e.genM) }
                case .fdbd:
                    mine[kind]! += cost.time("fdbd: distances") { fdbd!.scores(features: features) }
                case .ash:
                    mine[kind]! += cost.time("ash: shape + head") { e.ashShaping.scores(features: features, head: head!, percentile: e.ashPercentile) }
                case .scale:
                    mine[kind]! += cost.time("scale: shape + head") {
                        ActivationShaping.scale.scores(features: features, head: head!, percentile: e.scalePercentile)
                    }
                case .rmds: mine[kind]! += cost.time("rmds: distances") { fitted.rmds!.scores(features: features) }
                case .vim: mine[kind]! += cost.time("vim: residuals") { fitted.vim!.scores(features: features.map(Double.init)) }
                }
            }
        }
        var queries: [Float] = []
        var result = try cost.time("gather by id") {
            let gathered = try GatherByID(localIDs: myIds, comm: comm)
            var result = SetScores(ids: gathered.ids, scores: [:])
            for kind in kinds where kind != .knn && kind != .nnguide {
                result.scores[kind] = try gathered.gather(mine[kind]!, comm: comm)
            }
            if needsAllQueries { queries = try gathered.gatherRows(myFeatures, width: fitted.featureDim, comm: comm) }
            if classify {
                let losses = try gathered.gather(myLoss, comm: comm), preds = try gathered.gather(myPred, comm: comm)
                let labelOf = dataset.labelsById()
                var lossSum = 0.0, correct = 0
                for (i, id) in gathered.ids.enumerated() {
                    lossSum += losses[i]
                    if Int(preds[i]) == labelOf[Int(id)]! { correct += 1 }
                }
                let n = gathered.ids.count
                result.classification = EvaluationResult(loss: lossSum / Double(max(n, 1)), accuracy: Double(correct) / Double(max(n, 1)),
                                                         count: n, ids: gathered.ids, losses: losses, predictions: preds)
            }
            return result
        }
        if let knn = fitted.knn, kinds.contains(.knn) {
            result.scores[.knn] = try cost.time("knn: search") {
                try knn.scores(features: queries) { try ShardReduce.topK($0, metric: .squaredDistance, comm: comm) }
            }
        }
        if let guide = fitted.nnguide, kinds.contains(.nnguide) {
            result.scores[.nnguide] = try cost.time("nnguide: search") {
                try guide.scores(features: queries.map(Double.init)) { try ShardReduce.topK($0, metric: .dot, comm: comm) }
            }
        }
        return result
    }

    /// The model's last linear layer as a Double `LinearHead` (GEN needs none; fDBD, ASH and
    /// SCALE read the logits of reshaped features through it).
    static func head(_ model: Classifier) -> LinearHead {
        let w = model.classifier.weight.value.scalars.map(Double.init)
        let b = model.classifier.bias.map { $0.value.scalars.map(Double.init) } ?? [Double](repeating: 0, count: model.classifier.outFeatures)
        return LinearHead(weight: w, bias: b)
    }

    /// The scores computed from the logits alone, `[N]` for logits `[N, K]`: MSP as the log of
    /// the maximum softmax probability (nats, <= 0; the same ranking as the probability, but a
    /// logit gap above about 37 no longer rounds to exactly 1, which would tie the most confident
    /// samples), MaxLogit, and Energy at `evaluate.energy_temperature`.
    /// Precondition: `kind` is `.msp`, `.maxLogit` or `.energy`.
    static func logitScores(_ kind: ScoreKind, logits z: [Float], numClasses k: Int, e: EvaluateSection) -> [Double] {
        switch kind {
        case .msp: return LogitScore.logMaxSoftmax(logits: z, numClasses: k)
        case .maxLogit: return LogitScore.maxLogit(logits: z, numClasses: k)
        case .energy: return LogitScore.energy(logits: z, numClasses: k, temperature: e.energyTemperature)
        default: preconditionFailure("\(kind) is not computed from the logits alone")
        }
    }

    /// ODIN: temperature-scaled MSP (in log space, as `logitScores`) after a gradient-sign input step that increases the max
    /// softmax: x' = x - (eps / std_c) * sign(dL/dx), L = -log S_yhat(x; T) (Liang et al. 2018,
    /// Eq. 2). The input gradient is computed in inference mode without touching or reducing
    /// parameter gradients.
    static func odin(model: Classifier, x: Tensor, logits: Tensor, e: EvaluateSection, data: TrainingData) throws -> [Double] {
        // `logits` come from the preceding inference-mode forward of `x` (parameter gradients
        // off), whose cached activations the backward below uses.
        let n = x.shape[0]
        let k = logits.shape[1]
        let t = e.odinTemperature
        var grad = Tensor(zeros: [n, k])
        logits.withUnsafeBufferPointer { z in
            grad.withUnsafeMutableBufferPointer { g in
                for i in 0..<n {
                    var m = -Double.infinity, arg = 0
                    for j in 0..<k where Double(z[i * k + j]) > m { m = Double(z[i * k + j]); arg = j }
                    var s = 0.0
                    for j in 0..<k { s += exp((Double(z[i * k + j]) - m) / t) }
                    for j in 0..<k {
                        let p = exp((Double(z[i * k + j]) - m) / t) / s
                        g[i * k + j] = Float((p - (j == arg ? 1 : 0)) / t)
                    }
                }
            }
        }
        let dx = model.backward(grad)
        var perturbed = x.scalars
        ODIN.perturb(&perturbed, lossGradient: dx.scalars, epsilon: e.odinEpsilon, channels: x.shape[1],
                     planeSize: x.shape[2] * x.shape[3], channelStd: data.normalizer.std)
        let after = model.forward(Tensor(shape: x.shape, values: perturbed), context: .eval)
        return LogitScore.logMaxSoftmax(logits: after.scalars, numClasses: k, temperature: t)
    }
}
