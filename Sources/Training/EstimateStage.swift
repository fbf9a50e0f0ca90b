import Datasets
import Distributed
import Foundation
import NeuralNetwork
import TensorCore
import UnleashingMask

/// xi statistics of one kept fraction over several random masks.
public struct RatioStatistics: Codable, Equatable, Sendable {
    public var keepRatio: Double
    public var xiPerMask: [Double]
    public var maskSeeds: [Int]
    public var mean: Double
    /// The lower median: an actual mask's xi (so the atypical mask can come from that mask).
    public var median: Double
    public var min: Double
    public var max: Double
    public var std: Double
    public var maskedAccuracyPerMask: [Double]

    enum CodingKeys: String, CodingKey {
        case mean, median, min, max, std
        case keepRatio = "keep_ratio", xiPerMask = "xi_per_mask", maskSeeds = "mask_seeds",
             maskedAccuracyPerMask = "masked_accuracy_per_mask"
    }
}

/// What `estimate-loss` found (written as estimate.json).
public struct EstimateReport: Codable, Equatable, Sendable {
    /// The recommended loss constraint in nats: the median xi of the configured kept fraction.
    public var xi: Double
    public var keepRatio: Double
    /// Seed of the mask that gave the median (the atypical mask comes from it).
    public var maskSeed: Int
    public var rule: String
    public var count: Int
    public var atypicalCount: Int
    public var atypicalPerClass: [Int]
    /// Mean unmasked cross-entropy on the training ids (nats).
    public var trainLoss: Double
    public var trainAccuracy: Double
    /// Mean unmasked cross-entropy on the held-out validation split (nats).
    public var heldoutLoss: Double
    public var heldoutCount: Int
    /// True when trainLoss < xi < heldoutLoss.
    public var calibrated: Bool
    public var calibrationNote: String
    public var ratios: [RatioStatistics]
    public var maskChecksum: String
    public var worldSize: Int

    enum CodingKeys: String, CodingKey {
        case xi, rule, count, calibrated, ratios
        case keepRatio = "keep_ratio", maskSeed = "mask_seed", atypicalCount = "atypical_count",
             atypicalPerClass = "atypical_per_class", trainLoss = "train_loss", trainAccuracy = "train_accuracy",
             heldoutLoss = "heldout_loss", heldoutCount = "heldout_count", calibrationNote = "calibration_note",
             maskChecksum = "mask_checksum", worldSize = "world_size"
    }

    /// Reads estimate.json.
    ///
    /// - Throws: ``ConfigError`` naming the file when it is missing, unreadable or invalid.
    public static func read(_ path: String) throws -> EstimateReport {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError.invalidValue(file: path, key: "estimate.json", expected: "the estimate stage's output",
                                           actual: "missing or unreadable", hint: "run `umtrain estimate-loss` first, or give --xi.")
        }
        do {
            let r = try JSONDecoder().decode(EstimateReport.self, from: data)
            guard r.xi.isFinite && r.xi >= 0 else {
                throw ConfigError.invalidValue(file: path, key: "xi", expected: "a finite loss >= 0 (nats)", actual: "\(r.xi)",
                                               hint: "re-run estimate-loss.")
            }
            return r
        } catch let e as ConfigError {
            throw e
        } catch {
            throw ConfigError.invalidValue(file: path, key: "estimate.json", expected: "valid JSON written by estimate-loss",
                                           actual: "unparsable (\(error))", hint: "re-run `umtrain estimate-loss`.")
        }
    }
}

/// Per-sample rows of atypical.csv (ascending id).
public struct EstimateTable: Sendable {
    public var ids: [Int64]
    public var labels: [Int]
    public var loss: [Double]
    public var maskedLoss: [Double]
    public var predicted: [Int64]
    public var maskedPredicted: [Int64]
    public var atypical: [Bool]
}

/// UM stage 1 over MPI: random weight masks, per-sample losses gathered by sample id, xi and
/// the global atypical-sample mask (identical on every rank).
public enum EstimateStage {
    public static func run(config: RunConfig, comm: Communicator, model: Classifier, data: TrainingData,
                           log: (String) -> Void) throws -> (EstimateReport, EstimateTable) {
        let e = config.estimate
        // With estimate.augment every pass (clean, held-out, each mask) reads the same augmented
        // view: the training view of epoch `train.epochs` (keyed by (seed, epoch, id)), so the
        // clean and masked predictions of a sample see the same image and the flip rule compares
        // like with like. Without augmentation configured the view is the plain image.
        let view: Int? = e.augment ? config.train.epochs : nil
        if e.augment && data.augmentation == nil && data.trainSet.trainingCrop == nil {
            throw ConfigError.invalidValue(file: "config", key: "estimate.augment", expected: "false when no training augmentation is configured",
                                           actual: "true", hint: "enable data.random_crop, data.horizontal_flip or data.random_resized_crop, or set estimate.augment: false.")
        }
        guard let rule = AtypicalRule.parse(e.rule, q: e.q) else {
            throw ConfigError.invalidValue(file: "config", key: "estimate.rule", expected: "flip, quantile or increase",
                                           actual: e.rule, hint: "flip is the default")
        }
        let batch = config.train.evalBatchSize
        let weights = prunableWeights(model)
        log("estimate: \(weights.count) prunable layers (\(weights.map(\.count).reduce(0, +)) weights); "
            + "\(data.trainIds.count) training samples, \(data.validationIds.count) held out; rule \(rule); "
            + (view.map { "augmented view of epoch \($0) (estimate.augment)" } ?? "no augmentation"))
        let clean = try Evaluator.evaluate(model: model, comm: comm, data: data, dataset: data.trainSet, ids: data.trainIds,
                                           batchSize: batch, augmentedEpoch: view)
        let heldout: EvaluationResult? = data.validationIds.isEmpty ? nil
            : try Evaluator.evaluate(model: model, comm: comm, data: data, dataset: data.trainSet, ids: data.validationIds,
                                     batchSize: batch, augmentedEpoch: view)
        log("unmasked: train loss \(f6(clean.loss)) (acc \(pct(clean.accuracy))), held-out loss \(heldout.map { f6($0.loss) } ?? "n/a")")
        var ratios = e.keepRatios
        if !ratios.contains(e.keepRatio) { ratios.append(e.keepRatio) }
        var stats: [RatioStatistics] = []
        var chosen: (result: EvaluationResult, seed: Int)?
        for r in ratios {
            var xis: [Double] = [], accs: [Double] = [], seeds: [Int] = []
            var results: [EvaluationResult] = []
            for m in 0..<e.masks {
                let seed = e.seed + m
                let saved = weights.map { $0.value.copy() }
                for (l, w) in weights.enumerated() {
                    let mask = WeightMask.random(n: w.count, keepRatio: r, seed: UInt64(seed), stream: UInt64(l))
                    w.value.withUnsafeMutableBufferPointer { v in for i in 0..<v.count { v[i] *= mask[i] } }
                }
                let masked = try Evaluator.evaluate(model: model, comm: comm, data: data, dataset: data.trainSet,
                                                    ids: data.trainIds, batchSize: batch, augmentedEpoch: view)
                for (w, s) in zip(weights, saved) { w.value.assign(s) }
                let xi = LossConstraint.xi(maskedLossesInIdOrder: masked.losses)
                xis.append(xi)
                accs.append(masked.accuracy)
                seeds.append(seed)
                results.append(masked)
                log("  keep \(r) mask seed \(seed): xi \(f6(xi)) (masked acc \(pct(masked.accuracy)))")
            }
            let order = xis.indices.sorted { xis[$0] != xis[$1] ? xis[$0] < xis[$1] : $0 < $1 }
            let medianIndex = order[(xis.count - 1) / 2]
            let mean = xis.reduce(0, +) / Double(xis.count)
            let std = (xis.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(xis.count)).squareRoot()
            stats.append(RatioStatistics(keepRatio: r, xiPerMask: xis, maskSeeds: seeds, mean: mean, median: xis[medianIndex],
                                         min: xis.min()!, max: xis.max()!, std: std, maskedAccuracyPerMask: accs))
            if r == e.keepRatio { chosen = (results[medianIndex], seeds[medianIndex]) }
        }
        let pick = chosen!
        let xi = LossConstraint.xi(maskedLossesInIdOrder: pick.result.losses)
        let labelOf = data.trainSet.labelsById()
        let labels = clean.ids.map { labelOf[Int($0)]! }
        let correct = zip(clean.predictions, labels).map { Int($0) == $1 }
        let maskedCorrect = zip(pick.result.predictions, labels).map { Int($0) == $1 }
        let atypical = rule.mask(loss: clean.losses, maskedLoss: pick.result.losses, correct: correct, maskedCorrect: maskedCorrect)
        // Every rank derived the mask from the same gathered vectors; verify it anyway.
        var bits = [Float](repeating: 0, count: atypical.count)
        for (i, a) in atypical.enumerated() where a { bits[i] = 1 }
        let checksum = bits.withUnsafeBufferPointer { RankConsistency.checksum($0) }
        if let diff = try RankConsistency.compare(names: ["atypical mask"], checksums: [checksum], comm: comm) {
            throw TrainingError.replicasDiverged(diff)
        }
        var perClass = [Int](repeating: 0, count: config.model.numClasses)
        for (i, a) in atypical.enumerated() where a { perClass[labels[i]] += 1 }
        let heldoutLoss = heldout?.loss ?? .nan
        let calibrated = heldout != nil && clean.loss < xi && xi < heldoutLoss
        let note: String
        if heldout == nil {
            note = "no held-out split (data.validation_size = 0): calibration cannot be checked"
        } else if calibrated {
            note = "xi \(f6(xi)) lies strictly between the training loss \(f6(clean.loss)) and the held-out loss \(f6(heldoutLoss))"
        } else if xi >= heldoutLoss {
            note = "xi \(f6(xi)) is NOT below the held-out loss \(f6(heldoutLoss)): UM would push the training loss above the held-out level and ruin the model; use a larger estimate.keep_ratio (e.g. 0.99)"
        } else {
            note = "xi \(f6(xi)) is NOT above the training loss \(f6(clean.loss)): flooding would never ascend; use a smaller estimate.keep_ratio"
        }
        let report = EstimateReport(
            xi: xi, keepRatio: e.keepRatio, maskSeed: pick.seed, rule: "\(rule)", count: clean.count,
            atypicalCount: atypical.filter { $0 }.count, atypicalPerClass: perClass, trainLoss: clean.loss,
            trainAccuracy: clean.accuracy, heldoutLoss: heldoutLoss, heldoutCount: heldout?.count ?? 0, calibrated: calibrated,
            calibrationNote: note, ratios: stats, maskChecksum: String(checksum, radix: 16), worldSize: comm.worldSize)
        let table = EstimateTable(ids: clean.ids, labels: labels, loss: clean.losses, maskedLoss: pick.result.losses,
                                  predicted: clean.predictions, maskedPredicted: pick.result.predictions, atypical: atypical)
        return (report, table)
    }

    /// The calibration table as text.
    public static func calibrationTable(_ r: EstimateReport) -> String {
        var s = "keep_ratio  masks  xi_mean   xi_median  xi_min    xi_max    xi_std\n"
        for x in r.ratios {
            s += "\(pad(String(x.keepRatio), 12))\(pad(String(x.xiPerMask.count), 7))\(pad(f6(x.mean), 10))\(pad(f6(x.median), 11))"
                + "\(pad(f6(x.min), 10))\(pad(f6(x.max), 10))\(f6(x.std))\n"
        }
        s += "training loss (unmasked) \(f6(r.trainLoss)); held-out loss \(f6(r.heldoutLoss)) on \(r.heldoutCount) samples\n"
        s += "recommended xi = median of keep \(r.keepRatio): \(f6(r.xi)) (mask seed \(r.maskSeed)); "
            + "atypical (\(r.rule)): \(r.atypicalCount) of \(r.count), per class \(r.atypicalPerClass)\n"
        s += (r.calibrated ? "calibrated: " : "WARNING, UNCALIBRATED: ") + r.calibrationNote
        return s
    }

    /// Writes estimate.json, atypical.csv and the loss histogram (rank 0).
    public static func write(_ report: EstimateReport, _ table: EstimateTable, to folder: RunFolder) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        var json = try enc.encode(report)
        // Keep the file valid JSON: non-finite values become null.
        if var text = String(data: json, encoding: .utf8) {
            for token in ["\"nan\"", "\"inf\"", "\"-inf\""] { text = text.replacingOccurrences(of: token, with: "null") }
            json = Data(text.utf8)
        }
        try AtomicFile.write([UInt8](json), to: folder.root + "/estimate.json")
        var csv = "id,label,loss,masked_loss,predicted,masked_predicted,atypical\n"
        csv.reserveCapacity(table.ids.count * 48)
        for i in 0..<table.ids.count {
            csv += "\(table.ids[i]),\(table.labels[i]),\(table.loss[i]),\(table.maskedLoss[i]),\(table.predicted[i]),"
                + "\(table.maskedPredicted[i]),\(table.atypical[i] ? 1 : 0)\n"
        }
        try AtomicFile.write(csv, to: folder.root + "/atypical.csv")
        // Per-sample losses span orders of magnitude on a memorised training set: plot log10.
        func lg(_ v: [Double]) -> [Double] { v.map { log10(max($0, 1e-6)) } }
        let svg = SVGPlot.histogram(
            title: "per-sample training loss, log10 nats (xi = \(f6(report.xi)) at keep \(report.keepRatio))",
            xLabel: "log10 cross-entropy (nats); xi at \(String(format: "%.2f", log10(max(report.xi, 1e-6))))",
            series: [.init(name: "unmasked", color: "#1f77b4", values: lg(table.loss)),
                     .init(name: "masked (keep \(report.keepRatio))", color: "#d62728", values: lg(table.maskedLoss)),
                     .init(name: "atypical (masked)", color: "#2ca02c",
                           values: lg(zip(table.maskedLoss, table.atypical).filter { $0.1 }.map(\.0)))],
            bins: 60, range: -6...1.5, density: true)
        try AtomicFile.write(svg, to: folder.reports + "/loss_histogram.svg")
    }
}

func f6(_ x: Double) -> String { String(format: "%.6f", x) }
func pct(_ x: Double) -> String { String(format: "%.2f%%", 100 * x) }
func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }
