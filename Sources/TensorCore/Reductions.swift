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

    /// Per-channel shifted sum and sum of squares: `[N, C, P] => sum[C], sumOfSquares[C]` with
    /// `sum[c] = sum_{n,p} (x[n,c,p] - shift[c])` and `sumOfSquares[c] = sum (x - shift[c])^2`
    /// Overwrites both outputs. Used by BatchNorm statistics.
    ///
    /// With a `shift` (ideally near the channel mean, e.g. one sample of the channel), the
    /// accumulation is SIMD Float over blocks of at most 512 elements flushed into Double
    /// (relative error about 1e-6 of the shifted sums: fast, and accurate because the shift
    /// removes the offset that makes E[x^2] - E[x]^2 cancel). With `shift == nil` every element
    /// is accumulated in Double (slower; exact enough for any offset up to ~1e4 * std).
    public static func channelSumAndSumOfSquares(_ x: UnsafePointer<Float>, batch: Int, channels: Int,
                                                 plane: Int, shift: UnsafePointer<Double>? = nil,
                                                 sum: UnsafeMutablePointer<Double>,
                                                 sumOfSquares: UnsafeMutablePointer<Double>) {
        sum.update(repeating: 0, count: channels)
        sumOfSquares.update(repeating: 0, count: channels)
        for b in 0..<batch {
            for c in 0..<channels {
                let p = x + (b * channels + c) * plane
                if let shift {
                    let (s, q) = shiftedPlaneSums(p, count: plane, shift: Float(shift[c]))
                    sum[c] += s
                    sumOfSquares[c] += q
                } else {
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
    }

    /// `(sum (x - k), sum (x - k)^2)` over `count` floats (blocked SIMD Float, Double across blocks).
    @inlinable
    public static func shiftedPlaneSums(_ x: UnsafePointer<Float>, count: Int, shift k: Float) -> (Double, Double) {
        let raw = UnsafeRawPointer(x)
        let kv = SIMD8<Float>(repeating: k)
        var total = 0.0, totalSquares = 0.0
        var i = 0
        while i + 8 <= count {
            let end = Swift.min(count, i + 512) & ~7
            var s = SIMD8<Float>(repeating: 0), q = SIMD8<Float>(repeating: 0)
            while i < end {
                let v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) - kv
                s += v
                q += v * v
                i += 8
            }
            total += Double(s.sum())
            totalSquares += Double(q.sum())
        }
        while i < count {
            let v = Double(x[i]) - Double(k)
            total += v
            totalSquares += v * v
            i += 1
        }
        return (total, totalSquares)
    }

    /// `(sum a, sum a * b)` over `count` floats (blocked SIMD Float, Double across blocks); used
    /// by BatchNorm backward for `sum dy` and `sum dy * xhat`.
    @inlinable
    public static func sumAndDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> (Double, Double) {
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        var total = 0.0, totalDot = 0.0
        var i = 0
        while i + 8 <= count {
            let end = Swift.min(count, i + 512) & ~7
            var s = SIMD8<Float>(repeating: 0), d = SIMD8<Float>(repeating: 0)
            while i < end {
                let va = ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                let vb = rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                s += va
                d += va * vb
                i += 8
            }
            total += Double(s.sum())
            totalDot += Double(d.sum())
        }
        while i < count {
            total += Double(a[i])
            totalDot += Double(a[i]) * Double(b[i])
            i += 1
        }
        return (total, totalDot)
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
