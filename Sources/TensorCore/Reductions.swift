extension Kernels {
    /// Sum of `n` floats, accumulated in Double: `[n] => scalar`.
    @inlinable
    public static func sum(_ n: Int, _ x: UnsafePointer<Float>) -> Double {
        // Four Double partial sums keep the loop vectorisable and the rounding error ~1e-16 relative.
        var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
        var i = 0
        while i + 4 <= n {
            s0 += Double(x[i]); s1 += Double(x[i + 1]); s2 += Double(x[i + 2]); s3 += Double(x[i + 3])
            i += 4
        }
        while i < n { s0 += Double(x[i]); i += 1 }
        return (s0 + s1) + (s2 + s3)
    }

    /// Per-channel sum and sum of squares in Double: `[N, C, P] => sum[C], sumOfSquares[C]`
    /// (P = H*W). Overwrites `sum` and `sumOfSquares`. Used by BatchNorm statistics.
    public static func channelSumAndSumOfSquares(_ x: UnsafePointer<Float>, batch: Int, channels: Int,
                                                 plane: Int, sum: UnsafeMutablePointer<Double>,
                                                 sumOfSquares: UnsafeMutablePointer<Double>) {
        sum.update(repeating: 0, count: channels)
        sumOfSquares.update(repeating: 0, count: channels)
        for b in 0..<batch {
            for c in 0..<channels {
                let p = x + (b * channels + c) * plane
                var s = 0.0, q = 0.0
                for i in 0..<plane {
                    let v = Double(p[i])
                    s += v
                    q += v * v
                }
                sum[c] += s
                sumOfSquares[c] += q
            }
        }
    }

    /// Per-channel sums in Double: `[N, C, P] => out[C]`, `out[c] = sum_{n,p} x[n, c, p]`
    /// (overwrites `out`). Used for bias and BatchNorm-beta gradients.
    public static func channelSum(_ x: UnsafePointer<Float>, batch: Int, channels: Int, plane: Int,
                                  out: UnsafeMutablePointer<Double>) {
        out.update(repeating: 0, count: channels)
        for b in 0..<batch {
            for c in 0..<channels {
                out[c] += sum(plane, x + (b * channels + c) * plane)
            }
        }
    }
}

extension Tensor {
    /// Sum of all elements, accumulated in Double.
    public func sum() -> Double {
        withUnsafeBufferPointer { p in p.isEmpty ? 0 : Kernels.sum(p.count, p.baseAddress!) }
    }

    /// Mean of all elements (Double accumulation). Precondition: non-empty.
    public func mean() -> Double {
        precondition(count > 0, "mean of an empty tensor \(shape)")
        return sum() / Double(count)
    }

    /// Largest |element|.
    public func maxAbs() -> Float {
        withUnsafeBufferPointer { p in p.reduce(0) { Swift.max($0, abs($1)) } }
    }
}
