/// Bitwise checksums of named tensors, compared across ranks.
///
/// The checksum of a tensor is FNV-1a (64-bit) over its little-endian element bit
/// patterns, so it tells identical bits from different ones (including NaN payloads and
/// signed zeros), not merely close values.
public enum RankConsistency {
    /// FNV-1a over 32-bit words.
    public static func checksum(_ values: UnsafeBufferPointer<Float>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for v in values {
            var w = v.bitPattern
            for _ in 0..<4 {
                h ^= UInt64(w & 0xFF)
                h = h &* 0x0000_0100_0000_01B3
                w >>= 8
            }
        }
        return h
    }

    /// Checksum of Int64 values (e.g. `num_batches_tracked`).
    public static func checksum(_ values: [Int64]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for v in values {
            var w = UInt64(bitPattern: v)
            for _ in 0..<8 {
                h ^= w & 0xFF
                h = h &* 0x0000_0100_0000_01B3
                w >>= 8
            }
        }
        return h
    }

    /// Combines per-tensor checksums into one.
    public static func combine(_ sums: [UInt64]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for s in sums {
            h ^= s
            h = h &* 0x0000_0100_0000_01B3
        }
        return h
    }

    /// Compares per-tensor checksums across ranks.
    ///
    /// - Parameters:
    ///   - names: tensor names, identical on every rank.
    ///   - checksums: this rank's checksum per tensor.
    /// - Returns: nil when every rank holds the same bits; otherwise a message naming the
    ///   first differing tensors (at most 5) and the ranks that differ from rank 0.
    public static func compare(names: [String], checksums: [UInt64], comm: Communicator) throws -> String? {
        precondition(names.count == checksums.count, "names [\(names.count)] vs checksums [\(checksums.count)]")
        let all = try comm.allgather(checksums)
        var differing: [String] = []
        for (t, name) in names.enumerated() {
            let ranks = (1..<all.count).filter { all[$0].count != checksums.count || all[$0][t] != all[0][t] }
            if !ranks.isEmpty { differing.append("\(name) (ranks \(ranks.map(String.init).joined(separator: ",")) differ from rank 0)") }
            if differing.count == 5 { break }
        }
        return differing.isEmpty ? nil : differing.joined(separator: "; ")
    }
}
