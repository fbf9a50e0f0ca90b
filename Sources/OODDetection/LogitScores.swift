// Logit-based OOD scores. Higher = more in-distribution, always. Computed in Double with a
// max-shifted (stable) log-sum-exp, whatever the storage type of the logits.
import Foundation

/// Post-hoc scores from classifier logits of shape `[N, K]` (row-major, K = `numClasses`).
///
/// Non-finite logits give non-finite scores (NaN or ±inf); `OODMetrics.compute` then rejects them
/// with a counted error rather than ranking them silently.
public enum LogitScore {
    /// Maximum softmax probability (Hendrycks & Gimpel, ICLR 2017), softmax applied ONCE:
    /// `max_k softmax(logits / T)_k = 1 / sum_j exp((l_j - l_max) / T)`, a probability in (0, 1].
    /// With `temperature` 1000 this is ODIN's score before input pre-processing.
    /// - Parameters: logits `[N, K]` row-major; `temperature` T > 0.
    /// - Returns: `[N]` scores.
    public static func maxSoftmax(logits: [Float], numClasses: Int, temperature: Double = 1) -> [Double] {
        rowwise(logits, numClasses, temperature, maxSoftmaxRow)
    }

    /// Double-logit overload of `maxSoftmax(logits:numClasses:temperature:)`.
    public static func maxSoftmax(logits: [Double], numClasses: Int, temperature: Double = 1) -> [Double] {
        rowwise(logits, numClasses, temperature, maxSoftmaxRow)
    }

    /// Log of the maximum softmax probability, `-log1p(sum_{j != argmax} exp((l_j - l_max) / T))`,
    /// in nats (<= 0). Same ranking as `maxSoftmax` but without its saturation: MSP rounds to
    /// exactly 1.0 in Double once the logit gap exceeds about 37 / T, while this stays distinct
    /// (gap 40 -> -4.2e-18). Returns `[N]` scores.
    public static func logMaxSoftmax(logits: [Float], numClasses: Int, temperature: Double = 1) -> [Double] {
        rowwise(logits, numClasses, temperature, logMaxSoftmaxRow)
    }

    /// Double-logit overload of `logMaxSoftmax(logits:numClasses:temperature:)`.
    public static func logMaxSoftmax(logits: [Double], numClasses: Int, temperature: Double = 1) -> [Double] {
        rowwise(logits, numClasses, temperature, logMaxSoftmaxRow)
    }

    /// MaxLogit (Hendrycks et al., 2022): `max_k l_k`. Returns `[N]` scores.
    public static func maxLogit(logits: [Float], numClasses: Int) -> [Double] {
        rowwise(logits, numClasses, 1) { row, _ in rowMax(row) }
    }

    /// Double-logit overload of `maxLogit(logits:numClasses:)`.
    public static func maxLogit(logits: [Double], numClasses: Int) -> [Double] {
        rowwise(logits, numClasses, 1) { row, _ in rowMax(row) }
    }

    /// Energy score (Liu et al., NeurIPS 2020, Eq. 1 with the sign flipped so higher = ID):
    /// `+T * logsumexp(logits / T) = l_max + T * log(sum_j exp((l_j - l_max) / T))`, in nats.
    /// logits [2, 0], T = 1 -> 2.126928; logits [1000, 0] -> 1000.0.
    /// - Parameters: logits `[N, K]` row-major; `temperature` T > 0 (1 by default).
    /// - Returns: `[N]` scores.
    public static func energy(logits: [Float], numClasses: Int, temperature: Double = 1) -> [Double] {
        rowwise(logits, numClasses, temperature, energyRow)
    }

    /// Double-logit overload of `energy(logits:numClasses:temperature:)`.
    public static func energy(logits: [Double], numClasses: Int, temperature: Double = 1) -> [Double] {
        rowwise(logits, numClasses, temperature, energyRow)
    }

    /// Stable `T * logsumexp(row / T)` of one row, in Double.
    static func energyRow<T: BinaryFloatingPoint>(_ row: UnsafeBufferPointer<T>, _ temperature: Double) -> Double {
        let m = rowMax(row)
        if !m.isFinite { return m.isNaN || m > 0 ? m : -.infinity }
        var sum = 0.0
        for v in row { sum += exp((Double(v) - m) / temperature) }
        return m + temperature * log(sum)
    }

    static func maxSoftmaxRow<T: BinaryFloatingPoint>(_ row: UnsafeBufferPointer<T>, _ temperature: Double) -> Double {
        let m = rowMax(row)
        if !m.isFinite { return .nan }
        var sum = 0.0
        for v in row { sum += exp((Double(v) - m) / temperature) }
        return 1.0 / sum
    }

    static func logMaxSoftmaxRow<T: BinaryFloatingPoint>(_ row: UnsafeBufferPointer<T>, _ temperature: Double) -> Double {
        let m = rowMax(row)
        if !m.isFinite { return .nan }
        var rest = 0.0
        var skippedMax = false
        for v in row {
            let d = Double(v)
            if !skippedMax && d == m { skippedMax = true; continue }  // the max term is exactly 1
            rest += exp((d - m) / temperature)
        }
        return -log1p(rest)
    }

    /// Maximum of a row in Double; NaN if any entry is NaN (so NaN is never hidden by ordering).
    static func rowMax<T: BinaryFloatingPoint>(_ row: UnsafeBufferPointer<T>) -> Double {
        var m = -Double.infinity
        for v in row {
            let d = Double(v)
            if d.isNaN { return .nan }
            if d > m { m = d }
        }
        return m
    }

    /// Applies `body` to each row of a `[N, K]` buffer. Preconditions: K > 0, count = N * K, T > 0.
    static func rowwise<T: BinaryFloatingPoint>(
        _ logits: [T], _ numClasses: Int, _ temperature: Double,
        _ body: (UnsafeBufferPointer<T>, Double) -> Double
    ) -> [Double] {
        precondition(numClasses > 0, "numClasses must be > 0, got \(numClasses)")
        precondition(logits.count % numClasses == 0,
                     "logits.count \(logits.count) is not a multiple of numClasses \(numClasses) (expected shape [N, \(numClasses)])")
        precondition(temperature > 0 && temperature.isFinite, "temperature must be finite and > 0, got \(temperature)")
        let n = logits.count / numClasses
        var out = [Double](repeating: 0, count: n)
        logits.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for i in 0..<n {
                    let row = UnsafeBufferPointer(rebasing: src[(i * numClasses)..<((i + 1) * numClasses)])
                    dst[i] = body(row, temperature)
                }
            }
        }
        return out
    }
}
