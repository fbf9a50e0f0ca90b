/// Philox4x32-10 block function (Salmon, Moraes, Dror, Shaw, "Parallel Random Numbers: As Easy
/// as 1, 2, 3", SC'11; constants as in Random123): a pure function of a 128-bit counter and a
/// 64-bit key giving 128 random bits.
public enum Philox4x32 {
    /// One block: `(counter[4], key[2]) => 4 x UInt32`, ten rounds.
    @inlinable
    public static func block(counter c: (UInt32, UInt32, UInt32, UInt32),
                             key k: (UInt32, UInt32)) -> (UInt32, UInt32, UInt32, UInt32) {
        var x0 = c.0, x1 = c.1, x2 = c.2, x3 = c.3
        var k0 = k.0, k1 = k.1
        for round in 0..<10 {
            if round > 0 { k0 &+= 0x9E37_79B9; k1 &+= 0xBB67_AE85 }
            let p0 = UInt64(0xD251_1F53) &* UInt64(x0)
            let p1 = UInt64(0xCD9E_8D57) &* UInt64(x2)
            let n0 = UInt32(truncatingIfNeeded: p1 >> 32) ^ x1 ^ k0
            let n1 = UInt32(truncatingIfNeeded: p1)
            let n2 = UInt32(truncatingIfNeeded: p0 >> 32) ^ x3 ^ k1
            let n3 = UInt32(truncatingIfNeeded: p0)
            x0 = n0; x1 = n1; x2 = n2; x3 = n3
        }
        return (x0, x1, x2, x3)
    }
}

/// A counter-based random stream keyed by a seed and any number of 64-bit stream words, e.g.
/// `(seed, [epoch, globalSampleID, layerIndex])`. The same key always yields the same numbers,
/// independent of thread, rank or call order, so randomness does not depend on how samples
/// are split across ranks.
///
/// Construction: the key starts as the seed's two 32-bit halves; each stream word `w_i`
/// re-keys it with `key = first two words of Philox(counter: (lo(w_i), hi(w_i), i, 0x5354524D),
/// key)` (a PRF chain). Block `j` of the stream is `Philox(counter: (lo(j), hi(j), 0, 0), key)`,
/// giving 4 UInt32 each, consumed in order.
public struct RandomStream {
    public let key: (UInt32, UInt32)
    /// Index of the next Philox block (internal).
    @usableFromInline var blockIndex: UInt64 = 0
    @usableFromInline var buffer: (UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0)
    @usableFromInline var used = 4
    /// A cached second Box-Muller normal.
    @usableFromInline var spareNormal: Float?

    /// A stream for `seed` and the stream words (order matters).
    public init(seed: UInt64, stream: [UInt64] = []) {
        var k: (UInt32, UInt32) = (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32))
        for (i, w) in stream.enumerated() {
            let out = Philox4x32.block(counter: (UInt32(truncatingIfNeeded: w), UInt32(truncatingIfNeeded: w >> 32),
                                                 UInt32(truncatingIfNeeded: i), 0x5354_524D), key: k)
            k = (out.0, out.1)
        }
        key = k
        blockIndex = 0
    }

    /// Next 32 random bits.
    @inlinable
    public mutating func nextUInt32() -> UInt32 {
        if used == 4 {
            buffer = Philox4x32.block(counter: (UInt32(truncatingIfNeeded: blockIndex),
                                                UInt32(truncatingIfNeeded: blockIndex >> 32), 0, 0), key: key)
            blockIndex &+= 1
            used = 0
        }
        defer { used += 1 }
        switch used {
        case 0: return buffer.0
        case 1: return buffer.1
        case 2: return buffer.2
        default: return buffer.3
        }
    }

    /// Uniform Float in [0, 1): the top 24 bits times 2^-24.
    @inlinable
    public mutating func nextUniform() -> Float {
        Float(nextUInt32() >> 8) * (1.0 / 16_777_216.0)
    }

    /// Uniform Float in [low, high).
    @inlinable
    public mutating func nextUniform(low: Float, high: Float) -> Float {
        low + (high - low) * nextUniform()
    }

    /// Standard normal Float (Box-Muller on two uniforms, u1 in (0, 1]; pairs are cached).
    public mutating func nextNormal() -> Float {
        if let s = spareNormal { spareNormal = nil; return s }
        let u1 = (Double(nextUInt32() >> 8) + 1) * (1.0 / 16_777_216.0)
        let u2 = Double(nextUInt32() >> 8) * (1.0 / 16_777_216.0)
        let r = (-2 * _log(u1)).squareRoot()
        let theta = 2 * Double.pi * u2
        spareNormal = Float(r * _sin(theta))
        return Float(r * _cos(theta))
    }

    /// Fills `count` floats with uniforms in [low, high): the same numbers, in the same order,
    /// as `count` calls of `nextUniform(low:high:)`, but whole blocks at a time.
    public mutating func fillUniform(_ p: UnsafeMutablePointer<Float>, count: Int, low: Float, high: Float) {
        let scale = (high - low) * (1.0 / 16_777_216.0)
        var i = 0
        while i < count && used < 4 { p[i] = low + scale * Float(nextUInt32() >> 8); i += 1 }
        while i + 4 <= count {
            let b = Philox4x32.block(counter: (UInt32(truncatingIfNeeded: blockIndex),
                                               UInt32(truncatingIfNeeded: blockIndex >> 32), 0, 0), key: key)
            blockIndex &+= 1
            p[i] = low + scale * Float(b.0 >> 8)
            p[i + 1] = low + scale * Float(b.1 >> 8)
            p[i + 2] = low + scale * Float(b.2 >> 8)
            p[i + 3] = low + scale * Float(b.3 >> 8)
            i += 4
        }
        while i < count { p[i] = low + scale * Float(nextUInt32() >> 8); i += 1 }
    }
}

#if canImport(Glibc)
import Glibc
@usableFromInline func _log(_ x: Double) -> Double { Glibc.log(x) }
@usableFromInline func _sin(_ x: Double) -> Double { Glibc.sin(x) }
@usableFromInline func _cos(_ x: Double) -> Double { Glibc.cos(x) }
#else
import Darwin
@usableFromInline func _log(_ x: Double) -> Double { Darwin.log(x) }
@usableFromInline func _sin(_ x: Double) -> Double { Darwin.sin(x) }
@usableFromInline func _cos(_ x: Double) -> Double { Darwin.cos(x) }
#endif
