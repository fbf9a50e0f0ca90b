/// SplitMix64 (Steele, Lea & Flood, "Fast splittable pseudorandom number generators",
/// OOPSLA 2014; the constants of Vigna's public-domain `splitmix64.c`).
///
/// A counter-based generator: the n-th output (n = 1, 2, ...) is `mix(seed + n * 0x9E3779B97F4A7C15)`
/// with wrapping arithmetic, so the stream depends only on the seed, never on the platform,
/// the rank or the world size.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    /// Golden-ratio increment, `floor(2^64 / phi)`, odd.
    public static let gamma: UInt64 = 0x9E37_79B9_7F4A_7C15

    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// The generator used by the shuffles of this module for a (seed, epoch) pair:
    /// state = `mix(mix(seed) ^ epoch)`. Two mixing rounds keep neighbouring seeds and epochs
    /// apart (seed 0 epoch 1 and seed 1 epoch 0 give unrelated streams).
    public init(seed: UInt64, stream: UInt64) {
        state = SplitMix64.mix(SplitMix64.mix(seed) ^ stream)
    }

    /// The SplitMix64 output function (a variant of MurmurHash3's 64-bit finaliser).
    @inlinable
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func next() -> UInt64 {
        state &+= SplitMix64.gamma
        return SplitMix64.mix(state)
    }

    /// A uniform integer in `0..<bound` (`bound >= 1`), exactly unbiased: Lemire's
    /// multiply-shift with rejection ("Fast random integer generation in an interval", 2019).
    /// Spelt out here (rather than using the standard library) so the stream is fixed forever.
    public mutating func uniform(below bound: UInt64) -> UInt64 {
        precondition(bound > 0, "SplitMix64.uniform(below:) needs bound >= 1, got 0")
        var product = next().multipliedFullWidth(by: bound)
        if product.low < bound {
            let threshold = (0 &- bound) % bound
            while product.low < threshold {
                product = next().multipliedFullWidth(by: bound)
            }
        }
        return product.high
    }
}

/// Deterministic shuffles used by the sampler and the validation split.
public enum Shuffle {
    /// A permutation of `0..<count` by Fisher-Yates (Durstenfeld): for i = count-1 down to 1,
    /// swap entry i with entry j = `rng.uniform(below: i + 1)`, the generator being
    /// `SplitMix64(seed: seed, stream: stream)`. Identical on every platform, rank and world size.
    public static func permutation(count: Int, seed: UInt64, stream: UInt64) -> [Int] {
        precondition(count >= 0, "Shuffle.permutation: count must be >= 0, got \(count)")
        var order = Array(0..<count)
        guard count > 1 else { return order }
        var rng = SplitMix64(seed: seed, stream: stream)
        order.withUnsafeMutableBufferPointer { p in
            var i = count - 1
            while i > 0 {
                let j = Int(rng.uniform(below: UInt64(i + 1)))
                p.swapAt(i, j)
                i -= 1
            }
        }
        return order
    }
}
