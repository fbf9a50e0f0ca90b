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
        /// Class means `[C, D]` and the shared covariance `[D, D]` (Double), D, and the number
        /// of training rows over all ranks (KNN and NNGuide hold only this rank's shard of the bank).
        var classMeans: [Double] = []
        var covariance: [Double] = []
        var featureDim = 0
        var trainCount = 0
        public init() {}
    }

    /// ViM's subspace dimension: `configured`, or the paper's rule when 0 (1000 for D >= 2048,
    /// 512 for D = 768, D / 2 otherwise), at most D - 1.
    static func vimDimension(_ configured: Int, featureDim d: Int) -> Int {
        let rule = d >= 2048 ? 1000 : d == 768 ? 512 : d / 2
        return max(1, min(configured > 0 ? configured : rule, d - 1))
    }

    /// Fits the feature-based detectors that `kinds` need from the training ids' penultimate
    /// features, which stay split across ranks (``TrainingShard``): KNN and NNGuide keep their
    /// shard of the bank and merge top-k lists at scoring time; the statistics (class means and
    /// covariance, the background Gaussian, ViM's moment and alpha, fDBD's mean) are summed in
    /// Double in id order by ``ShardReduce/chain(_:comm:_:)``; ReAct's percentile is an exact
    /// distributed selection. Every rank fits the same detector, bitwise, for any world size, and
    /// never from test or OOD data (pitfalls F10). Collective.
    ///
    /// - Returns: the fitted detectors (empty when no kind needs training features).
    /// - Throws: communicator errors; Mahalanobis errors for an empty class or a singular covariance.
    static func fit(model: Classifier, comm: Communicator, data: TrainingData, e: EvaluateSection, kinds: [ScoreKind],
                    numClasses: Int, cost: EvaluationCost = EvaluationCost()) throws -> Fitted {
        guard kinds.contains(where: \.needsTrainingFeatures) else { return Fitted() }
        let shard = try trainingShard(model: model, comm: comm, data: data, batchSize: e.batchSize, cost: cost)
        return try fit(shard: shard, model: model, comm: comm, e: e, kinds: kinds, numClasses: numClasses, cost: cost)
    }

    /// Fits from an extracted shard (tuning builds several candidates from one). Collective.
    static func fit(shard: TrainingShard, model: Classifier, comm: Communicator, e: EvaluateSection, kinds: [ScoreKind],
                    numClasses: Int, cost: EvaluationCost = EvaluationCost()) throws -> Fitted {
        var fitted = Fitted()
        let dim = shard.featureDim, features = shard.features, n = shard.totalCount
        fitted.featureDim = dim
        fitted.trainCount = n
        // The class Gaussians (class means, one shared covariance): fitted once for Mahalanobis and RMDS.
        var classGaussians: MahalanobisDetector?
        if kinds.contains(.mahalanobis) || kinds.contains(.rmds) {
            try cost.time(kinds.contains(.mahalanobis) ? "mahalanobis: fit" : "rmds: fit") {
                var sums = ClassFeatureSums(numClasses: numClasses, featureDim: dim)
                var state = sums.sums + sums.counts.map(Double.init)
                try ShardReduce.chain(&state, comm: comm) { st in
                    sums.sums = Array(st[0..<(numClasses * dim)])
                    sums.counts = st[(numClasses * dim)...].map { Int64($0) }
                    sums.accumulate(features: features, labels: shard.labels)
                    st = sums.sums + sums.counts.map(Double.init)
                }
                sums.sums = Array(state[0..<(numClasses * dim)])
                sums.counts = state[(numClasses * dim)...].map { Int64($0) }
                let means = try sums.means()
                var scatter = CentredScatter(featureDim: dim)
                var scatterState = scatter.scatter + [0]
                try ShardReduce.chain(&scatterState, comm: comm) { st in
                    scatter.scatter = Array(st[0..<(dim * dim)])
                    scatter.count = Int64(st[dim * dim])
                    scatter.accumulate(features: features, labels: shard.labels, classMeans: means)
                    st = scatter.scatter + [Double(scatter.count)]
                }
                scatter.scatter = Array(scatterState[0..<(dim * dim)])
                scatter.count = Int64(scatterState[dim * dim])
                classGaussians = try MahalanobisDetector(classSums: sums, scatter: scatter, ridge: e.mahalanobisRidge)
                fitted.classMeans = means
                fitted.covariance = scatter.covariance()
            }
        }
        if kinds.contains(.mahalanobis) { fitted.mahalanobis = classGaussians }
        if kinds.contains(.rmds) { try cost.time("rmds: fit") {
            var mean = [Double](repeating: 0, count: dim)
            try ShardReduce.chain(&mean, comm: comm) { RMDSDetector.accumulateSum(&$0, features: features, featureDim: dim) }
            for j in 0..<dim { mean[j] /= Double(max(n, 1)) }
            var cov = [Double](repeating: 0, count: dim * dim)
            try ShardReduce.chain(&cov, comm: comm) { RMDSDetector.accumulateScatter(&$0, features: features, featureDim: dim, mean: mean) }
            for j in 0..<(dim * dim) { cov[j] /= Double(max(n, 1)) }
            fitted.rmds = try RMDSDetector(classes: classGaussians!, backgroundMean: mean, backgroundCovariance: cov, ridge: e.mahalanobisRidge)
            fitted.backgroundMean = mean
            fitted.backgroundCovariance = cov
        } }
        let head = OODEvaluation.head(model)
        if kinds.contains(.vim) { try cost.time("vim: fit") {
            let vimDim = vimDimension(e.vimDim, featureDim: dim)
            let doubles = features.map(Double.init)
            let u = try ViMDetector.origin(head: head)
            var moment = [Double](repeating: 0, count: dim * dim)
            try ShardReduce.chain(&moment, comm: comm) { ViMDetector.accumulateMoment(&$0, features: doubles, origin: u) }
            for j in 0..<(dim * dim) { moment[j] /= Double(n) }
            let basis = ViMDetector.residualBasis(moment: moment, featureDim: dim, dim: vimDim)
            var sums = [0.0, 0.0]
            try ShardReduce.chain(&sums, comm: comm) { ViMDetector.accumulateAlpha(&$0, features: doubles, head: head, origin: u, basis: basis) }
            fitted.vim = ViMDetector(head: head, dim: vimDim, origin: u, residualBasis: basis,
                                     alpha: (sums[0] / Double(n)) / (sums[1] / Double(n)))
        } }
        if kinds.contains(.nnguide) { cost.time("nnguide: fit") {
            fitted.nnguide = NNGuideDetector(bank: NNGuideDetector.bank(features: features.map(Double.init), ids: shard.ids, head: head),
                                             head: head, k: min(e.nnguideK, n))
        } }
        if kinds.contains(.knn) { cost.time("knn: fit") {
            fitted.knn = KNNDetector(bank: KNNDetector.bank(features: features, ids: shard.ids, featureDim: dim), k: min(e.knnK, n))
        } }
        if kinds.contains(.fdbd) { try cost.time("fdbd: fit") {
            var mean = [Double](repeating: 0, count: dim)
            try ShardReduce.chain(&mean, comm: comm) { RMDSDetector.accumulateSum(&$0, features: features, featureDim: dim) }
            fitted.trainMean = mean.map { $0 / Double(max(n, 1)) }
        } }
        if kinds.contains(.react) { try cost.time("react: fit") {
            fitted.reactThreshold = try ShardReduce.percentile(features, e.reactPercentile, comm: comm)
        } }
        return fitted
    }
}
