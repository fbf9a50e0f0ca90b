import TensorCore

/// Bitwise checksums of named tensors, compared across ranks.
///
/// The checksum of a tensor is FNV-1a (64-bit) over its little-endian element bit
/// patterns, so it tells identical bits from different ones (including NaN payloads and
/// signed zeros), not merely close values.
public enum RankConsistency {
    /// FNV-1a (``FNV1a64``) over the little-endian bytes of the values' bit patterns.
    public static func checksum(_ values: UnsafeBufferPointer<Float>) -> UInt64 {
        FNV1a64.digest(floats: values)
    }

    /// Checksum of Int64 values (e.g. `num_batches_tracked`).
    public static func checksum(_ values: [Int64]) -> UInt64 {
        var h = FNV1a64()
        for v in values { h.add(word: UInt64(bitPattern: v)) }
        return h.value
    }

    /// Combines per-tensor checksums into one.
    public static func combine(_ sums: [UInt64]) -> UInt64 {
        var h = FNV1a64()
        for s in sums { h.combine(digest: s) }
        return h.value
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

/// Finds ranks that are behind: the rank the others wait for spends the least time waiting
/// inside collectives. Every rank reports (busy seconds, wait seconds) since the previous
/// report; ranks whose busy time exceeds the median by more than `threshold` (fraction) are
/// named, with their busy and wait times.
public enum StragglerReport {
    /// Collective. Returns a report line on rank 0 when some rank is behind, else nil.
    public static func check(busySeconds: Double, waitSeconds: Double, comm: Communicator,
                             threshold: Double = 0.25, minimumSeconds: Double = 0.5) throws -> String? {
        guard comm.worldSize > 1 else { return nil }
        let all = try comm.allgather([busySeconds, waitSeconds])
        guard comm.rank == 0 else { return nil }
        let busy = all.map { $0[0] }
        let sorted = busy.sorted()
        let median = sorted[sorted.count / 2]
        var behind: [String] = []
        for (r, b) in busy.enumerated() where b - median > max(threshold * median, minimumSeconds) {
            behind.append("rank \(r) (busy \(String(format: "%.1f", b)) s, waited \(String(format: "%.1f", all[r][1])) s)")
        }
        guard !behind.isEmpty else { return nil }
        return "stall inspector: ranks behind the median (busy \(String(format: "%.1f", median)) s since the last report): "
            + behind.joined(separator: ", ")
    }
}
