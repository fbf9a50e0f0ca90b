import Distributed
import Foundation
import TensorCore

/// Where an OOD evaluation spends its time: wall seconds per phase, so the cost of each score
/// can be read off (`ood.json` → `cost_seconds`, the `evaluate` log, docs/metrics.md).
///
/// Phases are named `<what>` or `<score>: <what>`: the forward pass over every set is shared by
/// all scores (`forward`), each score adds its own work (`odin: backward + forward`,
/// `knn: search`, `mahalanobis: fit`, ...). Times are this rank's wall seconds, then the maximum
/// over ranks (the slowest rank sets the job's pace).
public final class EvaluationCost: @unchecked Sendable {
    /// Phase names in first-use order, and their seconds.
    public private(set) var order: [String] = []
    public private(set) var seconds: [String: Double] = [:]

    public init() {}

    /// Declares phases up front (at 0 s) so every rank lists them in the same order, even a rank
    /// that gets no batch of some set.
    public func register(_ phases: [String]) {
        for p in phases where seconds[p] == nil {
            order.append(p)
            seconds[p] = 0
        }
    }

    /// The phases an evaluation of `kinds` records, in report order.
    public static func phases(for kinds: [ScoreKind]) -> [String] {
        var p: [String] = []
        if kinds.contains(where: \.needsTrainingFeatures) { p += ["fit: training-feature forward", "fit: gather features"] }
        p += ["batches (decode, normalise)", "forward", "ID accuracy"]
        for k in kinds {
            switch k {
            case .msp, .maxLogit, .energy: p.append("\(k.rawValue): from logits")
            case .odin: p.append("odin: backward + forward")
            case .mahalanobis: p += ["mahalanobis: fit", "mahalanobis: distances"]
            case .knn: p += ["knn: fit", "knn: search"]
            case .react: p += ["react: fit", "react: clip + head"]
            case .gen: p.append("gen: from logits")
            case .fdbd: p += ["fdbd: fit", "fdbd: distances"]
            case .ash: p.append("ash: shape + head")
            case .scale: p.append("scale: shape + head")
            case .rmds: p += ["rmds: fit", "rmds: distances"]
            case .vim: p += ["vim: fit", "vim: residuals"]
            case .nnguide: p += ["nnguide: fit", "nnguide: search"]
            }
        }
        return p + ["gather by id", "metrics", "bootstrap intervals"]
    }

    /// Adds `s` seconds to `phase`.
    public func add(_ phase: String, _ s: Double) {
        if seconds[phase] == nil { order.append(phase) }
        seconds[phase, default: 0] += s
    }

    /// Runs `body`, charging its wall time to `phase`.
    @discardableResult
    public func time<T>(_ phase: String, _ body: () throws -> T) rethrows -> T {
        let t0 = DispatchTime.now().uptimeNanoseconds
        defer { add(phase, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9) }
        return try body()
    }

    /// Replaces every phase's seconds by the maximum over ranks. Every rank must have recorded
    /// the same phases in the same order (they run the same code). Collective.
    /// - Throws: communicator errors; ``ConfigError`` when the ranks' phase lists differ.
    public func maxOverRanks(_ comm: Communicator) throws {
        guard comm.worldSize > 1 else { return }
        // The phase names, hashed, must agree (same phases in the same order on every rank).
        var h = FNV1a64()
        h.add(bytes: order.joined(separator: "\u{1}").utf8)
        let names = Int64(bitPattern: h.value)
        var lo = [names], hi = [names]
        try comm.allreduce(&lo, op: .min)
        try comm.allreduce(&hi, op: .max)
        guard lo == hi else {
            throw ConfigError.invalidValue(file: "(evaluation)", key: "cost phases", expected: "the same phases on every rank",
                                           actual: "different phase lists", hint: "this is a bug; please report it.")
        }
        var v = order.map { seconds[$0]! }
        try comm.allreduce(&v, op: .max)
        for (i, p) in order.enumerated() { seconds[p] = v[i] }
    }

    /// The sum over every phase (seconds). After ``maxOverRanks(_:)`` each phase is its slowest
    /// rank's, so the sum is an upper bound on the wall time (the stage's own wall time is logged
    /// beside it).
    public var total: Double { order.reduce(0) { $0 + seconds[$1]! } }

    /// Seconds attributable to `score`: the phases named `<score>: ...`.
    public func seconds(of score: ScoreKind) -> Double {
        order.filter { $0.hasPrefix(score.rawValue + ":") }.reduce(0) { $0 + seconds[$1]! }
    }

    /// One line for the log: the shared phases and each score's own cost, e.g.
    /// `forward 9.1 s; odin 12.0 s; knn 1.1 s; ... total 26.3 s`.
    public func summaryLine(scores: [ScoreKind]) -> String {
        let shared = order.filter { p in !scores.contains { p.hasPrefix($0.rawValue + ":") } }
        var parts = shared.map { "\($0) \(fmt(seconds[$0]!, 2)) s" }
        parts += scores.map { "\($0.rawValue) \(fmt(seconds(of: $0), 2)) s" }
        return parts.joined(separator: "; ") + "; total \(fmt(total, 1)) s"
    }

    /// `{phase: seconds}` for ood.json.
    public var json: [String: Double] { seconds }
}
