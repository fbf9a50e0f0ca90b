import Foundation

/// Where a UM cell's loss constraint comes from.
public enum XiTarget: Hashable, Sendable, CustomStringConvertible {
    /// The estimate stage's recommendation (`um.xi: 0`).
    case estimate
    /// A loss in nats (`um.xi: 0.15`).
    case nats(Double)
    /// A fraction p of the way from the training loss to the held-out loss
    /// (`um.xi_positions`): xi = train + p * (held-out - train).
    case position(Double)

    /// The cell-name tag: `est`, `xi0.15`, `p0.1` (Swift's shortest decimal form).
    public var tag: String {
        switch self {
        case .estimate: return "est"
        case .nats(let x): return "xi\(x)"
        case .position(let p): return "p\(p)"
        }
    }

    public var description: String {
        switch self {
        case .estimate: return "the estimate's recommendation"
        case .nats(let x): return "xi \(x) nats"
        case .position(let p): return "position \(p) of the way from the training to the held-out loss"
        }
    }

    /// xi in nats. A position places the flood level xi / beta (`um.beta`) at p of the way, so
    /// xi = beta * (train + p * (held-out - train)); with beta = 1 xi itself sits there. Throws
    /// when the target needs estimate.json and there is none, or it has no held-out loss.
    /// - Throws: ``ConfigError`` naming `um.xi_positions` or estimate.json.
    public func resolve(_ estimate: EstimateReport?, beta: Double = 1) throws -> Double {
        switch self {
        case .nats(let x): return x
        case .estimate:
            guard let e = estimate else {
                throw ConfigError.invalidValue(file: "estimate/estimate.json", key: "xi", expected: "the estimate stage's output",
                                               actual: "missing", hint: "run the estimate stage, or give um.xi in nats.")
            }
            return e.xi
        case .position(let p):
            guard let e = estimate, e.heldoutLoss.isFinite else {
                throw ConfigError.invalidValue(file: "estimate/estimate.json", key: "um.xi_positions",
                                               expected: "an estimate.json with training and held-out losses",
                                               actual: estimate == nil ? "no estimate" : "no held-out loss (data.validation_size 0)",
                                               hint: "positions need data.validation_size > 0 and the estimate stage.")
            }
            return beta * (e.trainLoss + p * (e.heldoutLoss - e.trainLoss))
        }
    }
}

/// One fine-tuning run of the pipeline: a method on a named schedule, at an xi target (UM,
/// UMAP) or as the cross-entropy control of that schedule.
public struct SweepCell: Hashable, Sendable {
    public var method: FinetuneMethod
    public var schedule: FinetuneSchedule
    /// nil for the CE control.
    public var xi: XiTarget?
    /// The model's name in reports, and its folders `<run>/<label>/` and `evaluate/<label>/`.
    public var label: String

    public var isControl: Bool { method == .ce }
}

/// The fine-tuning cells of a pipeline run: every UM and UMAP variant (schedule x xi target)
/// and, per schedule, the CE control on the identical schedule. Without a sweep (one schedule,
/// one xi) the cells are the classic `um`, `umap` and `ce_finetune`.
public struct SweepPlan: Sendable {
    public var cells: [SweepCell]
    /// Whether the config asks for more than the classic three models.
    public var isSweep: Bool
    public var targets: [XiTarget]
    public var schedules: [FinetuneSchedule]

    /// The plan of `config`: schedules from `finetune.schedules` (or the one `finetune`
    /// schedule, named `default`), xi targets from `um.xi` then `um.xi_positions`. Order: per
    /// schedule, the CE control, then UM and UMAP per target.
    public init(config: RunConfig, includeUM: Bool = true, includeUMAP: Bool = true) {
        let f = config.finetune
        let explicit = f.explicitSchedules
        schedules = explicit.isEmpty
            ? [FinetuneSchedule(name: "default", epochs: f.epochs, lr: f.lr, schedule: f.schedule, warmupEpochs: f.warmupEpochs)]
            : explicit
        targets = config.um.xi.map { $0 == 0 ? XiTarget.estimate : .nats($0) } + config.um.xiPositions.map { .position($0) }
        isSweep = !explicit.isEmpty || targets.count > 1
        var cells: [SweepCell] = []
        for s in schedules {
            cells.append(SweepCell(method: .ce, schedule: s, xi: nil, label: isSweep ? "ce-\(s.name)" : "ce_finetune"))
            for t in targets {
                if includeUM { cells.append(SweepCell(method: .um, schedule: s, xi: t, label: isSweep ? "um-\(s.name)-\(t.tag)" : "um")) }
                if includeUMAP {
                    cells.append(SweepCell(method: .umap, schedule: s, xi: t, label: isSweep ? "umap-\(s.name)-\(t.tag)" : "umap"))
                }
            }
        }
        // The classic order is um, umap, ce_finetune (kept so earlier runs' logs and summaries read the same).
        self.cells = isSweep ? cells : cells.filter { !$0.isControl } + cells.filter(\.isControl)
    }

    /// The CE control on `cell`'s schedule.
    public func control(of cell: SweepCell) -> SweepCell? {
        cells.first { $0.isControl && $0.schedule == cell.schedule }
    }

    /// The config one cell runs with: its schedule in `finetune`, its xi (nats, resolved) as
    /// the only `um.xi`, and no sweep lists, so a cell run inside a sweep and the same cell run
    /// alone see the same config (and the same stage checksum).
    public static func cellConfig(_ config: RunConfig, cell: SweepCell, xi: Double?) -> RunConfig {
        var c = config
        let s = cell.schedule
        c.finetune.epochs = s.restart ? config.train.epochs : s.epochs
        c.finetune.lr = s.restart ? config.train.lr : s.lr
        c.finetune.schedule = s.restart ? config.train.schedule : s.schedule
        c.finetune.warmupEpochs = s.restart ? config.train.warmupEpochs : s.warmupEpochs
        c.finetune.schedules = [FinetuneSchedule()]
        c.um.xi = [xi ?? 0]
        c.um.xiPositions = []
        return c
    }

    /// The config without anything that only fine-tuning reads, for the completion records of
    /// the train and estimate stages: adding a sweep cell does not make training run again.
    public static func trainingConfig(_ config: RunConfig) -> RunConfig {
        var c = config
        c.finetune = FinetuneSection()
        c.um = UMSection()
        c.umap = UMAPSection()
        return c
    }

    /// The config without anything only the estimate stage or fine-tuning reads: the train
    /// stage's completion record.
    public static func trainOnlyConfig(_ config: RunConfig) -> RunConfig {
        var c = trainingConfig(config)
        c.estimate = EstimateSection()
        return c
    }

    /// The method of a report label (`um`, `umap-short-p0.1`, `ce-restart`, ...), nil for models
    /// that are not fine-tuning cells (baseline, best_val_epoch).
    public static func method(ofLabel label: String) -> FinetuneMethod? {
        if label == "ce_finetune" || label.hasPrefix("ce-") { return .ce }
        if label == "um" || label.hasPrefix("um-") { return .um }
        if label == "umap" || label.hasPrefix("umap-") { return .umap }
        return nil
    }

    /// The label of the CE control matching a UM/UMAP label: `ce_finetune` for `um`/`umap`,
    /// `ce-<schedule>` for `um-<schedule>-<xi>`.
    public static func controlLabel(of label: String) -> String? {
        guard let m = method(ofLabel: label), m != .ce else { return nil }
        if label == "um" || label == "umap" { return "ce_finetune" }
        let parts = label.split(separator: "-", maxSplits: 2).map(String.init)
        return parts.count == 3 ? "ce-\(parts[1])" : nil
    }
}
