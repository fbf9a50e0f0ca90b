import Datasets
import Distributed
import Foundation
import NeuralNetwork
import OODDetection
import SafeTensors
import TensorCore

/// What detector tuning chose and why (`reports/tuning.json`).
public struct TuningRecord: Codable, Equatable, Sendable {
    /// One tuned detector: its chosen setting(s), the selection criterion and its value.
    public struct Choice: Codable, Equatable, Sendable {
        public var temperature: Double?
        public var epsilon: Double?
        public var k: Int?
        public var percentile: Double?
        public var criterion: String
        public var value: Double
    }

    public var validationIds: Int
    public var validationOODSets: [String]
    public var idValidationDisjointFromIDTest = "yes: the validation split is carved from the training file"
    public var odin: Choice?
    public var knn: Choice?
    public var react: Choice?

    enum CodingKeys: String, CodingKey {
        case odin, knn, react
        case validationIds = "validation_ids", validationOODSets = "validation_ood_sets",
             idValidationDisjointFromIDTest = "id_validation_disjoint_from_id_test"
    }
}

/// Detector hyper-parameters tuned on the ID validation split and the validation OOD sets.
extension OODEvaluation {
    /// Tunes ODIN (temperature, epsilon), KNN (k) and ReAct (percentile) on the ID validation
    /// split and the validation OOD sets, by the mean AUROC over those sets (Liang et al. 2018
    /// tune ODIN the same way, on held-out OOD data). Without validation OOD sets only ODIN's
    /// epsilon is tuned, at the configured temperature, by the mean ID-validation score (the
    /// ID-only criterion of Hsu et al., CVPR 2020). The ID and OOD TEST sets are never used.
    /// Collective. Returns the tuned section and a record for tuning.json.
    public static func tune(model: Classifier, comm: Communicator, config: RunConfig, data: TrainingData,
                            validationOOD: [OODSet], log: (String) -> Void) throws -> (EvaluateSection, TuningRecord) {
        var e = config.evaluate
        guard !data.validationIds.isEmpty else {
            throw ConfigError.invalidValue(file: "config", key: "evaluate.tune", expected: "a validation split (data.validation_size > 0)",
                                           actual: "no validation ids", hint: "tuning uses only the validation split, never the test sets.")
        }
        let valDataset = data.trainSet
        var record = TuningRecord(validationIds: data.validationIds.count, validationOODSets: validationOOD.map(\.name))
        func meanAUROC(_ kind: ScoreKind, _ section: EvaluateSection, _ fitted: Fitted) throws -> Double {
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
        if kinds.contains(.odin) {
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
                                           e: trial, fitted: Fitted(), kinds: [.odin]).scores[.odin]!
                        // The criterion is the mean probability; the score is its log.
                        v = sc.reduce(0) { $0 + exp($1) } / Double(max(sc.count, 1))
                    } else {
                        v = try meanAUROC(.odin, trial, Fitted())
                    }
                    if v > best.value { best = (t, eps, v) }
                }
            }
            e.odinTemperature = best.t
            e.odinEpsilon = best.eps
            record.odin = .init(temperature: best.t, epsilon: best.eps,
                                criterion: validationOOD.isEmpty ? "mean ID-validation score" : "mean validation AUROC", value: best.value)
            log("tuned ODIN: temperature \(best.t), epsilon \(best.eps)")
        }
        // KNN's k and ReAct's percentile: the training features do not depend on either, so they
        // are extracted once and each candidate detector is built from them (the same detector
        // `fit` would build).
        let tuneKNN = kinds.contains(.knn), tuneReAct = kinds.contains(.react)
        if !validationOOD.isEmpty && (tuneKNN || tuneReAct) {
            let shard = try trainingShard(model: model, comm: comm, data: data, batchSize: e.batchSize)
            let rows = shard.totalCount
            /// The candidate with the highest mean validation AUROC (the first on ties).
            func pick<V>(_ kind: ScoreKind, _ candidates: [V], _ apply: (inout EvaluateSection, V) -> Void,
                         _ detector: (V) throws -> Fitted) throws -> (candidate: V, value: Double) {
                var best: (candidate: V, value: Double)?
                for c in candidates {
                    var trial = e
                    apply(&trial, c)
                    let v = try meanAUROC(kind, trial, try detector(c))
                    if best == nil || v > best!.value { best = (c, v) }
                }
                return best!
            }
            if tuneKNN {
                let ks = [1, 5, 10, 20, 50, 100, 200].filter { $0 <= rows }
                let bank = KNNDetector.bank(features: shard.features, ids: shard.ids, featureDim: shard.featureDim)
                let best = try pick(.knn, ks, { $0.knnK = $1 }) { k in
                    var f = Fitted()
                    f.featureDim = shard.featureDim
                    f.trainCount = rows
                    f.knn = KNNDetector(bank: bank, k: k)
                    return f
                }
                e.knnK = best.candidate
                record.knn = .init(k: best.candidate, criterion: "mean validation AUROC", value: best.value)
                log("tuned KNN: k \(best.candidate)")
            }
            if tuneReAct {
                let best = try pick(.react, [80.0, 85, 90, 95, 99], { $0.reactPercentile = $1 }) { p in
                    var f = Fitted()
                    f.reactThreshold = try ShardReduce.percentile(shard.features, p, comm: comm)
                    return f
                }
                e.reactPercentile = best.candidate
                record.react = .init(percentile: best.candidate, criterion: "mean validation AUROC", value: best.value)
                log("tuned ReAct: percentile \(best.candidate)")
            }
        }
        return (e, record)
    }
}
