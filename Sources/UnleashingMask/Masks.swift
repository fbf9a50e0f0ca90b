import TensorCore

/// Weight masks for Unleashing Mask (Zhu et al., ICML 2023, arXiv 2306.03715).
public enum WeightMask {
    /// The number of weights kept for keep ratio `keepRatio` of `n` weights:
    /// `round(keepRatio * n)`, half away from zero, at least 1 (for n >= 1).
    ///
    /// The UM reference code instead prunes `int((1 - k) * n)` in floating point, which is
    /// off by one whenever `(1 - k) * n` lands a hair below an integer (n = 10, k = 0.9 prunes
    /// nothing there); this is the fix (docs/method.md).
    ///
    /// - Precondition: `0 < keepRatio <= 1`, `n >= 0`.
    public static func keptCount(n: Int, keepRatio: Double) -> Int {
        precondition(keepRatio > 0 && keepRatio <= 1, "keepRatio must be in (0, 1], got \(keepRatio)")
        precondition(n >= 0, "n must be >= 0, got \(n)")
        guard n > 0 else { return 0 }
        let k = Int((keepRatio * Double(n)).rounded(.toNearestOrAwayFromZero))
        return min(n, max(1, k))
    }

    /// A seeded random mask keeping exactly ``keptCount(n:keepRatio:)`` of `n` positions
    /// (1 = kept). The kept set is the first k of a Fisher-Yates permutation driven by
    /// SplitMix64 seeded from (seed, stream), so it is reproducible and the same on every rank.
    /// Stage 1 of UM (the "random mask" whose masked loss defines xi).
    public static func random(n: Int, keepRatio: Double, seed: UInt64, stream: UInt64) -> [Float] {
        let k = keptCount(n: n, keepRatio: keepRatio)
        var mask = [Float](repeating: 0, count: n)
        let perm = Shuffle.permutation(count: n, seed: seed, stream: stream)
        for i in perm.prefix(k) { mask[i] = 1 }
        return mask
    }

    /// Keeps the `keep` entries of largest |score| (1 = kept). Ties go to the LOWER index, so
    /// the mask is a pure function of the scores and identical on every rank
    /// (|s| = [0.5, 0.5, 0.5, 0.1], keep 2 -> [1, 1, 0, 0]). UMAP (edge-popup) top-k.
    public static func topK(scores: UnsafeBufferPointer<Float>, keep: Int) -> [Float] {
        let n = scores.count
        precondition(keep >= 0 && keep <= n, "keep \(keep) not in 0...\(n)")
        var order = Array(0..<n)
        order.sort { a, b in
            let x = abs(scores[a]), y = abs(scores[b])
            return x != y ? x > y : a < b
        }
        var mask = [Float](repeating: 0, count: n)
        for i in order.prefix(keep) { mask[i] = 1 }
        return mask
    }

    /// Model-wise top-k: one global threshold over all layers' |scores|; ties go to the lower
    /// (layer, index) position. Returns one mask per layer.
    public static func globalTopK(scores: [[Float]], keepRatio: Double) -> [[Float]] {
        var flat: [(layer: Int, index: Int, mag: Float)] = []
        for (l, s) in scores.enumerated() { for (i, v) in s.enumerated() { flat.append((l, i, abs(v))) } }
        let keep = keptCount(n: flat.count, keepRatio: keepRatio)
        flat.sort { a, b in a.mag != b.mag ? a.mag > b.mag : (a.layer != b.layer ? a.layer < b.layer : a.index < b.index) }
        var masks = scores.map { [Float](repeating: 0, count: $0.count) }
        for e in flat.prefix(keep) { masks[e.layer][e.index] = 1 }
        return masks
    }
}

/// The loss constraint xi and the atypical-sample mask (UM stage 1).
public enum LossConstraint {
    /// xi = mean of the masked per-sample losses, summed in Double in the order given. Callers
    /// pass losses in ascending sample-id order (gathered by id, padding removed), so xi is
    /// bitwise identical for any world size. pitfalls.md F1: losses 0.1 * (i + 1), i = 0..9 ->
    /// 0.55.
    public static func xi(maskedLossesInIdOrder losses: [Double]) -> Double {
        precondition(!losses.isEmpty, "xi of an empty set")
        var sum = 0.0
        for l in losses { sum += l }
        return sum / Double(losses.count)
    }
}

/// How atypical (memorised) samples are identified from the per-sample outputs with and
/// without the random weight mask.
public enum AtypicalRule: Equatable, Sendable, CustomStringConvertible {
    /// Correct without the mask, wrong with it (default).
    case flip
    /// The top fraction q by masked loss.
    case quantile(Double)
    /// The top fraction q by loss increase (masked - unmasked).
    case increase(Double)

    public var description: String {
        switch self {
        case .flip: return "flip (correct without the mask, wrong with it)"
        case .quantile(let q): return "quantile (top \(q) of masked loss)"
        case .increase(let q): return "increase (top \(q) of loss increase)"
        }
    }

    /// The atypical mask over samples given in ascending id order. For the quantile rules
    /// exactly `round(q * n)` samples are marked; ties go to the lower id.
    public func mask(loss: [Double], maskedLoss: [Double], correct: [Bool], maskedCorrect: [Bool]) -> [Bool] {
        let n = loss.count
        precondition(maskedLoss.count == n && correct.count == n && maskedCorrect.count == n, "per-sample arrays differ in length")
        switch self {
        case .flip:
            return (0..<n).map { correct[$0] && !maskedCorrect[$0] }
        case .quantile(let q), .increase(let q):
            precondition(q >= 0 && q <= 1, "q must be in [0, 1], got \(q)")
            let key: [Double]
            if case .quantile = self { key = maskedLoss } else { key = (0..<n).map { maskedLoss[$0] - loss[$0] } }
            let k = Int((q * Double(n)).rounded(.toNearestOrAwayFromZero))
            let order = (0..<n).sorted { a, b in key[a] != key[b] ? key[a] > key[b] : a < b }
            var m = [Bool](repeating: false, count: n)
            for i in order.prefix(k) { m[i] = true }
            return m
        }
    }
}

/// Flooding (Ishida et al., ICML 2020; UM Eq. 3) with the UM reference's beta: the loss
/// |beta * CE_B - xi| + xi on the GLOBAL batch mean CE_B (nats), whose gradient is
/// beta * sign(beta * CE_B - xi) times the gradient of CE_B. The flood level in cross-entropy
/// units is xi / beta: below it the step is gradient ASCENT (forgetting). sign(0) = 0, as the
/// subgradient PyTorch's abs uses. With beta = 1 (the configs' value) this is |CE_B - xi| + xi.
public struct Flooding: Sendable {
    public let xi: Double
    public let beta: Double
    /// Ablation: when forgetting (CE_B < b), only atypical samples ascend; the others keep
    /// descending. `nil` = the method as published (the whole batch ascends).
    public let atypicalIDs: Set<Int64>?

    public init(xi: Double, beta: Double = 1, atypicalIDs: Set<Int64>? = nil) {
        self.xi = xi
        self.beta = beta
        self.atypicalIDs = atypicalIDs
    }

    /// The flood level in cross-entropy units (nats): xi / beta.
    public var level: Double { xi / beta }

    /// sign(beta * CE_B - xi): +1 descends, -1 ascends.
    public func sign(globalMeanLoss: Double) -> Double {
        let d = beta * globalMeanLoss - xi
        return d > 0 ? 1 : (d < 0 ? -1 : 0)
    }
}
