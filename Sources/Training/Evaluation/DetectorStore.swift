import Datasets
import Distributed
import Foundation
import NeuralNetwork
import OODDetection
import SafeTensors
import TensorCore

/// Saving and reloading fitted detectors (`reports/detector/`), and scoring new inputs.
public enum DetectorStore {
    static func bits(_ v: [Double]) -> [Int64] { v.map { Int64(bitPattern: $0.bitPattern) } }
    static func unbits(_ v: [Int64]) -> [Double] { v.map { Double(bitPattern: UInt64(bitPattern: $0)) } }

    /// Writes `detector.safetensors` into `dir` (rank 0): Double statistics stored exactly as
    /// their I64 bit patterns, the KNN bank as F32, and the (tuned) `evaluate` settings as JSON
    /// in the metadata, so `umtrain score` scores new inputs exactly as the evaluation did.
    public static func write(_ r: OODReport, config: RunConfig, to dir: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let f = r.fitted
        var records: [SafeTensorsRecord] = []
        if !f.classMeans.isEmpty {
            records.append(SafeTensorsRecord(name: "mahalanobis.class_means_f64bits", shape: [f.classMeans.count], int64s: bits(f.classMeans)))
            records.append(SafeTensorsRecord(name: "mahalanobis.covariance_f64bits", shape: [f.covariance.count], int64s: bits(f.covariance)))
        }
        if !f.bankFeatures.isEmpty {
            records.append(SafeTensorsRecord(name: "knn.bank", shape: [f.bankFeatures.count / max(f.featureDim, 1), f.featureDim],
                                             floats: f.bankFeatures))
        }
        if let t = f.reactThreshold {
            records.append(SafeTensorsRecord(name: "react.threshold_f64bits", shape: [1], int64s: bits([t])))
        }
        if !f.trainMean.isEmpty {
            records.append(SafeTensorsRecord(name: "fdbd.train_mean_f64bits", shape: [f.trainMean.count], int64s: bits(f.trainMean)))
        }
        if f.rmds != nil {
            records.append(SafeTensorsRecord(name: "rmds.class_means_f64bits", shape: [f.classMeans.count], int64s: bits(f.classMeans)))
            records.append(SafeTensorsRecord(name: "rmds.covariance_f64bits", shape: [f.covariance.count], int64s: bits(f.covariance)))
            records.append(SafeTensorsRecord(name: "rmds.background_mean_f64bits", shape: [f.backgroundMean.count], int64s: bits(f.backgroundMean)))
            records.append(SafeTensorsRecord(name: "rmds.background_covariance_f64bits", shape: [f.backgroundCovariance.count],
                                             int64s: bits(f.backgroundCovariance)))
        }
        if let v = f.vim {
            records.append(SafeTensorsRecord(name: "vim.origin_f64bits", shape: [v.origin.count], int64s: bits(v.origin)))
            records.append(SafeTensorsRecord(name: "vim.residual_basis_f64bits", shape: [v.residualBasis.count], int64s: bits(v.residualBasis)))
            records.append(SafeTensorsRecord(name: "vim.alpha_dim_f64bits", shape: [2], int64s: bits([v.alpha, Double(v.dim)])))
        }
        if let g = f.nnguide {
            records.append(SafeTensorsRecord(name: "nnguide.bank_f64bits", shape: [g.bank.count], int64s: bits(g.bank)))
        }
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let settings = String(decoding: try enc.encode(r.settings), as: UTF8.self)
        try AtomicFile.write(try SafeTensorsFile(records: records, metadata: ["settings": settings, "feature_dim": String(f.featureDim),
                                                                             "num_classes": String(config.model.numClasses)]).encode(),
                             to: dir + "/detector.safetensors")
    }

    /// Reloads a detector written by ``write(_:config:to:)``.
    /// - Throws: ``ConfigError`` naming the file when its metadata is missing; safetensors errors.
    /// - Parameter model: the model whose head ViM and NNGuide use (their stored state is
    ///   relative to it).
    public static func read(_ dir: String, model: Classifier? = nil) throws -> (OODEvaluation.Fitted, EvaluateSection) {
        let path = dir + "/detector.safetensors"
        let file = try SafeTensorsFile.read(path: path)
        guard let json = file.metadata["settings"], let settings = try? JSONDecoder().decode(EvaluateSection.self, from: Data(json.utf8)),
              let dim = Int(file.metadata["feature_dim"] ?? "") else {
            throw ConfigError.invalidValue(file: path, key: "metadata", expected: "settings and feature_dim written by umtrain evaluate",
                                           actual: "missing", hint: "re-run `umtrain evaluate` to write reports/detector/.")
        }
        var f = OODEvaluation.Fitted()
        f.featureDim = dim
        if let m = file.record(named: "mahalanobis.class_means_f64bits"), let c = file.record(named: "mahalanobis.covariance_f64bits") {
            f.classMeans = unbits(try m.int64s())
            f.covariance = unbits(try c.int64s())
            f.mahalanobis = try MahalanobisDetector(classMeans: f.classMeans, covariance: f.covariance, featureDim: dim,
                                                    ridge: settings.mahalanobisRidge)
        }
        if let b = file.record(named: "knn.bank") {
            f.bankFeatures = try b.floats()
            f.knn = KNNDetector(trainingFeatures: f.bankFeatures, featureDim: dim, k: min(settings.knnK, f.bankFeatures.count / max(dim, 1)))
        }
        if let t = file.record(named: "react.threshold_f64bits") { f.reactThreshold = unbits(try t.int64s()).first }
        if let m = file.record(named: "fdbd.train_mean_f64bits") { f.trainMean = unbits(try m.int64s()) }
        if let m = file.record(named: "rmds.class_means_f64bits"), let c = file.record(named: "rmds.covariance_f64bits"),
           let bm = file.record(named: "rmds.background_mean_f64bits"), let bc = file.record(named: "rmds.background_covariance_f64bits") {
            f.rmds = try RMDSDetector(classMeans: unbits(try m.int64s()), covariance: unbits(try c.int64s()),
                                      backgroundMean: unbits(try bm.int64s()), backgroundCovariance: unbits(try bc.int64s()), featureDim: dim,
                                      ridge: settings.mahalanobisRidge)
        }
        if let model {
            let head = OODEvaluation.head(model)
            if let o = file.record(named: "vim.origin_f64bits"), let b = file.record(named: "vim.residual_basis_f64bits"),
               let a = file.record(named: "vim.alpha_dim_f64bits") {
                let ad = unbits(try a.int64s())
                f.vim = ViMDetector(head: head, dim: Int(ad[1]), origin: unbits(try o.int64s()), residualBasis: unbits(try b.int64s()), alpha: ad[0])
            }
            if let b = file.record(named: "nnguide.bank_f64bits") {
                let bank = unbits(try b.int64s())
                f.nnguide = NNGuideDetector(bank: bank, head: head, k: min(settings.nnguideK, bank.count / max(dim, 1)))
            }
        }
        return (f, settings)
    }

    /// Scores every image of `dataset` with the saved detectors (higher = ID). Collective.
    public static func score(model: Classifier, comm: Communicator, dataset: SampleSet, normalizer: ChannelNormalizer,
                             fitted: OODEvaluation.Fitted, settings: EvaluateSection) throws -> SetScores {
        let data = TrainingData(trainSet: dataset, trainIds: [], validationIds: [], testSet: dataset, normalizer: normalizer)
        var kinds = settings.scores
        if fitted.mahalanobis == nil { kinds.removeAll { $0 == .mahalanobis } }
        if fitted.knn == nil { kinds.removeAll { $0 == .knn } }
        if fitted.reactThreshold == nil { kinds.removeAll { $0 == .react } }
        if fitted.trainMean.isEmpty { kinds.removeAll { $0 == .fdbd } }
        if fitted.rmds == nil { kinds.removeAll { $0 == .rmds } }
        if fitted.vim == nil { kinds.removeAll { $0 == .vim } }
        if fitted.nnguide == nil { kinds.removeAll { $0 == .nnguide } }
        return try OODEvaluation.score(model: model, comm: comm, data: data, dataset: dataset, ids: dataset.ids, e: settings,
                                       fitted: fitted, kinds: kinds)
    }
}
