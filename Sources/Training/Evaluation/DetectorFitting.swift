import Datasets
import Distributed
import Foundation
import NeuralNetwork
import OODDetection
import SafeTensors
import TensorCore

/// The feature-based detectors fitted from the training ids' penultimate features.
extension OODEvaluation {
    /// Fitted detector state (saved with every evaluation so `umtrain score` can reuse it).
    public struct Fitted: Sendable {
        var mahalanobis: MahalanobisDetector?
        var knn: KNNDetector?
        var reactThreshold: Double?
        /// fDBD's mean training feature `[D]` (with the model's head at scoring time).
        var trainMean: [Double] = []
        var rmds: RMDSDetector?
        var vim: ViMDetector?
        var nnguide: NNGuideDetector?
        /// RMDS's background Gaussian (mean `[D]`, covariance `[D, D]`).
        var backgroundMean: [Double] = []
        var backgroundCovariance: [Double] = []
        /// Class means `[C, D]` and the shared covariance `[D, D]` (Double), the training
        /// features `[N, D]` (the KNN bank before normalisation) and D.
        var classMeans: [Double] = []
        var covariance: [Double] = []
        var bankFeatures: [Float] = []
        var featureDim = 0
        public init() {}
    }

    /// ViM's subspace dimension: `configured`, or the paper's rule when 0 (1000 for D >= 2048,
    /// 512 for D = 768, D / 2 otherwise), at most D - 1.
    static func vimDimension(_ configured: Int, featureDim d: Int) -> Int {
        let rule = d >= 2048 ? 1000 : d == 768 ? 512 : d / 2
        return max(1, min(configured > 0 ? configured : rule, d - 1))
    }

    /// Fits the feature-based detectors that `kinds` need from the training ids' penultimate
    /// features, gathered by id, so every rank fits the same detector for any world size
    /// (never from test or OOD data: pitfalls F10). Collective.
    ///
    /// - Returns: the fitted detectors (empty when no kind needs training features).
    /// - Throws: communicator errors; Mahalanobis errors for a singular covariance.
    static func fit(model: Classifier, comm: Communicator, data: TrainingData, e: EvaluateSection, kinds: [ScoreKind],
                    numClasses: Int, cost: EvaluationCost = EvaluationCost()) throws -> Fitted {
        var fitted = Fitted()
        guard kinds.contains(where: \.needsTrainingFeatures) else { return fitted }
        let ids = data.trainIds
        let schedule = EvaluationSchedule(ids: ids, batchSize: e.batchSize, worldSize: comm.worldSize)
        var myIds: [Int64] = [], myFeatures: [Float] = []
        var dim = 0
        let myBatches = schedule.batches(rank: comm.rank).filter { !$0.isEmpty }
        try data.forEachBatch(data.trainSet, data.trainSet.positionBatches(myBatches.map(\.ids))) { b, x, _ in
            let eb = myBatches[b]
            _ = cost.time("fit: training-feature forward") { model.forward(x, context: .eval) }
            let f = model.penultimateFeatures!
            dim = f.shape[1]
            myIds += eb.ids.map(Int64.init)
            myFeatures += f.scalars
        }
        let (gathered, features) = try cost.time("fit: gather features") {
            dim = Int(try comm.allreduce(Int64(dim), op: .max))
            let gathered = try GatherByID(localIDs: myIds, comm: comm)
            return (gathered, try gathered.gatherRows(myFeatures, width: dim, comm: comm))
        }
        let labelOf = data.trainSet.labelsById()
        let labels = gathered.ids.map { labelOf[Int($0)]! }
        fitted.featureDim = dim
        // The class Gaussians (class means, one shared covariance): fitted once for Mahalanobis and RMDS.
        var classGaussians: MahalanobisDetector?
        if kinds.contains(.mahalanobis) || kinds.contains(.rmds) {
            try cost.time(kinds.contains(.mahalanobis) ? "mahalanobis: fit" : "rmds: fit") {
                var sums = ClassFeatureSums(numClasses: numClasses, featureDim: dim)
                sums.accumulate(features: features, labels: labels)
                var scatter = CentredScatter(featureDim: dim)
                scatter.accumulate(features: features, labels: labels, classMeans: try sums.means())
                classGaussians = try MahalanobisDetector(classSums: sums, scatter: scatter, ridge: e.mahalanobisRidge)
                fitted.classMeans = try sums.means()
                fitted.covariance = scatter.covariance()
            }
        }
        if kinds.contains(.mahalanobis) { fitted.mahalanobis = classGaussians }
        if kinds.contains(.rmds) { try cost.time("rmds: fit") {
            let bg = RMDSDetector.backgroundGaussian(features: features, featureDim: dim)
            fitted.rmds = try RMDSDetector(classes: classGaussians!, backgroundMean: bg.mean, backgroundCovariance: bg.covariance,
                                           ridge: e.mahalanobisRidge)
            fitted.backgroundMean = bg.mean
            fitted.backgroundCovariance = bg.covariance
        } }
        let head = OODEvaluation.head(model)
        if kinds.contains(.vim) { try cost.time("vim: fit") {
            fitted.vim = try ViMDetector(trainFeatures: features.map(Double.init), head: head, dim: vimDimension(e.vimDim, featureDim: dim))
        } }
        if kinds.contains(.nnguide) { cost.time("nnguide: fit") {
            fitted.nnguide = NNGuideDetector(bankFeatures: features.map(Double.init), head: head, k: min(e.nnguideK, gathered.ids.count))
        } }
        if kinds.contains(.knn) { cost.time("knn: fit") {
            fitted.knn = KNNDetector(trainingFeatures: features, featureDim: dim, k: min(e.knnK, gathered.ids.count))
            fitted.bankFeatures = features
        } }
        if kinds.contains(.fdbd) { cost.time("fdbd: fit") {
            // The mean training feature, summed in Double in id order (identical for any world size).
            var mean = [Double](repeating: 0, count: dim)
            let n = features.count / max(dim, 1)
            for i in 0..<n { for j in 0..<dim { mean[j] += Double(features[i * dim + j]) } }
            fitted.trainMean = mean.map { $0 / Double(max(n, 1)) }
        } }
        if kinds.contains(.react) { cost.time("react: fit") {
            fitted.reactThreshold = ReAct.percentileThreshold(activations: features, percentile: e.reactPercentile)
        } }
        return fitted
    }
}
