import Datasets
import Distributed
import Foundation
import NeuralNetwork
import OODDetection
import SafeTensors
import TensorCore

/// An OOD test set loaded for scoring (in memory, or a lazily decoded folder).
public struct OODSet: Sendable {
    public let name: String
    public let synthetic: Bool
    public let dataset: SampleSet

    public init(name: String, synthetic: Bool, dataset: SampleSet) {
        self.name = name
        self.synthetic = synthetic
        self.dataset = dataset
    }

    public init(name: String, synthetic: Bool, dataset: ImageDataset) {
        self.init(name: name, synthetic: synthetic, dataset: SampleSet(dataset))
    }
}

/// Per-sample scores of one set for every score kind, in ascending sample-id order.
public struct SetScores: Sendable {
    public var ids: [Int64]
    public var scores: [String: [Double]]
}

/// One row of the OOD report.
public struct OODRow: Sendable {
    public var score: String
    public var set: String
    public var synthetic: Bool
    public var metrics: OODMetrics
}

/// The OOD evaluation of one model.
public struct OODReport: Sendable {
    public var idAccuracy: Double
    public var idLoss: Double
    public var rows: [OODRow]
    public var fprMode: FPRMode
    /// Unweighted mean over the REAL OOD sets, per score.
    public var averages: [String: OODMetrics]
    public var scoreOrder: [String]
    public var idScores: SetScores
    public var oodScores: [String: SetScores]
    /// The detectors as fitted (and the settings, tuned or not) for `umtrain score`.
    public var fitted: OODEvaluation.Fitted
    public var settings: EvaluateSection
}

public enum OODEvaluationError: Error, CustomStringConvertible {
    case missingSet(name: String, path: String, key: String)
    case noSets(String)
    /// A set folder that cannot be listed or holds no readable image.
    case unreadableSet(name: String, key: String, reason: String)
    public var description: String {
        switch self {
        case let .unreadableSet(name, key, reason):
            return "OOD set '\(name)' (from \(key)): \(reason)"
        case let .missingSet(name, path, key):
            return "OOD set '\(name)': \(path) does not exist (from \(key)). Hint: run launch/prepare-data.sh, or fix the path."
        case let .noSets(m):
            return "no OOD sets to evaluate: \(m). Hint: set evaluate.ood_manifest to data/manifest.json or list evaluate.ood_sets."
        }
    }
}

/// Post-hoc OOD detection over MPI: every score is oriented so that higher = more
/// in-distribution; each rank scores its share of fixed batches of consecutive sample ids
/// (the same batches whatever the world size), results are gathered by id, and the
/// detectors' statistics (Mahalanobis class means and covariance, the KNN bank, the ReAct
/// threshold) are fitted from training features gathered by id and summed in id order, so
/// per-sample scores and metrics are bitwise identical for any number of ranks.
public enum OODEvaluation {
    /// Loads the OOD sets named by the manifest and/or the explicit list.
    /// - Parameters:
    ///   - resize: shorter side that folder images are resized to before the centre crop to
    ///     `imageSize` (0 = `imageSize`; torchvision ImageNet evaluation uses 256 for 224).
    ///   - loading: how folder sets are read (`auto`: in memory up to 4 GiB decoded per set).
    ///   - comm: with several ranks, folder sets are scanned by rank 0 and checked in shares
    ///     (collective; see `SampleSet.folder`).
    public static func loadSets(_ e: EvaluateSection, imageSize: Int, channels: Int, resize: Int = 0,
                                loading: SampleSet.Loading = .auto, comm: Communicator? = nil) throws -> [OODSet] {
        try loadSets(e, imageSize: imageSize, channels: channels, validation: false, resize: resize, loading: loading, comm: comm)
    }

    /// The OOD test set specs: every `ood` set of the manifest plus `evaluate.ood_sets`.
    static func testSpecs(_ e: EvaluateSection) throws -> [OODSetConfig] {
        var specs: [OODSetConfig] = []
        if !e.oodManifest.isEmpty {
            guard let data = FileManager.default.contents(atPath: e.oodManifest) else {
                throw OODEvaluationError.missingSet(name: "manifest", path: e.oodManifest, key: "evaluate.ood_manifest")
            }
            guard let json = try JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let sets = json["sets"] as? [[String: Any]] else {
                throw ConfigError.invalidValue(file: e.oodManifest, key: "sets", expected: "a list of sets (launch/prepare-data.sh format)",
                                               actual: "missing", hint: "re-run launch/prepare-data.sh")
            }
            let base = (e.oodManifest as NSString).deletingLastPathComponent
            for s in sets where (s["role"] as? String) == "ood" {
                guard let name = s["name"] as? String, let files = s["files"] as? [[String: Any]],
                      let img = files.compactMap({ $0["path"] as? String }).first(where: { $0.contains("images") }) else { continue }
                specs.append(OODSetConfig(name: name, images: base + "/" + img, synthetic: (s["synthetic"] as? Bool) ?? false))
            }
        }
        return specs + e.explicitSets
    }

    /// Loads the OOD test sets (`validation: false`) or the tuning-only sets (`true`).
    public static func loadSets(_ e: EvaluateSection, imageSize: Int, channels: Int, validation: Bool, resize: Int = 0,
                                loading: SampleSet.Loading = .auto, comm: Communicator? = nil) throws -> [OODSet] {
        var specs: [OODSetConfig]
        if validation {
            specs = try validationSpecs(e)
            if specs.isEmpty { return [] }
        } else {
            specs = try testSpecs(e)
        }
        guard !specs.isEmpty else { throw OODEvaluationError.noSets("the manifest has no ood sets and evaluate.ood_sets is empty") }
        var out: [OODSet] = []
        for s in specs {
            guard FileManager.default.fileExists(atPath: s.images) else {
                throw OODEvaluationError.missingSet(name: s.name, path: s.images,
                                                    key: validation ? "evaluate.validation_ood_sets" : (e.oodManifest.isEmpty ? "evaluate.ood_sets" : e.oodManifest))
            }
            let ds: SampleSet
            var isDirectory: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: s.images, isDirectory: &isDirectory)
            if isDirectory.boolValue {
                // A folder of JPEG/PNG images (Textures, Places, SUN, iNaturalist, ...): decoded,
                // converted to the model's channels, resized (shorter side) and centre-cropped to
                // the model's input size; in memory or lazily (`loading`). Unreadable files are
                // skipped and counted (lazy sets are decoded once up front to find them, so the
                // same files are skipped either way).
                let loaded: (set: SampleSet, skipped: [SkippedFile], lazy: Bool)
                do {
                    loaded = try SampleSet.folder(root: s.images, layout: .flat, channels: channels,
                                                  transform: ResizeCenterCrop(resizeShorterSide: resize > 0 ? resize : imageSize, cropSize: imageSize),
                                                  loading: loading, skipBadFiles: true, fullCheck: true, comm: comm)
                } catch let error as ImageFileError {
                    throw OODEvaluationError.unreadableSet(name: s.name, key: validation ? "evaluate.validation_ood_sets"
                                                           : (e.oodManifest.isEmpty ? "evaluate.ood_sets" : e.oodManifest), reason: "\(error)")
                }
                if !loaded.skipped.isEmpty && (comm?.rank ?? 0) == 0 {
                    writeSkipped(name: s.name, count: loaded.skipped.count, first: loaded.skipped[0].path)
                }
                ds = loaded.set
            } else {
                let images = try IDX.readImages(path: s.images)
                guard images.rows == imageSize && images.cols == imageSize && channels == 1 else {
                    throw ConfigError.invalidValue(file: s.images, key: "OOD set '\(s.name)'", expected: "\(channels)x\(imageSize)x\(imageSize) images",
                                                   actual: "1x\(images.rows)x\(images.cols)",
                                                   hint: "IDX OOD sets must match the model input; for RGB or other sizes use a folder of JPEG/PNG images")
                }
                ds = SampleSet(ImageDataset(images: images.pixels, labels: [Int](repeating: 0, count: images.count), channels: 1,
                                            height: images.rows, width: images.cols, classCount: 1, classNames: []))
            }
            out.append(OODSet(name: s.name, synthetic: s.synthetic, dataset: ds))
        }
        return out
    }

    /// Checks, without reading any image, that every configured OOD test set (manifest and
    /// `evaluate.ood_sets`) and, with `evaluate.tune`, every validation OOD set exists, and that
    /// the validation sets are disjoint from the test sets: the pipeline's pre-flight check, so a
    /// wrong path fails before hours of training rather than at the evaluation stage.
    /// - Throws: `OODEvaluationError.missingSet` / `.noSets`, `ConfigError` naming the key.
    public static func checkSetPaths(_ e: EvaluateSection) throws {
        let tests = try testSpecs(e)
        guard !tests.isEmpty else { throw OODEvaluationError.noSets("the manifest has no ood sets and evaluate.ood_sets is empty") }
        for s in tests where !FileManager.default.fileExists(atPath: s.images) {
            throw OODEvaluationError.missingSet(name: s.name, path: s.images, key: e.oodManifest.isEmpty ? "evaluate.ood_sets" : e.oodManifest)
        }
        if e.tune {
            for v in try validationSpecs(e) where !FileManager.default.fileExists(atPath: v.images) {
                throw OODEvaluationError.missingSet(name: v.name, path: v.images, key: "evaluate.validation_ood_sets")
            }
        }
    }

    /// The validation OOD set specs, checked disjoint from the OOD test sets (by standardised
    /// path): tuning on test data inflates every metric (pitfalls F10).
    /// - Throws: `ConfigError` naming `evaluate.validation_ood_sets`.
    static func validationSpecs(_ e: EvaluateSection) throws -> [OODSetConfig] {
        let std = { (p: String) in URL(fileURLWithPath: p).standardizedFileURL.path }
        let testPaths = Set(try testSpecs(e).map { std($0.images) })
        for v in e.explicitValidationSets where testPaths.contains(std(v.images)) {
            throw ConfigError.invalidValue(file: "config", key: "evaluate.validation_ood_sets", expected: "sets disjoint from the OOD test sets",
                                           actual: "'\(v.name)' uses \(v.images), an OOD test set",
                                           hint: "tuning on test data inflates every metric (pitfalls F10); use a separate set.")
        }
        return e.explicitValidationSets
    }

    static func writeSkipped(name: String, count: Int, first: String) {
        FileHandle.standardError.write(Data("note: OOD set '\(name)': skipped \(count) unreadable file(s), e.g. \(first)\n".utf8))
    }

    /// Fitted detector state (saved with every evaluation so `umtrain score` can reuse it).
    public struct Fitted: Sendable {
        var mahalanobis: MahalanobisDetector?
        var knn: KNNDetector?
        var reactThreshold: Double?
        /// Class means `[C, D]` and the shared covariance `[D, D]` (Double), the training
        /// features `[N, D]` (the KNN bank before normalisation) and D.
        var classMeans: [Double] = []
        var covariance: [Double] = []
        var bankFeatures: [Float] = []
        var featureDim = 0
        public init() {}
    }

    /// Scores `ids` of `dataset` on this rank's batches, then gathers by id. Collective.
    static func score(model: Classifier, comm: Communicator, data: TrainingData, dataset: SampleSet, ids: [Int],
                      e: EvaluateSection, fitted: Fitted, kinds: [String]) throws -> SetScores {
        let schedule = EvaluationSchedule(ids: ids, batchSize: e.batchSize, worldSize: comm.worldSize)
        var myIds: [Int64] = []
        var mine: [String: [Double]] = [:]
        for k in kinds { mine[k] = [] }
        let k = model.classifier.outFeatures
        let myBatches = schedule.batches(rank: comm.rank).filter { !$0.isEmpty }
        try data.forEachBatch(dataset, dataset.positionBatches(myBatches.map(\.ids))) { b, x, _ in
            let eb = myBatches[b]
            let logits = model.forward(x, context: .eval)
            let z = logits.scalars
            let features = model.penultimateFeatures!.scalars
            myIds += eb.ids.map(Int64.init)
            // ODIN reuses this forward pass for its input gradient (before anything else runs a
            // forward through the model and replaces the cached activations).
            let odinScores = kinds.contains("odin") ? try odin(model: model, x: x, logits: logits, e: e, data: data) : []
            for kind in kinds {
                switch kind {
                case "msp": mine[kind]! += LogitScore.maxSoftmax(logits: z, numClasses: k)
                case "maxlogit": mine[kind]! += LogitScore.maxLogit(logits: z, numClasses: k)
                case "energy": mine[kind]! += LogitScore.energy(logits: z, numClasses: k, temperature: e.energyTemperature)
                case "mahalanobis": mine[kind]! += fitted.mahalanobis!.scores(features: features)
                case "knn": mine[kind]! += fitted.knn!.scores(features: features)
                case "react":
                    var clipped = features
                    ReAct.clip(&clipped, threshold: fitted.reactThreshold!)
                    let d = clipped.count / max(eb.ids.count, 1)
                    let head = model.classifier.forward(Tensor(shape: [eb.ids.count, d], values: clipped), context: .eval)
                    mine[kind]! += LogitScore.energy(logits: head.scalars, numClasses: k, temperature: e.energyTemperature)
                case "odin":
                    mine[kind]! += odinScores
                default: break
                }
            }
        }
        let allIds = try myIds.withUnsafeBufferPointer { try comm.allgatherv($0) }.values
        let order = allIds.indices.sorted { allIds[$0] < allIds[$1] }
        var result = SetScores(ids: order.map { allIds[$0] }, scores: [:])
        for kind in kinds {
            let all = try mine[kind]!.withUnsafeBufferPointer { try comm.allgatherv($0) }.values
            result.scores[kind] = order.map { all[$0] }
        }
        return result
    }

    /// ODIN: temperature-scaled MSP after a gradient-sign input step that increases the max
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
        return LogitScore.maxSoftmax(logits: after.scalars, numClasses: k, temperature: t)
    }

    /// Fits the feature-based detectors from the training ids' penultimate features
    /// (gathered by id; every rank fits the same detector).
    static func fit(model: Classifier, comm: Communicator, data: TrainingData, e: EvaluateSection, kinds: [String],
                    numClasses: Int) throws -> Fitted {
        var fitted = Fitted()
        guard kinds.contains(where: { ["mahalanobis", "knn", "react"].contains($0) }) else { return fitted }
        let ids = data.trainIds
        let schedule = EvaluationSchedule(ids: ids, batchSize: e.batchSize, worldSize: comm.worldSize)
        var myIds: [Int64] = [], myFeatures: [Float] = []
        var dim = 0
        let myBatches = schedule.batches(rank: comm.rank).filter { !$0.isEmpty }
        try data.forEachBatch(data.trainSet, data.trainSet.positionBatches(myBatches.map(\.ids))) { b, x, _ in
            let eb = myBatches[b]
            _ = model.forward(x, context: .eval)
            let f = model.penultimateFeatures!
            dim = f.shape[1]
            myIds += eb.ids.map(Int64.init)
            myFeatures += f.scalars
        }
        dim = Int(try comm.allreduce(Int64(dim), op: .max))
        let allIds = try myIds.withUnsafeBufferPointer { try comm.allgatherv($0) }.values
        let allF = try myFeatures.withUnsafeBufferPointer { try comm.allgatherv($0) }.values
        let order = allIds.indices.sorted { allIds[$0] < allIds[$1] }
        var features = [Float](repeating: 0, count: order.count * dim)
        for (row, i) in order.enumerated() {
            for d in 0..<dim { features[row * dim + d] = allF[i * dim + d] }
        }
        let labelOf = data.trainSet.labelsById()
        let labels = order.map { labelOf[Int(allIds[$0])]! }
        fitted.featureDim = dim
        if kinds.contains("mahalanobis") {
            var sums = ClassFeatureSums(numClasses: numClasses, featureDim: dim)
            sums.accumulate(features: features, labels: labels)
            var scatter = CentredScatter(featureDim: dim)
            scatter.accumulate(features: features, labels: labels, classMeans: try sums.means())
            fitted.mahalanobis = try MahalanobisDetector(classSums: sums, scatter: scatter, ridge: e.mahalanobisRidge)
            fitted.classMeans = try sums.means()
            fitted.covariance = scatter.covariance()
        }
        if kinds.contains("knn") {
            fitted.knn = KNNDetector(trainingFeatures: features, featureDim: dim, k: min(e.knnK, order.count))
            fitted.bankFeatures = features
        }
        if kinds.contains("react") {
            fitted.reactThreshold = ReAct.percentileThreshold(activations: features, percentile: e.reactPercentile)
        }
        return fitted
    }

    /// Tunes ODIN (temperature, epsilon), KNN (k) and ReAct (percentile) on the ID validation
    /// split and the validation OOD sets, by the mean AUROC over those sets (Liang et al. 2018
    /// tune ODIN the same way, on held-out OOD data). Without validation OOD sets only ODIN's
    /// epsilon is tuned, at the configured temperature, by the mean ID-validation score (the
    /// ID-only criterion of Hsu et al., CVPR 2020). The ID and OOD TEST sets are never used.
    /// Collective. Returns the tuned section and a record for tuning.json.
    public static func tune(model: Classifier, comm: Communicator, config: RunConfig, data: TrainingData,
                            validationOOD: [OODSet], log: (String) -> Void) throws -> (EvaluateSection, [String: Any]) {
        var e = config.evaluate
        guard !data.validationIds.isEmpty else {
            throw ConfigError.invalidValue(file: "config", key: "evaluate.tune", expected: "a validation split (data.validation_size > 0)",
                                           actual: "no validation ids", hint: "tuning uses only the validation split, never the test sets.")
        }
        let valDataset = data.trainSet
        var record: [String: Any] = ["validation_ids": data.validationIds.count,
                                     "validation_ood_sets": validationOOD.map { $0.name },
                                     "id_validation_disjoint_from_id_test": "yes: the validation split is carved from the training file"]
        func meanAUROC(_ kind: String, _ section: EvaluateSection, _ fitted: Fitted) throws -> Double {
            let id = try score(model: model, comm: comm, data: data, dataset: valDataset, ids: data.validationIds, e: section,
                               fitted: fitted, kinds: [kind]).scores[kind]!
            var total = 0.0
            for s in validationOOD {
                let ood = try score(model: model, comm: comm, data: data, dataset: s.dataset, ids: s.dataset.ids, e: section,
                                    fitted: fitted, kinds: [kind]).scores[kind]!
                total += try OODMetrics.compute(idScores: id, oodScores: ood, fprMode: .strict, nonFinite: .exclude).auroc
            }
            return total / Double(validationOOD.count)
        }
        let kinds = e.scores
        if kinds.contains("odin") {
            var best = (t: e.odinTemperature, eps: e.odinEpsilon, value: -Double.infinity)
            let temperatures = validationOOD.isEmpty ? [e.odinTemperature] : [1.0, 10, 100, 1000]
            for t in temperatures {
                for eps in [0.0, 0.0005, 0.001, 0.0014, 0.002, 0.004] {
                    var trial = e
                    trial.odinTemperature = t
                    trial.odinEpsilon = eps
                    let v: Double
                    if validationOOD.isEmpty {
                        let sc = try score(model: model, comm: comm, data: data, dataset: valDataset, ids: data.validationIds,
                                           e: trial, fitted: Fitted(), kinds: ["odin"]).scores["odin"]!
                        v = sc.reduce(0, +) / Double(max(sc.count, 1))
                    } else {
                        v = try meanAUROC("odin", trial, Fitted())
                    }
                    if v > best.value { best = (t, eps, v) }
                }
            }
            e.odinTemperature = best.t
            e.odinEpsilon = best.eps
            record["odin"] = ["temperature": best.t, "epsilon": best.eps,
                              "criterion": validationOOD.isEmpty ? "mean ID-validation score" : "mean validation AUROC", "value": best.value]
            log("tuned ODIN: temperature \(best.t), epsilon \(best.eps)")
        }
        // KNN's k and ReAct's percentile: the training features do not depend on either, so they
        // are extracted once and each candidate detector is built from them (the same detector
        // `fit` would build).
        let tuneKNN = kinds.contains("knn"), tuneReAct = kinds.contains("react")
        if !validationOOD.isEmpty && (tuneKNN || tuneReAct) {
            let bank = try fit(model: model, comm: comm, data: data, e: e, kinds: ["knn"], numClasses: config.model.numClasses)
            let rows = bank.bankFeatures.count / max(bank.featureDim, 1)
            /// The candidate with the highest mean validation AUROC (the first on ties).
            func pick<V>(_ kind: String, _ candidates: [V], _ apply: (inout EvaluateSection, V) -> Void,
                         _ detector: (V) -> Fitted) throws -> (candidate: V, value: Double) {
                var best: (candidate: V, value: Double)?
                for c in candidates {
                    var trial = e
                    apply(&trial, c)
                    let v = try meanAUROC(kind, trial, detector(c))
                    if best == nil || v > best!.value { best = (c, v) }
                }
                return best!
            }
            if tuneKNN {
                let ks = [1, 5, 10, 20, 50, 100, 200].filter { $0 <= rows }
                let best = try pick("knn", ks, { $0.knnK = $1 }) { k in
                    var f = Fitted()
                    f.knn = KNNDetector(trainingFeatures: bank.bankFeatures, featureDim: bank.featureDim, k: k)
                    return f
                }
                e.knnK = best.candidate
                record["knn"] = ["k": best.candidate, "criterion": "mean validation AUROC", "value": best.value]
                log("tuned KNN: k \(best.candidate)")
            }
            if tuneReAct {
                let best = try pick("react", [80.0, 85, 90, 95, 99], { $0.reactPercentile = $1 }) { p in
                    var f = Fitted()
                    f.reactThreshold = ReAct.percentileThreshold(activations: bank.bankFeatures, percentile: p)
                    return f
                }
                e.reactPercentile = best.candidate
                record["react"] = ["percentile": best.candidate, "criterion": "mean validation AUROC", "value": best.value]
                log("tuned ReAct: percentile \(best.candidate)")
            }
        }
        return (e, record)
    }

    /// Evaluates `model` on the ID test set and every OOD set. Collective.
    public static func run(model: Classifier, comm: Communicator, config: RunConfig, data: TrainingData, sets: [OODSet],
                           log: (String) -> Void, validationOOD: [OODSet] = [], tuningRecord: UnsafeMutablePointer<[String: Any]>? = nil) throws -> OODReport {
        var e = config.evaluate
        if e.tune {
            let (tuned, record) = try tune(model: model, comm: comm, config: config, data: data, validationOOD: validationOOD, log: log)
            e = tuned
            tuningRecord?.pointee = record
        }
        let kinds = e.scores
        guard let mode = FPRMode(rawValue: e.fprMode) else {
            throw ConfigError.invalidValue(file: "config", key: "evaluate.fpr_mode", expected: "strict, reference or openood",
                                           actual: e.fprMode, hint: "strict is the default")
        }
        let started = Date()
        let fitted = try fit(model: model, comm: comm, data: data, e: e, kinds: kinds, numClasses: config.model.numClasses)
        log("detector settings: ODIN T \(e.odinTemperature) eps \(e.odinEpsilon), KNN k \(e.knnK), ReAct p\(e.reactPercentile)\(e.tune ? " (tuned on the validation split)" : " (defaults)")")
        let idEval = try Evaluator.evaluate(model: model, comm: comm, data: data, dataset: data.testSet, ids: data.testSet.ids,
                                            batchSize: e.batchSize)
        let idScores = try score(model: model, comm: comm, data: data, dataset: data.testSet, ids: data.testSet.ids, e: e,
                                 fitted: fitted, kinds: kinds)
        var rows: [OODRow] = []
        var oodScores: [String: SetScores] = [:]
        for s in sets {
            comm.phase = "evaluate \(s.name)"
            let sc = try score(model: model, comm: comm, data: data, dataset: s.dataset, ids: s.dataset.ids, e: e, fitted: fitted,
                               kinds: kinds)
            oodScores[s.name] = sc
            for kind in kinds {
                let m = try OODMetrics.compute(idScores: idScores.scores[kind]!, oodScores: sc.scores[kind]!, fprMode: mode,
                                               nonFinite: e.excludeNonFinite ? .exclude : .error)
                rows.append(OODRow(score: kind, set: s.name, synthetic: s.synthetic, metrics: m))
            }
        }
        var averages: [String: OODMetrics] = [:]
        for kind in kinds {
            let real = rows.filter { $0.score == kind && !$0.synthetic }.map(\.metrics)
            if !real.isEmpty { averages[kind] = OODMetrics.average(real) }
        }
        log("OOD evaluation: \(sets.count) sets x \(kinds.count) scores in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
        return OODReport(idAccuracy: idEval.accuracy, idLoss: idEval.loss, rows: rows, fprMode: mode, averages: averages,
                         scoreOrder: kinds, idScores: idScores, oodScores: oodScores, fitted: fitted, settings: e)
    }

    // MARK: - Reports

    static func p2(_ x: Double) -> String { x.isFinite ? String(format: "%.2f", 100 * x) : "n/a" }

    /// The Markdown report (conventions first, then per-set rows, then averages).
    public static func markdown(_ r: OODReport, title: String) -> String {
        var s = "# \(title)\n\n"
        s += "ID accuracy \(p2(r.idAccuracy))% (test loss \(String(format: "%.4f", r.idLoss)) nats, \(r.idScores.ids.count) images).\n\n"
        s += "Conventions: every score is oriented higher = more in-distribution. AUROC and AUPR-In take ID as the positive "
            + "class; AUPR-Out takes OOD as positive with negated scores (average precision, not the trapezoid). "
            + "FPR95: \(r.fprMode.label). All values in percent.\n\n"
        s += "## Average over real OOD sets (unweighted; synthetic sets excluded)\n\n"
        s += "| score | AUROC | AUPR-In | AUPR-Out | FPR95 |\n|---|---|---|---|---|\n"
        for k in r.scoreOrder {
            if let m = r.averages[k] { s += "| \(k) | \(p2(m.auroc)) | \(p2(m.auprIn)) | \(p2(m.auprOut)) | \(p2(m.fpr95)) |\n" }
        }
        s += "\n## Per set\n\n| score | OOD set | synthetic | AUROC | AUPR-In | AUPR-Out | FPR95 | n_id | n_ood |\n|---|---|---|---|---|---|---|---|---|\n"
        for row in r.rows {
            let m = row.metrics
            s += "| \(row.score) | \(row.set) | \(row.synthetic ? "yes" : "no") | \(p2(m.auroc)) | \(p2(m.auprIn)) | \(p2(m.auprOut)) | \(p2(m.fpr95)) | \(m.nID) | \(m.nOOD) |\n"
        }
        return s
    }

    /// Writes ood.md, ood.csv, ood.json, per-sample scores and SVG plots into `dir` (rank 0).
    public static func write(_ r: OODReport, to dir: String, title: String) throws {
        try FileManager.default.createDirectory(atPath: dir + "/scores", withIntermediateDirectories: true)
        try AtomicFile.write(markdown(r, title: title), to: dir + "/ood.md")
        var csv = "score,ood_set,synthetic,auroc,aupr_in,aupr_out,fpr95,n_id,n_ood,fpr_mode\n"
        func num(_ x: Double) -> String { x.isFinite ? String(x) : "" }
        for row in r.rows {
            let m = row.metrics
            csv += "\(row.score),\(row.set),\(row.synthetic),\(num(m.auroc)),\(num(m.auprIn)),\(num(m.auprOut)),\(num(m.fpr95)),\(m.nID),\(m.nOOD),\(r.fprMode.rawValue)\n"
        }
        for k in r.scoreOrder {
            if let m = r.averages[k] {
                csv += "\(k),average_real,false,\(num(m.auroc)),\(num(m.auprIn)),\(num(m.auprOut)),\(num(m.fpr95)),\(m.nID),\(m.nOOD),\(r.fprMode.rawValue)\n"
            }
        }
        try AtomicFile.write(csv, to: dir + "/ood.csv")
        func jnum(_ x: Double) -> Any { x.isFinite ? x : NSNull() }
        func jm(_ m: OODMetrics) -> [String: Any] {
            ["auroc": jnum(m.auroc), "aupr_in": jnum(m.auprIn), "aupr_out": jnum(m.auprOut), "fpr95": jnum(m.fpr95),
             "n_id": m.nID, "n_ood": m.nOOD, "excluded_id": m.excludedID, "excluded_ood": m.excludedOOD]
        }
        let json: [String: Any] = [
            "id_accuracy": jnum(r.idAccuracy), "id_loss": jnum(r.idLoss), "fpr_mode": r.fprMode.rawValue,
            "fpr_mode_label": r.fprMode.label, "positive_class": "ID (AUROC, AUPR-In); OOD for AUPR-Out",
            "rows": r.rows.map { ["score": $0.score, "ood_set": $0.set, "synthetic": $0.synthetic].merging(jm($0.metrics)) { a, _ in a } },
            "average_real": Dictionary(uniqueKeysWithValues: r.averages.map { ($0.key, jm($0.value)) }),
        ]
        try AtomicFile.write([UInt8](try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])),
                             to: dir + "/ood.json")
        // Per-sample scores: one CSV per set (id + one column per score).
        func scoreCSV(_ s: SetScores) -> String {
            var t = "id," + r.scoreOrder.joined(separator: ",") + "\n"
            for (i, id) in s.ids.enumerated() {
                t += "\(id)," + r.scoreOrder.map { String(s.scores[$0]![i]) }.joined(separator: ",") + "\n"
            }
            return t
        }
        try AtomicFile.write(scoreCSV(r.idScores), to: dir + "/scores/id_test.csv")
        for (name, s) in r.oodScores { try AtomicFile.write(scoreCSV(s), to: dir + "/scores/\(name).csv") }
        // Plots: per score, ROC curves for every set and score histograms.
        let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
        for k in r.scoreOrder {
            let idv = r.idScores.scores[k]!
            var curves: [(name: String, color: String, points: [(Double, Double)])] = []
            var series: [SVGPlot.Series] = [.init(name: "ID test", color: "#000000", values: idv)]
            for (i, name) in r.oodScores.keys.sorted().enumerated() {
                let oodv = r.oodScores[name]!.scores[k]!
                curves.append((name, palette[i % palette.count], rocPoints(id: idv, ood: oodv)))
                series.append(.init(name: name, color: palette[i % palette.count], values: oodv))
            }
            try AtomicFile.write(SVGPlot.curves(title: "ROC, score \(k) (ID positive)", xLabel: "FPR (OOD accepted)",
                                                yLabel: "TPR (ID accepted)", curves: curves), to: dir + "/roc_\(k).svg")
            let finite = series.flatMap(\.values).filter(\.isFinite).sorted()
            let lo = finite.isEmpty ? 0 : finite[finite.count / 200], hi = finite.isEmpty ? 1 : finite[finite.count - 1 - finite.count / 200]
            try AtomicFile.write(SVGPlot.histogram(title: "score \(k) (higher = ID)", xLabel: k, series: series, bins: 60,
                                                   range: lo...max(hi, lo + 1e-9)), to: dir + "/hist_\(k).svg")
        }
    }

    /// ROC points (FPR, TPR) with ID positive, at up to ~200 thresholds.
    static func rocPoints(id: [Double], ood: [Double]) -> [(Double, Double)] {
        let all = (id.map { ($0, true) } + ood.map { ($0, false) }).filter { $0.0.isFinite }.sorted { $0.0 > $1.0 }
        let nPos = Double(all.filter { $0.1 }.count), nNeg = Double(all.count) - nPos
        var tp = 0.0, fp = 0.0
        var pts: [(Double, Double)] = [(0, 0)]
        let stride = max(1, all.count / 200)
        for (i, s) in all.enumerated() {
            if s.1 { tp += 1 } else { fp += 1 }
            let lastOfTie = i + 1 == all.count || all[i + 1].0 != s.0
            if lastOfTie && (i % stride == 0 || i + 1 == all.count) { pts.append((fp / max(nNeg, 1), tp / max(nPos, 1))) }
        }
        return pts
    }
}

/// Saving and reloading fitted detectors (`reports/detector/`), and scoring new inputs.
public enum DetectorStore {
    static func bits(_ v: [Double]) -> [Int64] { v.map { Int64(bitPattern: $0.bitPattern) } }
    static func unbits(_ v: [Int64]) -> [Double] { v.map { Double(bitPattern: UInt64(bitPattern: $0)) } }

    /// Writes `detector.safetensors` (Double statistics stored exactly as their I64 bit
    /// patterns; the KNN bank as F32) and `detector.json` (settings) into `dir` (rank 0).
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
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let settings = String(decoding: try enc.encode(r.settings), as: UTF8.self)
        try AtomicFile.write(try SafeTensorsFile(records: records, metadata: ["settings": settings, "feature_dim": String(f.featureDim),
                                                                             "num_classes": String(config.model.numClasses)]).encode(),
                             to: dir + "/detector.safetensors")
    }

    /// Reloads a detector written by ``write(_:config:to:)``.
    public static func read(_ dir: String) throws -> (OODEvaluation.Fitted, EvaluateSection) {
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
        return (f, settings)
    }

    /// Scores every image of `dataset` with the saved detectors (higher = ID). Collective.
    public static func score(model: Classifier, comm: Communicator, dataset: SampleSet, normalizer: ChannelNormalizer,
                             fitted: OODEvaluation.Fitted, settings: EvaluateSection) throws -> SetScores {
        let data = TrainingData(trainSet: dataset, trainIds: [], validationIds: [], testSet: dataset, normalizer: normalizer)
        var kinds = settings.scores
        if fitted.mahalanobis == nil { kinds.removeAll { $0 == "mahalanobis" } }
        if fitted.knn == nil { kinds.removeAll { $0 == "knn" } }
        if fitted.reactThreshold == nil { kinds.removeAll { $0 == "react" } }
        return try OODEvaluation.score(model: model, comm: comm, data: data, dataset: dataset, ids: dataset.ids, e: settings,
                                       fitted: fitted, kinds: kinds)
    }
}
