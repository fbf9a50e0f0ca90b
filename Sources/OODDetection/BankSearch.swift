// Exact k-nearest search over a feature bank that may be split across ranks: the search behind
// KNN and NNGuide.
import Foundation
import TensorCore

/// One rank's shard of a feature bank: prepared rows `[n, D]` in Double (for KNN the L2-normalised
/// training features, for NNGuide those times their energies) and each row's global sample id.
/// A bank split across ranks by id gives, after ``BankSearch/merge(_:)``, the same k best rows,
/// bitwise, as the whole bank on one rank.
public struct FeatureBank: Sendable {
    public let featureDim: Int
    /// `[n, D]` prepared rows.
    public let rows: [Double]
    /// `[n]` global sample ids.
    public let ids: [Int64]
    /// `[n]` squared L2 norms of the rows.
    let squaredNorms: [Double]
    /// The largest squared row norm (bounds the rounding error of the dgemm pre-selection).
    let maxSquaredNorm: Double
    /// Whether any row holds a NaN or an infinity (every query then scores NaN).
    public let hasNonFinite: Bool

    /// - Parameters: rows `[n, D]` row-major, ids `[n]` (n may be 0 on a rank with no rows).
    public init(rows: [Double], ids: [Int64], featureDim: Int) {
        precondition(featureDim > 0 && rows.count == ids.count * featureDim,
                     "FeatureBank: rows.count \(rows.count) != ids.count \(ids.count) * featureDim \(featureDim) (expected [n, D])")
        self.featureDim = featureDim
        self.rows = rows
        self.ids = ids
        let norms = BankSearch.squaredNorms(rows, featureDim)
        squaredNorms = norms
        maxSquaredNorm = norms.max() ?? 0
        hasNonFinite = !rows.allSatisfy(\.isFinite)
    }

    public var count: Int { ids.count }
}

/// The k best bank rows of each query, best first: `values [Q, k]` (the exact squared distance or
/// dot product) and `ids [Q, k]`, padded with `(worst, Int64.max)` when the bank has fewer than k
/// rows; `invalid [Q]` marks queries that score NaN (a non-finite query or bank row).
public struct TopK: Sendable, Equatable {
    public let k: Int
    public var values: [Double]
    public var ids: [Int64]
    public var invalid: [Bool]

    public init(k: Int, values: [Double], ids: [Int64], invalid: [Bool]) {
        precondition(values.count == invalid.count * k && ids.count == values.count,
                     "TopK: values \(values.count) and ids \(ids.count) must be queries \(invalid.count) x k \(k)")
        self.k = k
        self.values = values
        self.ids = ids
        self.invalid = invalid
    }

    public var queryCount: Int { invalid.count }
}

/// Exact top-k search. Candidates are pre-selected with one OpenBLAS dgemm per tile (query block
/// x bank tile), keeping every row within a margin of the k-th best approximate value (the margin,
/// 1e-6 of the values' scale, is far above dgemm's rounding error of about D * 1.1e-16 of it);
/// each candidate's value is then recomputed by a plain loop in a fixed order (for distances
/// `sum_j (q_j - b_j)^2`, for dot products `sum_j q_j b_j`; ``exactValue(_:_:_:_:)``), and ties
/// are broken by the smaller id.
/// The result therefore does not depend on tile shapes, on how the bank is split, or on the
/// number of ranks.
public enum BankSearch {
    /// What "best" means: the smallest squared Euclidean distance (KNN) or the largest dot
    /// product (NNGuide).
    public enum Metric: Sendable { case squaredDistance, dot }

    static let tileElements = 1 << 19   // a bank tile of at most 4 MB
    static let dotElements = 1 << 20    // the dgemm output block, at most 8 MB

    /// The k best rows of `bank` for each query. `queries` `[Q, D]` are prepared like the bank's
    /// rows (normalised for KNN and NNGuide). Precondition: k >= 1.
    public static func search(queries: [Double], bank: FeatureBank, k: Int, metric: Metric) -> TopK {
        let d = bank.featureDim
        precondition(k >= 1, "BankSearch: k must be >= 1, got \(k)")
        precondition(queries.count % d == 0, "BankSearch: queries.count \(queries.count) is not a multiple of featureDim \(d) (expected [Q, D])")
        let nq = queries.count / d, nb = bank.count
        let worst = metric == .squaredDistance ? Double.infinity : -Double.infinity
        var out = TopK(k: k, values: [Double](repeating: worst, count: nq * k), ids: [Int64](repeating: .max, count: nq * k),
                       invalid: [Bool](repeating: false, count: nq))
        let queryNorms = squaredNorms(queries, d)
        for i in 0..<nq where !queryNorms[i].isFinite || bank.hasNonFinite { out.invalid[i] = true }
        guard nq > 0, nb > 0 else { return out }
        let tile = max(1, min(nb, tileElements / d))
        let block = max(1, min(nq, dotElements / tile))
        var dots = [Double](repeating: 0, count: block * tile)
        // Per query of the block: the k smallest keys so far (ascending; key = distance, or minus
        // the dot product) and the candidates (key, bank row) within the margin of the k-th.
        var kth = [Double](repeating: .infinity, count: block * k)
        var candidates = [[(key: Double, row: Int)]](repeating: [], count: block)
        queries.withUnsafeBufferPointer { q in
            bank.rows.withUnsafeBufferPointer { b in
                bank.squaredNorms.withUnsafeBufferPointer { bn in
                dots.withUnsafeMutableBufferPointer { dp in
                kth.withUnsafeMutableBufferPointer { kp in
                    var qStart = 0
                    while qStart < nq {
                        let m = min(block, nq - qStart)
                        for i in 0..<(m * k) { kp[i] = .infinity }
                        for i in 0..<m { candidates[i].removeAll(keepingCapacity: true) }
                        var tStart = 0
                        while tStart < nb {
                            let n = min(tile, nb - tStart)
                            Kernels.dgemmABt(m: m, n: n, k: d, alpha: 1, a: q.baseAddress! + qStart * d, b: b.baseAddress! + tStart * d,
                                             beta: 0, c: dp.baseAddress!)
                            for i in 0..<m where !out.invalid[qStart + i] {
                                let qq = queryNorms[qStart + i]
                                let margin = 1e-6 * (qq + bank.maxSquaredNorm) + Double.leastNormalMagnitude
                                let row = dp.baseAddress! + i * n
                                // `top` is a max-heap of the k smallest keys so far: top[0] is the k-th.
                                let top = kp.baseAddress! + i * k
                                var limit = top[0] + margin
                                for r in 0..<n {
                                    let key = metric == .squaredDistance ? qq + bn[tStart + r] - 2 * row[r] : -row[r]
                                    if key <= limit {
                                        candidates[i].append((key, tStart + r))
                                        if key < top[0] {
                                            Self.replaceRoot(top, k, key)
                                            limit = top[0] + margin
                                        }
                                    }
                                }
                                if candidates[i].count > 8 * k + 64 {
                                    candidates[i].removeAll { $0.key > limit }
                                }
                            }
                            tStart += n
                        }
                        for i in 0..<m where !out.invalid[qStart + i] {
                            let qq = queryNorms[qStart + i]
                            let limit = kp[i * k] + 1e-6 * (qq + bank.maxSquaredNorm) + Double.leastNormalMagnitude
                            let query = q.baseAddress! + (qStart + i) * d
                            var exact: [(value: Double, id: Int64)] = []
                            for c in candidates[i] where c.key <= limit {
                                exact.append((Self.exactValue(query, b.baseAddress! + c.row * d, d, metric), bank.ids[c.row]))
                            }
                            exact.sort { better($0.value, $0.id, than: $1.value, $1.id, metric) }
                            for t in 0..<min(k, exact.count) {
                                out.values[(qStart + i) * k + t] = exact[t].value
                                out.ids[(qStart + i) * k + t] = exact[t].id
                            }
                        }
                        qStart += m
                    }
                }
                }
                }
            }
        }
        return out
    }

    /// The exact value of one (query, row) pair, `sum_j (q_j - b_j)^2` or `sum_j q_j b_j`, in a
    /// fixed order that does not depend on anything but D: four interleaved partial sums
    /// (j mod 4), combined as (s0 + s1) + (s2 + s3), then the tail in order.
    @inline(__always)
    static func exactValue(_ q: UnsafePointer<Double>, _ r: UnsafePointer<Double>, _ d: Int, _ metric: Metric) -> Double {
        var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
        var j = 0
        if metric == .squaredDistance {
            while j + 4 <= d {
                let t0 = q[j] - r[j], t1 = q[j + 1] - r[j + 1], t2 = q[j + 2] - r[j + 2], t3 = q[j + 3] - r[j + 3]
                s0 += t0 * t0; s1 += t1 * t1; s2 += t2 * t2; s3 += t3 * t3
                j += 4
            }
            var s = (s0 + s1) + (s2 + s3)
            while j < d { let t = q[j] - r[j]; s += t * t; j += 1 }
            return s
        }
        while j + 4 <= d {
            s0 += q[j] * r[j]; s1 += q[j + 1] * r[j + 1]; s2 += q[j + 2] * r[j + 2]; s3 += q[j + 3] * r[j + 3]
            j += 4
        }
        var s = (s0 + s1) + (s2 + s3)
        while j < d { s += q[j] * r[j]; j += 1 }
        return s
    }

    /// Replaces the root of the max-heap `h[0..<k]` by `key` (smaller than the root) and sifts it down.
    @inline(__always)
    static func replaceRoot(_ h: UnsafeMutablePointer<Double>, _ k: Int, _ key: Double) {
        var i = 0
        while true {
            let l = 2 * i + 1
            if l >= k { break }
            let r = l + 1
            let c = r < k && h[r] > h[l] ? r : l
            if h[c] <= key { break }
            h[i] = h[c]
            i = c
        }
        h[i] = key
    }

    /// Whether (a, idA) ranks before (b, idB): the better value first, then the smaller id.
    @inline(__always)
    static func better(_ a: Double, _ idA: Int64, than b: Double, _ idB: Int64, _ metric: Metric) -> Bool {
        if a != b { return metric == .squaredDistance ? a < b : a > b }
        return idA < idB
    }

    /// Merges the shards' top-k lists of the same queries into the global top-k (best value,
    /// then smaller id); a query is invalid when any shard marks it. Every rank merging the same
    /// parts gets the same result, whatever the order of the parts.
    public static func merge(_ parts: [TopK], metric: Metric) -> TopK {
        precondition(!parts.isEmpty, "BankSearch.merge: no parts")
        let k = parts[0].k, nq = parts[0].queryCount
        precondition(parts.allSatisfy { $0.k == k && $0.queryCount == nq }, "BankSearch.merge: parts differ in k or query count")
        if parts.count == 1 { return parts[0] }
        var out = parts[0]
        var pool: [(value: Double, id: Int64)] = []
        for i in 0..<nq {
            out.invalid[i] = parts.contains { $0.invalid[i] }
            pool.removeAll(keepingCapacity: true)
            for p in parts { for t in 0..<k { pool.append((p.values[i * k + t], p.ids[i * k + t])) } }
            pool.sort { better($0.value, $0.id, than: $1.value, $1.id, metric) }
            for t in 0..<k {
                out.values[i * k + t] = pool[t].value
                out.ids[i * k + t] = pool[t].id
            }
        }
        return out
    }

    /// `[N]` squared L2 norms of rows `[N, D]`, summed in order.
    static func squaredNorms(_ x: [Double], _ d: Int) -> [Double] {
        x.withUnsafeBufferPointer { p in
            (0..<(x.count / d)).map { i in
                var s = 0.0
                for j in 0..<d { s += p[i * d + j] * p[i * d + j] }
                return s
            }
        }
    }

    /// Queries per chunk when scoring: bounds the per-chunk search state and the merged lists.
    public static let queryChunk = 2048
}
