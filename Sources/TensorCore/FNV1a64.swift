/// FNV-1a, 64-bit (Fowler, Noll & Vo; offset basis 0xcbf29ce484222325, prime 0x100000001b3):
/// the one checksum of the project. It tells identical bits from different ones (NaN payloads
/// and signed zeros included) and is used for integrity and equality checks, never security:
/// replica checksums compared across ranks, checkpoint file checksums, data fingerprints.
///
/// Every multi-byte value is hashed as its little-endian bytes, so a `[Float]` hashes like the
/// raw bytes of its buffer on the little-endian machines this runs on.
public struct FNV1a64: Sendable, Equatable {
    public static let offsetBasis: UInt64 = 0xcbf2_9ce4_8422_2325
    public static let prime: UInt64 = 0x0000_0100_0000_01B3

    /// The digest so far.
    public private(set) var value: UInt64 = FNV1a64.offsetBasis

    public init() {}

    public mutating func add(byte: UInt8) {
        value = (value ^ UInt64(byte)) &* Self.prime
    }

    public mutating func add(bytes: UnsafeRawBufferPointer) {
        var h = value
        for b in bytes { h = (h ^ UInt64(b)) &* Self.prime }
        value = h
    }

    public mutating func add<S: Sequence>(bytes: S) where S.Element == UInt8 {
        var h = value
        for b in bytes { h = (h ^ UInt64(b)) &* Self.prime }
        value = h
    }

    /// The 8 little-endian bytes of `word`.
    public mutating func add(word: UInt64) {
        var h = value, w = word
        for _ in 0..<8 {
            h = (h ^ (w & 0xFF)) &* Self.prime
            w >>= 8
        }
        value = h
    }

    /// The 4 little-endian bytes of each value's bit pattern.
    public mutating func add(floats: UnsafeBufferPointer<Float>) {
        var h = value
        for v in floats {
            var w = v.bitPattern
            for _ in 0..<4 {
                h = (h ^ UInt64(w & 0xFF)) &* Self.prime
                w >>= 8
            }
        }
        value = h
    }

    /// One FNV step over a whole 64-bit word (not its bytes): combines digests of parts into
    /// one digest.
    public mutating func combine(digest: UInt64) {
        value = (value ^ digest) &* Self.prime
    }

    /// The digest of `bytes`.
    public static func digest(bytes: UnsafeRawBufferPointer) -> UInt64 {
        var h = FNV1a64()
        h.add(bytes: bytes)
        return h.value
    }

    /// The digest of the bit patterns of `floats`.
    public static func digest(floats: UnsafeBufferPointer<Float>) -> UInt64 {
        var h = FNV1a64()
        h.add(floats: floats)
        return h.value
    }

    /// The value as 16 lower-case hex digits.
    public var hex: String {
        let s = String(value, radix: 16)
        return String(repeating: "0", count: max(0, 16 - s.count)) + s
    }
}
