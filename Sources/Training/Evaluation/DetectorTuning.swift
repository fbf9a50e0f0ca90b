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
        public var gamma: Double?
        public var m: Int?
        public var criterion: String
        public var value: Double
    }

    public var validationIds: Int
    public var validationOODSets: [String]
    public var idValidationDisjointFromIDTest = "yes: the validation split is carved from the training file"
    public var odin: Choice?
    public var knn: Choice?
    public var react: Choice?
    public var gen: Choice?
    public var ash: Choice?
    public var scale: Choice?

    enum CodingKeys: String, CodingKey {
        case odin, knn, react, gen, ash, scale
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
        try tuneShaping(model: model, comm: comm, data: data, validationOOD: validationOOD, e: &e, record: &record, log: log)
        return (e, record)
    }

    /// GEN (gamma, M), ASH and SCALE (percentile) on OpenOOD v1.5's grids (configs/postprocessors:
    /// gen gamma [0.01, 0.1, 0.5, 1, 2, 5, 10] x M [10, 50, 100, 200, 500, 1000], M capped at the
    /// class count; ash and scale percentile [65, 70, ..., 95]), by the mean validation AUROC, the
    /// first candidate winning ties. None of them needs training data, so the validation sets'
    /// logits and features are computed once (gathered by id) and every candidate is scored from
    /// them. NNGuide, ViM, RMDS and fDBD keep their defaults (OpenOOD does not sweep them either).
    /// Collective.
    static func tuneShaping(model: Classifier, comm: Communicator, data: TrainingData, validationOOD: [OODSet],
                            e: inout EvaluateSection, record: inout TuningRecord, log: (String) -> Void) throws {
        let kinds = e.scores.filter { [.gen, .ash, .scale].contains($0) }
        guard !validationOOD.isEmpty, !kinds.isEmpty else { return }
        let id = try featuresAndLogits(model: model, comm: comm, data: data, dataset: data.trainSet, ids: data.validationIds, batchSize: e.batchSize)
        let oods = try validationOOD.map {
            try featuresAndLogits(model: model, comm: comm, data: data, dataset: $0.dataset, ids: $0.dataset.ids, batchSize: e.batchSize)
        }
        let classes = model.classifier.outFeatures
        let head = Self.head(model)
        func meanAUROC(_ scorer: (_ features: [Float], _ logits: [Float]) -> [Double]) throws -> Double {
            let idScores = scorer(id.features, id.logits)
            var total = 0.0
            for o in oods {
                total += try OODMetrics.compute(idScores: idScores, oodScores: scorer(o.features, o.logits), fprMode: .strict, nonFinite: .exclude).auroc
            }
            return total / Double(oods.count)
        }
        func best<V>(_ candidates: [V], _ scorer: (V) -> (([Float], [Float]) -> [Double])) throws -> (candidate: V, value: Double) {
            var top: (candidate: V, value: Double)?
            for c in candidates {
                let v = try meanAUROC(scorer(c))
                if top == nil || v > top!.value { top = (c, v) }
            }
            return top!
        }
        if kinds.contains(.gen) {
            let ms = [10, 50, 100, 200, 500, 1000].map { min($0, classes) }.reduce(into: [Int]()) { if !$0.contains($1) { $0.append($1) } }
            let gammas: [Double] = [0.01, 0.1, 0.5, 1, 2, 5, 10]
            let grid: [(Double, Int)] = gammas.flatMap { g in ms.map { (g, $0) } }
            let b = try best(grid) { c in { _, z in GEN.scores(logits: z, numClasses: classes, gamma: c.0, m: c.1) } }
            e.genGamma = b.candidate.0
            e.genM = b.candidate.1
            record.gen = .init(gamma: b.candidate.0, m: b.candidate.1, criterion: "mean validation AUROC", value: b.value)
            log("tuned GEN: gamma \(b.candidate.0), M \(b.candidate.1)")
        }
        let percentiles = [65.0, 70, 75, 80, 85, 90, 95]
        if kinds.contains(.ash) {
            let shaping = e.ashShaping
            let b = try best(percentiles) { p in { f, _ in shaping.scores(features: f, head: head, percentile: p) } }
            e.ashPercentile = b.candidate
            record.ash = .init(percentile: b.candidate, criterion: "mean validation AUROC", value: b.value)
            log("tuned ASH-\(e.ashVariant.rawValue.uppercased()): percentile \(b.candidate)")
        }
        if kinds.contains(.scale) {
            let b = try best(percentiles) { p in { f, _ in ActivationShaping.scale.scores(features: f, head: head, percentile: p) } }
            e.scalePercentile = b.candidate
            record.scale = .init(percentile: b.candidate, criterion: "mean validation AUROC", value: b.value)
            log("tuned SCALE: percentile \(b.candidate)")
        }
    }

    /// Penultimate features `[N, D]` and logits `[N, K]` of `ids`, computed in the fixed
    /// evaluation batches over the ranks and gathered by id (ascending) onto every rank. Collective.
    static func featuresAndLogits(model: Classifier, comm: Communicator, data: TrainingData, dataset: SampleSet, ids: [Int],
                                  batchSize: Int) throws -> (features: [Float], logits: [Float]) {
        let schedule = EvaluationSchedule(ids: ids, batchSize: batchSize, worldSize: comm.worldSize)
        let mine = schedule.batches(rank: comm.rank).filter { !$0.isEmpty }
        var myIds: [Int64] = [], features: [Float] = [], logits: [Float] = []
        var dim = 0
        try data.forEachBatch(dataset, dataset.positionBatches(mine.map(\.ids))) { b, x, _ in
            logits += model.forward(x, context: .eval).scalars
            let f = model.penultimateFeatures!
            dim = f.shape[1]
            features += f.scalars
            myIds += mine[b].ids.map(Int64.init)
        }
        dim = Int(try comm.allreduce(Int64(dim), op: .max))
        let gathered = try GatherByID(localIDs: myIds, comm: comm)
        return (try gathered.gatherRows(features, width: dim, comm: comm),
                try gathered.gatherRows(logits, width: model.classifier.outFeatures, comm: comm))
    }
}
