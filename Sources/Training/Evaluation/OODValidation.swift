import Datasets
import Distributed
import Foundation
import NeuralNetwork
import OODDetection
import SafeTensors
import TensorCore

/// The checkpoint kept by the OOD-validation curve (`train/best_val_epoch.json`).
public struct BestValidationRecord: Codable, Equatable, Sendable {
    /// The epoch (1-based, completed epochs) whose weights are `best_val_epoch.safetensors`.
    public var epoch: Int
    /// The selection score (the first of `train.ood_validation_scores`).
    public var score: String
    /// Its mean AUROC (fraction) over the validation OOD sets: the selection criterion.
    public var auroc: Double
    /// Its mean FPR95 (fraction, `evaluate.fpr_mode`) at that epoch, for information.
    public var fpr95: Double
    /// The validation OOD sets and the number of ID validation samples.
    public var sets: [String]
    public var idValidationSamples: Int

    enum CodingKeys: String, CodingKey {
        case epoch, score, auroc, fpr95, sets
        case idValidationSamples = "id_validation_samples"
    }
}

/// The OOD-validation curve (issue 16; UM's central observation, Zhu et al. ICML 2023 Fig. 1:
/// an intermediate stage of training detects OOD better than the final one).
///
/// Every `train.ood_validation_every` epochs (and after the last one) the monitor scores the ID
/// VALIDATION split (held out of training; at most `train.ood_validation_samples` of it and of
/// each set, evenly spaced in id order) against the validation OOD sets (sources disjoint
/// from every OOD test set; ``OODEvaluation/validationSpecs(_:)``) with
/// `train.ood_validation_scores`, and adds to the epoch's `metrics.jsonl` record:
/// `heldout_loss` (mean cross-entropy of the validation split, nats), `heldout_accuracy`
/// (fraction), `ood_val_auroc_<score>` / `ood_val_fpr95_<score>` (means over the validation
/// sets, fractions; FPR95 under `evaluate.fpr_mode`), `ood_val_sets` (per set) and
/// `ood_val_seconds`. The weights with the best mean AUROC of the first score are kept as
/// `<stage>/best_val_epoch.safetensors` (+ `best_val_epoch.json`); the pipeline evaluates them
/// as the model `best_val_epoch`. `reports/ood_validation.svg` plots the curve and the losses.
///
/// The test sets are never touched: the selection uses validation data only (pitfalls F10).
/// Every value is gathered by sample id, so every rank computes the same numbers and keeps the
/// same epoch, for any world size.
public final class OODValidationMonitor {
    public let kinds: [ScoreKind]
    public let every: Int
    let sets: [OODSet]
    let config: RunConfig
    let folder: RunFolder?
    public private(set) var best: BestValidationRecord?
    /// Seconds spent measuring in this process (the cost figure).
    public private(set) var seconds = 0.0

    public var bestWeights: String? { folder.map { $0.root + "/best_val_epoch.safetensors" } }
    var bestRecordPath: String? { folder.map { $0.root + "/best_val_epoch.json" } }

    /// - Parameters:
    ///   - sets: the validation OOD sets (`OODEvaluation.loadSets(..., validation: true)`).
    ///   - resume: read the kept epoch of an interrupted run (rank 0 reads, every rank gets it).
    /// - Throws: ``ConfigError`` naming `train.ood_validation_every` when there is no ID
    ///   validation split or no validation OOD set; communicator errors.
    public init(config: RunConfig, sets: [OODSet], validationCount: Int, folder: RunFolder?, comm: Communicator,
                resume: Bool) throws {
        self.config = config
        self.kinds = config.train.oodValidationScores
        self.every = config.train.oodValidationEvery
        self.sets = sets.filter { !$0.synthetic }
        self.folder = folder
        guard validationCount > 0 else {
            throw ConfigError.invalidValue(file: "config", key: "train.ood_validation_every", expected: "0, or an ID validation split",
                                           actual: "\(every) with data.validation_size 0",
                                           hint: "set data.validation_size (e.g. 5000); the curve never uses the test set.")
        }
        guard !self.sets.isEmpty else {
            throw ConfigError.invalidValue(file: "config", key: "train.ood_validation_every", expected: "0, or validation OOD sets",
                                           actual: "\(every) with no (real) validation OOD set",
                                           hint: "run launch/prepare-data.sh (it builds val_* sets into data/manifest.json) or list evaluate.validation_ood_sets.")
        }
        if resume, let path = bestRecordPath {
            var payload: [Double] = [-1, 0, 0]
            if comm.rank == 0, let data = FileManager.default.contents(atPath: path),
               let r = try? JSONDecoder().decode(BestValidationRecord.self, from: data), FileManager.default.fileExists(atPath: bestWeights!) {
                payload = [Double(r.epoch), r.auroc, r.fpr95]
            }
            try comm.broadcast(&payload, root: 0)
            if payload[0] >= 0 {
                best = BestValidationRecord(epoch: Int(payload[0]), score: kinds[0].rawValue, auroc: payload[1], fpr95: payload[2],
                                            sets: self.sets.map(\.name),
                                            idValidationSamples: config.train.oodValidationSamples > 0 ? min(validationCount, config.train.oodValidationSamples) : validationCount)
            }
        }
    }

    /// Whether the curve is measured after `epoch` (1-based, completed).
    public func isDue(epoch: Int) -> Bool {
        every > 0 && (epoch % every == 0 || epoch == config.train.epochs)
    }

    /// One point of the curve: the held-out loss and each score's AUROC/FPR95 on the
    /// validation data.
    public struct Point: Sendable {
        public var heldOutLoss: Double
        public var heldOutAccuracy: Double
        /// Per score: mean AUROC and FPR95 over the validation OOD sets (fractions).
        public var auroc: [ScoreKind: Double]
        public var fpr95: [ScoreKind: Double]
        /// Per score and set: (AUROC, FPR95).
        public var perSet: [ScoreKind: [(set: String, auroc: Double, fpr95: Double)]]
    }

    /// Measures the model as it is now (inference mode). Collective.
    /// - Throws: metric errors (non-finite scores under `evaluate.exclude_non_finite: false`),
    ///   communicator errors.
    public func measure(model: Classifier, comm: Communicator, data: TrainingData) throws -> Point {
        let e = config.evaluate
        // One pass over the ID validation split gives the held-out loss and the logit scores.
        let logitKinds = kinds.filter { $0 == .msp || $0 == .maxLogit || $0 == .energy }
        let otherKinds = kinds.filter { !logitKinds.contains($0) }
        let k = config.model.numClasses
        var myIds: [Int64] = []
        var mine: [ScoreKind: [Double]] = [:]
        let idIds = Self.evenlySpaced(data.validationIds, at: config.train.oodValidationSamples)
        let held = try Evaluator.evaluate(model: model, comm: comm, data: data, dataset: data.trainSet, ids: idIds,
                                          batchSize: e.batchSize) { ids, logits in
            myIds += ids.map(Int64.init)
            let z = logits.scalars
            for kind in logitKinds { mine[kind, default: []] += OODEvaluation.logitScores(kind, logits: z, numClasses: k, e: e) }
        }
        let gathered = try GatherByID(localIDs: myIds, comm: comm)
        var idScores: [ScoreKind: [Double]] = [:]
        for kind in logitKinds { idScores[kind] = try gathered.gather(mine[kind] ?? [], comm: comm) }
        let fitted = try OODEvaluation.fit(model: model, comm: comm, data: data, e: e, kinds: otherKinds, numClasses: k)
        if !otherKinds.isEmpty {
            let other = try OODEvaluation.score(model: model, comm: comm, data: data, dataset: data.trainSet, ids: idIds,
                                                e: e, fitted: fitted, kinds: otherKinds)
            for kind in otherKinds { idScores[kind] = other.scores[kind] }
        }
        var point = Point(heldOutLoss: held.loss, heldOutAccuracy: held.accuracy, auroc: [:], fpr95: [:], perSet: [:])
        for s in sets {
            let ood = try OODEvaluation.score(model: model, comm: comm, data: data, dataset: s.dataset,
                                              ids: Self.evenlySpaced(s.dataset.ids, at: config.train.oodValidationSamples), e: e,
                                              fitted: fitted, kinds: kinds)
            for kind in kinds {
                let m = try OODMetrics.compute(idScores: idScores[kind]!, oodScores: ood.scores[kind]!, fprMode: e.fprMode,
                                               nonFinite: e.excludeNonFinite ? .exclude : .error)
                point.perSet[kind, default: []].append((s.name, m.auroc, m.fpr95))
            }
        }
        for kind in kinds {
            let rows = point.perSet[kind] ?? []
            point.auroc[kind] = rows.map(\.auroc).reduce(0, +) / Double(max(rows.count, 1))
            point.fpr95[kind] = rows.map(\.fpr95).reduce(0, +) / Double(max(rows.count, 1))
        }
        return point
    }

    /// At most `limit` of `ids` (0 = all), evenly spaced in ascending id order: element
    /// `floor(i * n / limit)` of the sorted ids for i in 0..<limit.
    public static func evenlySpaced(_ ids: [Int], at limit: Int) -> [Int] {
        let sorted = ids.sorted()
        guard limit > 0, limit < sorted.count else { return sorted }
        return (0..<limit).map { sorted[$0 * sorted.count / limit] }
    }

    /// The epoch hook: measures when due, adds the point to the epoch's metrics record, keeps
    /// the weights when the selection score improved (strictly: the earliest best epoch is
    /// kept on ties) and redraws the SVG. Collective (every rank decides the same).
    /// - Throws: as ``measure(model:comm:data:)``; checkpoint write errors (rank 0).
    public func epochEnded(epoch: Int, trainer: Trainer, record: inout [String: Any]) throws {
        guard isDue(epoch: epoch) else { return }
        let started = Date()
        try trainer.prepareEvaluation()
        let p = try measure(model: trainer.model, comm: trainer.comm, data: trainer.data)
        record["heldout_loss"] = p.heldOutLoss
        record["heldout_accuracy"] = p.heldOutAccuracy
        var perSet: [String: Any] = [:]
        for kind in kinds {
            record["ood_val_auroc_\(kind.rawValue)"] = p.auroc[kind]!
            record["ood_val_fpr95_\(kind.rawValue)"] = p.fpr95[kind]!
            perSet[kind.rawValue] = Dictionary(uniqueKeysWithValues: (p.perSet[kind] ?? []).map {
                ($0.set, ["auroc": $0.auroc, "fpr95": $0.fpr95])
            })
        }
        record["ood_val_sets"] = perSet
        let primary = kinds[0]
        let value = p.auroc[primary]!
        var kept = false
        if best == nil || value > best!.auroc {
            best = BestValidationRecord(epoch: epoch, score: primary.rawValue, auroc: value, fpr95: p.fpr95[primary]!,
                                        sets: sets.map(\.name),
                                        idValidationSamples: Self.evenlySpaced(trainer.data.validationIds, at: config.train.oodValidationSamples).count)
            kept = true
            if trainer.comm.rank == 0, let weights = bestWeights, let path = bestRecordPath {
                let file = SafeTensorsFile(records: StateDict.records(of: trainer.model), metadata: ModelFactory.metadata(config.model))
                try AtomicFile.write(try file.encode(), to: weights)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try AtomicFile.write([UInt8](try encoder.encode(best!)), to: path)
            }
        }
        let elapsed = Date().timeIntervalSince(started)
        seconds += elapsed
        record["ood_val_seconds"] = elapsed
        let parts = kinds.map { "\($0.rawValue) AUROC \(fmt(100 * p.auroc[$0]!, 2)) FPR95 \(fmt(100 * p.fpr95[$0]!, 2))" }
        trainer.log("  OOD validation (\(sets.map(\.name).joined(separator: ", "))): held-out loss \(fmt(p.heldOutLoss, 4)) | "
            + parts.joined(separator: " | ") + (kept ? " | kept as best_val_epoch" : "") + " (\(fmt(elapsed, 1)) s)")
    }

    /// Draws `reports/ood_validation.svg` from the stage's `metrics.jsonl` (rank 0): AUROC and
    /// FPR95 of every score against the epoch in the top panel, the training, held-out and test
    /// losses in the bottom panel, the kept epoch marked.
    /// - Parameter pending: the current epoch's record when it is not yet in the file (the
    ///   epoch hook runs before the record is appended).
    public func writePlot(pending: [String: Any]? = nil) throws {
        guard let folder else { return }
        var records = RunFolder.readMetrics(folder.metricsPath)
        if let pending, let epoch = pending["epoch"] as? Int {
            records.removeAll { ($0["epoch"] as? Int) == epoch }
            records.append(pending)
        }
        let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"]
        func series(_ key: String) -> [(Double, Double)] {
            records.compactMap { r in
                guard let e = r["epoch"] as? Int, let v = r[key] as? Double, v.isFinite else { return nil }
                return (Double(e), v)
            }
        }
        var top: [SVGPlot.Line] = []
        for (i, kind) in kinds.enumerated() {
            top.append(.init(name: "\(kind.rawValue) AUROC", color: colors[i % colors.count], points: series("ood_val_auroc_\(kind.rawValue)")))
            top.append(.init(name: "\(kind.rawValue) FPR95", color: colors[i % colors.count], points: series("ood_val_fpr95_\(kind.rawValue)"),
                             dashed: true))
        }
        let bottom: [SVGPlot.Line] = [
            .init(name: "train loss", color: "#333333", points: series("train_loss")),
            .init(name: "held-out loss", color: "#ff7f0e", points: series("heldout_loss")),
            .init(name: "test loss", color: "#7f7f7f", points: series("test_loss"), dashed: true),
        ]
        let svg = SVGPlot.panels(title: "OOD validation (\(sets.map(\.name).joined(separator: ", "))) and losses",
                                 xLabel: "epoch",
                                 panels: [.init(yLabel: "fraction (AUROC, FPR95)", lines: top, yRange: 0...1),
                                          .init(yLabel: "cross-entropy (nats)", lines: bottom, yRange: nil)],
                                 marker: best.map { (Double($0.epoch), "kept: epoch \($0.epoch)") })
        try FileManager.default.createDirectory(atPath: folder.reports, withIntermediateDirectories: true)
        try AtomicFile.write(svg, to: folder.reports + "/ood_validation.svg")
    }
}
