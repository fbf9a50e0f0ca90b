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

    /// Writes `detector.safetensors` into `dir`: Double statistics and the (normalised) KNN and
    /// NNGuide banks stored exactly as their I64 bit patterns, with the banks' sample ids, and the
    /// (tuned) `evaluate` settings as JSON in the metadata, so `umtrain score` scores new inputs
    /// exactly as the evaluation did. The banks are split across ranks: rank 0 collects them one
    /// shard at a time (broadcast by its owner) and writes the file. Collective.
    public static func write(_ r: OODReport, config: RunConfig, to dir: String, comm: Communicator) throws {
        let f = r.fitted
        let knnRows = try f.knn.map { try gatherToRoot($0.bank.rows, comm: comm) } ?? []
        let knnIds = try f.knn.map { try gatherToRoot($0.bank.ids, comm: comm) } ?? []
        let guideRows = try f.nnguide.map { try gatherToRoot($0.bank.rows, comm: comm) } ?? []
        let guideIds = try f.nnguide.map { try gatherToRoot($0.bank.ids, comm: comm) } ?? []
        guard comm.rank == 0 else { return }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var records: [SafeTensorsRecord] = []
        if !f.classMeans.isEmpty {
            records.append(SafeTensorsRecord(name: "mahalanobis.class_means_f64bits", shape: [f.classMeans.count], int64s: bits(f.classMeans)))
            records.append(SafeTensorsRecord(name: "mahalanobis.covariance_f64bits", shape: [f.covariance.count], int64s: bits(f.covariance)))
        }
        if f.knn != nil {
            records.append(SafeTensorsRecord(name: "knn.bank_f64bits", shape: [knnIds.count, f.featureDim], int64s: bits(knnRows)))
            records.append(SafeTensorsRecord(name: "knn.ids", shape: [knnIds.count], int64s: knnIds))
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
        if f.nnguide != nil {
            records.append(SafeTensorsRecord(name: "nnguide.bank_f64bits", shape: [guideRows.count], int64s: bits(guideRows)))
            records.append(SafeTensorsRecord(name: "nnguide.ids", shape: [guideIds.count], int64s: guideIds))
        }
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let settings = String(decoding: try enc.encode(r.settings), as: UTF8.self)
        try AtomicFile.write(try SafeTensorsFile(records: records, metadata: ["settings": settings, "feature_dim": String(f.featureDim),
                                                                             "num_classes": String(config.model.numClasses)]).encode(),
                             to: dir + "/detector.safetensors")
    }

    /// Rank 0 receives every rank's array concatenated in rank order; other ranks get an empty
    /// array. Collective.
    static func gatherToRoot<T: CollectiveScalar>(_ local: [T], comm: Communicator) throws -> [T] {
        try comm.gatherToRoot(local).flatMap { $0 }
    }

    /// This rank's contiguous share `[n r / W, n (r + 1) / W)` of a bank of n rows `[n, D]`.
    static func shard(rows: [Double], ids: [Int64], featureDim d: Int, rank: Int, worldSize: Int) -> FeatureBank {
        let range = TrainingShard.batchRange(batchCount: ids.count, rank: rank, worldSize: worldSize)
        return FeatureBank(rows: Array(rows[(range.lowerBound * d)..<(range.upperBound * d)]), ids: Array(ids[range]), featureDim: d)
    }

    /// Reloads a detector written by ``write(_:config:to:comm:)``; each rank keeps its share of
    /// the KNN and NNGuide banks (a file from before the banks were stored normalised, `knn.bank`
    /// in F32, is normalised on reading).
    /// - Throws: ``ConfigError`` naming the file when its metadata is missing; safetensors errors.
    /// - Parameters:
    ///   - model: the model whose head ViM and NNGuide use (their stored state is relative to it).
    ///   - rank, worldSize: which share of the banks to keep (default: all of it).
    public static func read(_ dir: String, model: Classifier? = nil, rank: Int = 0, worldSize: Int = 1) throws
        -> (OODEvaluation.Fitted, EvaluateSection) {
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
        if let b = file.record(named: "knn.bank_f64bits"), let i = file.record(named: "knn.ids") {
            let ids = try i.int64s()
            f.trainCount = ids.count
            f.knn = KNNDetector(bank: shard(rows: unbits(try b.int64s()), ids: ids, featureDim: dim, rank: rank, worldSize: worldSize),
                                k: min(settings.knnK, ids.count))
        } else if let b = file.record(named: "knn.bank") {
            let raw = try b.floats()
            let n = raw.count / max(dim, 1)
            f.trainCount = n
            f.knn = KNNDetector(bank: shard(rows: KNNDetector.normalisedRows(raw, dim), ids: (0..<Int64(n)).map { $0 }, featureDim: dim,
                                            rank: rank, worldSize: worldSize), k: min(settings.knnK, n))
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
                let rows = unbits(try b.int64s())
                let n = rows.count / max(dim, 1)
                let ids = try file.record(named: "nnguide.ids")?.int64s() ?? (0..<Int64(n)).map { $0 }
                f.nnguide = NNGuideDetector(bank: shard(rows: rows, ids: ids, featureDim: dim, rank: rank, worldSize: worldSize), head: head,
                                            k: min(settings.nnguideK, n))
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
