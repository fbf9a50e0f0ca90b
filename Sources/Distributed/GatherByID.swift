/// Per-sample values that each rank computed for its own samples, gathered from every rank and
/// put in ascending sample-id order. Every rank then holds the same vectors in the same order,
/// so whatever it reduces from them (a mean loss in Double, metrics, detector statistics) is
/// bitwise identical on every rank and for any number of ranks (pitfalls F1: no padded
/// duplicates, no rank-order dependence).
///
/// Collective: every rank creates it with its own ids, then calls the same `gather` calls in
/// the same order.
public struct GatherByID: Sendable {
    /// All ranks' sample ids, ascending.
    public let ids: [Int64]
    /// `order[i]`: where the i-th smallest id sits in the rank-order concatenation.
    let order: [Int]

    /// Gathers the ids (one `allgatherv`).
    /// - Precondition: ids are unique across ranks (each sample is computed once).
    /// - Throws: communicator errors.
    public init(localIDs: [Int64], comm: Communicator) throws {
        let all = try localIDs.withUnsafeBufferPointer { try comm.allgatherv($0) }.values
        let order = all.indices.sorted { all[$0] < all[$1] }
        var sorted: [Int64] = []
        sorted.reserveCapacity(order.count)
        for i in order {
            precondition(sorted.last.map { $0 < all[i] } ?? true, "GatherByID: sample id \(all[i]) was computed on more than one rank")
            sorted.append(all[i])
        }
        ids = sorted
        self.order = order
    }

    /// One value per local sample (`[n_local]`, in the order of `localIDs`) => `[N]` in id order.
    public func gather<T: CollectiveScalar>(_ local: [T], comm: Communicator) throws -> [T] {
        try gatherRows(local, width: 1, comm: comm)
    }

    /// `width` values per local sample (`[n_local, width]` row-major) => `[N, width]` in id order.
    public func gatherRows<T: CollectiveScalar>(_ local: [T], width: Int, comm: Communicator) throws -> [T] {
        let all = try local.withUnsafeBufferPointer { try comm.allgatherv($0) }.values
        precondition(all.count == order.count * width,
                     "GatherByID: \(all.count) values gathered for \(order.count) samples x width \(width)")
        if width == 1 { return order.map { all[$0] } }
        var out = [T](repeating: .zero, count: all.count)
        out.withUnsafeMutableBufferPointer { o in
            all.withUnsafeBufferPointer { a in
                for (row, i) in order.enumerated() {
                    for d in 0..<width { o[row * width + d] = a[i * width + d] }
                }
            }
        }
        return out
    }
}
