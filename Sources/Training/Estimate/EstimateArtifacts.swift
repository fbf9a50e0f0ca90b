import Foundation
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
    /// How `xi` was recommended (`mask` or `position`).
    public var xiRule = "mask"
    /// The mask estimator's xi (the median masked loss at `keepRatio`), whatever the rule.
    public var maskXi = Double.nan
    /// Where `maskXi` sits between the training loss (0) and the held-out loss (1).
    public var maskXiPosition = Double.nan

    enum CodingKeys: String, CodingKey {
        case xi, rule, count, calibrated, ratios
        case xiRule = "xi_rule", maskXi = "mask_xi", maskXiPosition = "mask_xi_position"
        case keepRatio = "keep_ratio", maskSeed = "mask_seed", atypicalCount = "atypical_count",
             atypicalPerClass = "atypical_per_class", trainLoss = "train_loss", trainAccuracy = "train_accuracy",
             heldoutLoss = "heldout_loss", heldoutCount = "heldout_count", calibrationNote = "calibration_note",
             maskChecksum = "mask_checksum", worldSize = "world_size"
    }

    /// Writes estimate.json (rank 0): sorted keys; non-finite numbers become `null`.
    public func write(to path: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        var json = try enc.encode(self)
        if var text = String(data: json, encoding: .utf8) {
            for token in ["\"nan\"", "\"inf\"", "\"-inf\""] { text = text.replacingOccurrences(of: token, with: "null") }
            json = Data(text.utf8)
        }
        try AtomicFile.write([UInt8](json), to: path)
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

extension EstimateReport {
    /// Decodes estimate.json; a `null` held-out loss (no held-out split, written as null to keep
    /// the file valid JSON) reads back as NaN.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        xi = try c.decode(Double.self, forKey: .xi)
        keepRatio = try c.decode(Double.self, forKey: .keepRatio)
        maskSeed = try c.decode(Int.self, forKey: .maskSeed)
        rule = try c.decode(String.self, forKey: .rule)
        count = try c.decode(Int.self, forKey: .count)
        atypicalCount = try c.decode(Int.self, forKey: .atypicalCount)
        atypicalPerClass = try c.decode([Int].self, forKey: .atypicalPerClass)
        trainLoss = try c.decode(Double.self, forKey: .trainLoss)
        trainAccuracy = try c.decode(Double.self, forKey: .trainAccuracy)
        heldoutLoss = try c.decodeIfPresent(Double.self, forKey: .heldoutLoss) ?? .nan
        heldoutCount = try c.decode(Int.self, forKey: .heldoutCount)
        calibrated = try c.decode(Bool.self, forKey: .calibrated)
        calibrationNote = try c.decode(String.self, forKey: .calibrationNote)
        ratios = try c.decode([RatioStatistics].self, forKey: .ratios)
        maskChecksum = try c.decode(String.self, forKey: .maskChecksum)
        worldSize = try c.decode(Int.self, forKey: .worldSize)
        // Absent from estimate.json files written before estimate.xi_rule existed.
        xiRule = try c.decodeIfPresent(String.self, forKey: .xiRule) ?? "mask"
        maskXi = try c.decodeIfPresent(Double.self, forKey: .maskXi) ?? xi
        maskXiPosition = try c.decodeIfPresent(Double.self, forKey: .maskXiPosition) ?? (xi - trainLoss) / (heldoutLoss - trainLoss)
    }
}

/// The per-sample table of the estimate stage, `atypical.csv`: one row per training id in
/// ascending id order, with the unmasked and masked loss (nats) and prediction, and whether the
/// sample is atypical. Written by the estimate stage, read by the `um.atypical_only` ablation.
public struct AtypicalTable: Equatable, Sendable {
    public var ids: [Int64]
    public var labels: [Int]
    public var loss: [Double]
    public var maskedLoss: [Double]
    public var predicted: [Int64]
    public var maskedPredicted: [Int64]
    public var atypical: [Bool]

    /// The CSV columns, in file order.
    public static let columns = ["id", "label", "loss", "masked_loss", "predicted", "masked_predicted", "atypical"]

    public init(ids: [Int64], labels: [Int], loss: [Double], maskedLoss: [Double], predicted: [Int64], maskedPredicted: [Int64],
                atypical: [Bool]) {
        self.ids = ids
        self.labels = labels
        self.loss = loss
        self.maskedLoss = maskedLoss
        self.predicted = predicted
        self.maskedPredicted = maskedPredicted
        self.atypical = atypical
    }

    /// The ids marked atypical.
    public var atypicalIDs: Set<Int64> { Set(zip(ids, atypical).filter(\.1).map(\.0)) }

    /// The file's text: a header, then one line per sample (losses in Swift's shortest
    /// round-trip decimal form, atypical as 0/1).
    public func csv() -> String {
        var csv = Self.columns.joined(separator: ",") + "\n"
        csv.reserveCapacity(ids.count * 48)
        for i in 0..<ids.count {
            csv += "\(ids[i]),\(labels[i]),\(loss[i]),\(maskedLoss[i]),\(predicted[i]),\(maskedPredicted[i]),\(atypical[i] ? 1 : 0)\n"
        }
        return csv
    }

    /// Reads `atypical.csv`, finding the columns by their header names.
    /// - Throws: ``ConfigError`` naming the file and the line or column that is wrong.
    public static func read(_ path: String) throws -> AtypicalTable {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigError.invalidValue(file: path, key: "atypical.csv", expected: "the estimate stage's per-sample table",
                                           actual: "missing or unreadable", hint: "run `umtrain estimate-loss` (or the pipeline's estimate stage) first.")
        }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: true)
        let header = lines.first.map { $0.split(separator: ",").map(String.init) } ?? []
        var index: [String: Int] = [:]
        for name in columns {
            guard let i = header.firstIndex(of: name) else {
                throw ConfigError.invalidValue(file: path, key: "header", expected: "the columns \(columns.joined(separator: ","))",
                                               actual: "no column '\(name)' in '\(header.joined(separator: ","))'",
                                               hint: "re-run `umtrain estimate-loss` to rewrite the file.")
            }
            index[name] = i
        }
        var table = AtypicalTable(ids: [], labels: [], loss: [], maskedLoss: [], predicted: [], maskedPredicted: [], atypical: [])
        for (n, line) in lines.dropFirst().enumerated() {
            let f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            func field<T>(_ name: String, _ parse: (String) -> T?) throws -> T {
                let i = index[name]!
                guard i < f.count, let v = parse(f[i]) else {
                    throw ConfigError.invalidValue(file: path, key: "line \(n + 2), column \(name)", expected: "a value of type \(T.self)",
                                                   actual: i < f.count ? "'\(f[i])'" : "a missing cell", hint: "re-run `umtrain estimate-loss`.")
                }
                return v
            }
            table.ids.append(try field("id") { Int64($0) })
            table.labels.append(try field("label") { Int($0) })
            table.loss.append(try field("loss") { Double($0) })
            table.maskedLoss.append(try field("masked_loss") { Double($0) })
            table.predicted.append(try field("predicted") { Int64($0) })
            table.maskedPredicted.append(try field("masked_predicted") { Int64($0) })
            table.atypical.append(try field("atypical") { $0 == "1" ? true : ($0 == "0" ? false : nil) })
        }
        return table
    }
}

extension AtypicalRuleName {
    /// The rule with fraction `q` (used by `quantile` and `increase`).
    public func rule(q: Double) -> AtypicalRule {
        switch self {
        case .flip: return .flip
        case .quantile: return .quantile(q)
        case .increase: return .increase(q)
        }
    }
}

/// Writing the estimate stage's outputs and its calibration table.
public enum EstimateArtifacts {
    /// Writes estimate.json, atypical.csv and reports/loss_histogram.svg into `folder` (rank 0).
    public static func write(_ report: EstimateReport, _ table: AtypicalTable, to folder: RunFolder) throws {
        try report.write(to: folder.root + "/estimate.json")
        try AtomicFile.write(table.csv(), to: folder.root + "/atypical.csv")
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
}
