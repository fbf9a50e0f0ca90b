import Foundation
import OODDetection

/// The validation numbers of one fine-tuned model (`evaluate/<label>/validation.json`): the
/// OOD-validation measurement (ID validation split vs the validation OOD sets, never a test
/// set) that selection by validation reads.
public struct ValidationRecord: Codable, Equatable, Sendable {
    public var label: String
    /// The cell's xi in nats (nil for the CE control).
    public var xi: Double?
    /// The selection score (`train.ood_validation_scores[0]`).
    public var score: String
    /// Mean AUROC and FPR95 of each measured score over the validation OOD sets (fractions).
    public var auroc: [String: Double]
    public var fpr95: [String: Double]
    public var heldOutLoss: Double
    public var heldOutAccuracy: Double
    public var sets: [String]
    /// FNV-1a of the weights measured.
    public var weightsChecksum: String

    enum CodingKeys: String, CodingKey {
        case label, xi, score, auroc, fpr95, sets
        case heldOutLoss = "held_out_loss", heldOutAccuracy = "held_out_accuracy", weightsChecksum = "weights_checksum"
    }

    /// Measures the model in `weights` on the validation data and writes `validation.json` into
    /// `folder` (rank 0). Collective.
    /// - Throws: ``ConfigError`` without an ID validation split or validation OOD sets; model
    ///   loading and metric errors.
    static func measure(config: RunConfig, context: StageContext, label: String, weights: String, data: TrainingData, sets: [OODSet],
                        folder: RunFolder, xi: Double?) throws -> ValidationRecord {
        let model = try ModelLoader.load(config: config, checkpoint: weights, comm: context.comm, convolution: context.convolution.algorithm)
        let monitor = try OODValidationMonitor(config: config, sets: sets, validationCount: data.validationIds.count, folder: nil,
                                               comm: context.comm, resume: false)
        let point = try monitor.measure(model: model, comm: context.comm, data: data)
        let record = ValidationRecord(label: label, xi: xi,
                                      score: monitor.kinds[0].rawValue,
                                      auroc: Dictionary(uniqueKeysWithValues: point.auroc.map { ($0.key.rawValue, $0.value) }),
                                      fpr95: Dictionary(uniqueKeysWithValues: point.fpr95.map { ($0.key.rawValue, $0.value) }),
                                      heldOutLoss: point.heldOutLoss, heldOutAccuracy: point.heldOutAccuracy,
                                      sets: sets.filter { !$0.synthetic }.map(\.name), weightsChecksum: StageRecord.checksum(ofFile: weights) ?? "")
        if context.isRoot {
            try folder.create()
            try AtomicFile.write([UInt8](try Selection.encoder.encode(record)), to: folder.root + "/validation.json")
        }
        context.log("validation (\(record.sets.joined(separator: ", "))): \(record.label) \(record.score) AUROC "
            + "\(fmt(100 * (record.auroc[record.score] ?? .nan), 2)), held-out loss \(fmt(record.heldOutLoss, 4))")
        return record
    }

    /// The selection AUROC (NaN when missing).
    public var selectionAUROC: Double { auroc[score] ?? .nan }
}

/// Which cell of a sweep each rule picks, per method: (a) the OOD-free default rule (the
/// first xi target on the first schedule: `um.xi`'s first value, 0 = the estimate's
/// recommendation) and (b) the cell with the best selection AUROC on the validation OOD sets.
/// Both use no test data; `selection.json` holds only validation numbers, so it is identical
/// whatever the test sets hold. Their test outcomes are in summary.md.
public struct Selection: Codable, Equatable, Sendable {
    public struct Pick: Codable, Equatable, Sendable {
        public var method: String
        /// `default` or `validation`.
        public var rule: String
        public var label: String
        public var schedule: String
        public var xiTarget: String
        public var xi: Double?
        public var validationAUROC: Double?
        /// The matched CE control's label.
        public var control: String?
        /// True when the rule's cell did not run (its flood level was outside the training and
        /// held-out losses); nil in files written before this field.
        public var skipped: Bool?

        enum CodingKeys: String, CodingKey {
            case method, rule, label, schedule, xi, control, skipped
            case xiTarget = "xi_target", validationAUROC = "validation_auroc"
        }
    }

    public var score: String
    public var picks: [Pick]
    /// Every fine-tuned model's validation numbers, by label.
    public var validation: [String: ValidationRecord]

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }()

    /// The picks of `plan` from the validation records (test reports are not consulted). `ran`
    /// holds the cells that ran; the default cell is reported as skipped when it did not, and
    /// the validation rule chooses among the cells that ran and were measured.
    public static func make(plan: SweepPlan, validation: [String: ValidationRecord], score: String,
                            ran: Set<String>? = nil) -> Selection {
        var picks: [Pick] = []
        for method in [FinetuneMethod.um, .umap] {
            let cells = plan.cells.filter { $0.method == method }
            guard let first = cells.first(where: { $0.schedule == plan.schedules.first && $0.xi == plan.targets.first }) ?? cells.first else {
                continue
            }
            func pick(_ c: SweepCell, rule: String) -> Pick {
                Pick(method: method.rawValue, rule: rule, label: c.label, schedule: c.schedule.name, xiTarget: c.xi?.tag ?? "",
                     xi: validation[c.label]?.xi, validationAUROC: validation[c.label]?.selectionAUROC, control: plan.control(of: c)?.label,
                     skipped: (ran.map { !$0.contains(c.label) } ?? false) ? true : nil)
            }
            picks.append(pick(first, rule: "default"))
            // Highest validation AUROC; ties and NaN resolved by plan order (first wins).
            var best: SweepCell?
            for c in cells where ran?.contains(c.label) ?? true {
                guard let v = validation[c.label]?.selectionAUROC, v.isFinite else { continue }
                if best == nil || v > validation[best!.label]!.selectionAUROC { best = c }
            }
            if let best { picks.append(pick(best, rule: "validation")) }
        }
        return Selection(score: score, picks: picks, validation: validation)
    }

    /// Writes selection.json (rank 0).
    public func write(to path: String) throws {
        try AtomicFile.write([UInt8](try Self.encoder.encode(self)), to: path)
    }

    /// The summary's opening section: each pick with its validation AUROC and its test outcome
    /// against the baseline and the matched CE control (this seed only; the seeds summary pairs
    /// them over seeds).
    public static func markdown(_ s: Selection, reports: [(label: String, report: OODReport)]) -> String {
        func p2(_ x: Double?) -> String { x.map { $0.isFinite ? String(format: "%.2f", 100 * $0) : "n/a" } ?? "n/a" }
        func d2(_ x: Double) -> String { x.isFinite ? String(format: "%+.2f", 100 * x) : "n/a" }
        let byLabel = Dictionary(reports.map { ($0.label, $0.report) }, uniquingKeysWith: { a, _ in a })
        var t = "## Selected cells\n\n"
        t += "(a) `default`: the OOD-free rule (the first xi target on the first schedule). (b) `validation`: the cell with the best "
            + "mean \(s.score) AUROC on the validation OOD sets (validation data only; selection.json holds no test number). "
            + "Test columns: \(s.score) on the OOD test sets, averaged over the real sets, change against the baseline and the matched "
            + "CE control of the same schedule, in percentage points (one seed; seeds-summary.md pairs over seeds).\n\n"
        t += "| method | rule | cell | xi (nats) | val AUROC | test AUROC | vs baseline | vs CE control | test FPR95 | vs baseline | vs CE control | ID acc |\n"
        t += "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        let kind = ScoreKind(rawValue: s.score) ?? .energy
        for p in s.picks {
            if p.skipped == true {
                t += "| \(p.method) | \(p.rule) | \(p.label) | skipped (flood level outside the training and held-out losses) |||||||||\n"
                continue
            }
            let m = byLabel[p.label]?.averages[kind], b = byLabel["baseline"]?.averages[kind]
            let c = p.control.flatMap { byLabel[$0]?.averages[kind] }
            func diff(_ x: Double?, _ y: Double?) -> String { (x != nil && y != nil) ? d2(x! - y!) : "n/a" }
            t += "| \(p.method) | \(p.rule) | \(p.label) | \(p.xi.map { String(format: "%.4f", $0) } ?? "n/a") | \(p2(p.validationAUROC)) | "
                + "\(p2(m?.auroc)) | \(diff(m?.auroc, b?.auroc)) | \(diff(m?.auroc, c?.auroc)) | \(p2(m?.fpr95)) | "
                + "\(diff(m?.fpr95, b?.fpr95)) | \(diff(m?.fpr95, c?.fpr95)) | \(p2(byLabel[p.label]?.idAccuracy)) |\n"
        }
        return t
    }
}

extension Selection {
    /// The selection rules over seeds: for each (method, rule), the cell each seed picked, and
    /// the paired change of the picked cell against the baseline and against its matched CE
    /// control of the same seed (mean, 95% t-interval, seeds improved), for every score's
    /// AUROC and FPR95 and the ID accuracy. Selection used validation data only; the test numbers
    /// are read after it.
    public static func seedsMarkdown(_ seeds: [(seed: Int, selection: Selection, reports: [(label: String, report: OODReport)])]) -> String {
        guard let first = seeds.first else { return "" }
        var t = "## Selection rules over seeds\n\n"
        t += "Per seed, (a) `default` takes the first xi target on the first schedule (no OOD data); (b) `validation` takes the cell "
            + "with the best mean \(first.selection.score) AUROC on the validation OOD sets (never the test sets). Differences in "
            + "percentage points, paired by seed; Comparison's conventions (docs/metrics.md).\n\n"
        let rules = first.selection.picks.map { ($0.method, $0.rule) }
        let kinds = first.reports.first?.report.scoreOrder ?? []
        for (method, rule) in rules {
            let picks = seeds.map { s in (s, s.selection.picks.first { $0.method == method && $0.rule == rule }) }
            t += "**\(method), \(rule)**: " + picks.map { "seed \($0.0.seed) → \($0.1.map { $0.skipped == true ? "\($0.label) (skipped)" : $0.label } ?? "none")" }
                .joined(separator: ", ") + "\n\n"
            t += "| score | reference | seeds | ID acc | AUROC | FPR95 |\n|---|---|---|---|---|---|\n"
            for kind in kinds {
                for reference in ["baseline", "CE control"] {
                    let pairs = picks.compactMap { s, p -> (method: (Double, OODMetrics), reference: (Double, OODMetrics))? in
                        guard let p, p.skipped != true else { return nil }
                        let refLabel = reference == "baseline" ? "baseline" : (p.control ?? "")
                        guard let mr = s.reports.first(where: { $0.label == p.label })?.report,
                              let rr = s.reports.first(where: { $0.label == refLabel })?.report,
                              let mm = mr.averages[kind], let rm = rr.averages[kind] else { return nil }
                        return ((mr.idAccuracy, mm), (rr.idAccuracy, rm))
                    }
                    guard let d = Comparison.pairedTriple(pairs) else { continue }
                    t += "| \(kind) | \(reference) | \(d.auroc.seeds) | \(String(format: "%+.2f", 100 * d.acc.mean)) | \(Comparison.cell(d.auroc)) | "
                        + "\(Comparison.cell(d.fpr)) |\n"
                }
            }
            t += "\n"
        }
        return t
    }

    /// Reads selection.json.
    /// - Throws: ``ConfigError`` naming the file.
    public static func read(_ path: String) throws -> Selection {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError.invalidValue(file: path, key: "selection.json", expected: "the file a sweep writes", actual: "missing",
                                           hint: "run the pipeline with a sweep (um.xi_positions or finetune.schedules).")
        }
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do { return try d.decode(Selection.self, from: data) } catch {
            throw ConfigError.invalidValue(file: path, key: "selection.json", expected: "valid JSON written by the pipeline",
                                           actual: "unparsable (\(error))", hint: "re-run the pipeline with --resume.")
        }
    }
}
