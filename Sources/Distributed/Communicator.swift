/// The collective-communication contract shared by the MPI communicator and the
/// single-process one.
///
/// Semantics follow MPI-3.1: every rank must call the same collectives in the same order
/// with matching sizes (a mismatch is a programming error that MPI may detect or hang on;
/// the deadline below bounds the hang). Buffers are typed: counts are always element
/// counts, never byte counts.
public protocol Communicator: AnyObject {
    /// This process's rank in `0..<worldSize`.
    var rank: Int { get }
    /// The number of ranks in the job.
    var worldSize: Int { get }
    /// Bounds every collective: a collective that has not completed within this many
    /// seconds throws ``CommunicatorError/stalled(collective:phase:waitedSeconds:timeoutSeconds:)``.
    /// `nil` means wait forever.
    var stallTimeout: Double? { get set }
    /// A human label for what the caller is doing (for example `"epoch 3 step 120"`),
    /// reported when a collective stalls or fails.
    var phase: String { get set }
    /// Seconds this rank has spent waiting inside collectives since it was created (the
    /// straggler report compares it across ranks: the slowest rank waits least).
    var collectiveWaitSeconds: Double { get }

    /// In-place allreduce of `buffer` with `op` over all ranks. Every rank receives the
    /// same result.
    ///
    /// - Throws: ``CommunicatorError`` on an MPI error or a stall.
    func allreduce<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReduceOp) throws
    /// Starts a SUM allreduce of `buffer` in place and returns at once; the buffer must stay
    /// alive and untouched until ``waitAllreduce(_:)`` returns. Every rank must start its
    /// non-blocking collectives in the same order (MPI's rule). The result is the same as
    /// ``allreduce(_:op:)`` of the same buffer.
    func startAllreduce(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> PendingAllreduce
    /// Progresses outstanding collectives; true when `pending` has completed.
    func testAllreduce(_ pending: PendingAllreduce) throws -> Bool
    /// Waits (under the stall deadline) until `pending` completes.
    func waitAllreduce(_ pending: PendingAllreduce) throws

    /// Gathers a variable-length contribution from every rank (zero-length allowed).
    ///
    /// - Returns: `(values, counts)`: the concatenation of all contributions in rank order,
    ///   and each rank's element count.
    func allgatherv<T: CollectiveScalar>(_ local: UnsafeBufferPointer<T>) throws -> (values: [T], counts: [Int])

    /// Broadcasts `buffer` from `root` to every rank, in place. All ranks pass buffers of
    /// the same count.
    func broadcast<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws

    /// Blocks until every rank has entered the barrier (subject to ``stallTimeout``).
    func barrier() throws

    /// Ends the whole job with exit status `code`, after writing `message` to stderr.
    /// Never returns. With MPI, this is `MPI_Abort` on the world communicator, which makes
    /// the launcher kill every other rank.
    func abort(code: Int32, message: String) -> Never
}

/// Reduction operators for ``Communicator/allreduce(_:op:)``.
public enum ReduceOp: String, Sendable, CaseIterable {
    case sum, max, min
}

/// The element types the communicators can move. The mapping to MPI datatypes is internal.
public enum ScalarKind: Sendable {
    case float32, float64, int32, int64, uint8, uint64
}

/// A fixed-size numeric type that can travel through a collective.
public protocol CollectiveScalar: Sendable, Equatable, Comparable, Numeric {
    static var scalarKind: ScalarKind { get }
}

extension Float: CollectiveScalar { public static var scalarKind: ScalarKind { .float32 } }
extension Double: CollectiveScalar { public static var scalarKind: ScalarKind { .float64 } }
extension Int32: CollectiveScalar { public static var scalarKind: ScalarKind { .int32 } }
extension Int64: CollectiveScalar { public static var scalarKind: ScalarKind { .int64 } }
extension UInt8: CollectiveScalar { public static var scalarKind: ScalarKind { .uint8 } }
extension UInt64: CollectiveScalar { public static var scalarKind: ScalarKind { .uint64 } }

/// Errors raised by communicators. Messages name the collective, the phase, and (for MPI
/// errors) MPI's own error string, and end with a hint.
public enum CommunicatorError: Error, CustomStringConvertible, Equatable {
    /// An MPI call returned an error code (`MPI_ERRORS_RETURN` is set on the world
    /// communicator). `mpiMessage` is `MPI_Error_string` of the code.
    case mpi(call: String, code: Int32, mpiMessage: String, phase: String)
    /// A collective did not complete within the deadline.
    case stalled(collective: String, phase: String, waitedSeconds: Double, timeoutSeconds: Double)
    /// MPI cannot be (re)initialised in this process.
    case lifecycle(String)
    /// Arguments that cannot be right on any rank (for example a root outside the world).
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .mpi(call, code, msg, phase):
            return "\(call) failed with MPI error \(code): \(msg) (during \(phase)). "
                + "Hint: a peer rank may have died or the network failed; check the other ranks' messages."
        case let .stalled(collective, phase, waited, timeout):
            return "collective \(collective) stalled during \(phase): not complete after "
                + "\(formatSeconds(waited)) s (deadline \(formatSeconds(timeout)) s). "
                + "Hint: another rank is slow, hung, or calling a different collective; "
                + "raise --stall-timeout if the work between collectives is legitimately long."
        case let .lifecycle(msg):
            return "MPI lifecycle: \(msg)"
        case let .invalidArgument(msg):
            return msg
        }
    }
}

func formatSeconds(_ s: Double) -> String {
    let tenths = (s * 10).rounded() / 10
    return String(tenths)
}

/// A started non-blocking allreduce (``Communicator/startAllreduce(_:)``); opaque.
public final class PendingAllreduce {
    /// The MPI requests (one per chunk), or none for a communicator that completes at once.
    var requests: [OpaquePointer?] = []
    var label: String
    public internal(set) var done: Bool
    init(label: String, done: Bool) {
        self.label = label
        self.done = done
    }
}

extension Communicator {
    /// In-place allreduce of an array.
    public func allreduce<T: CollectiveScalar>(_ array: inout [T], op: ReduceOp) throws {
        try array.withUnsafeMutableBufferPointer { try allreduce($0, op: op) }
    }

    /// Allreduce of one value.
    public func allreduce<T: CollectiveScalar>(_ value: T, op: ReduceOp) throws -> T {
        var a = [value]
        try allreduce(&a, op: op)
        return a[0]
    }

    /// Gathers every rank's array, in rank order.
    public func allgather<T: CollectiveScalar>(_ local: [T]) throws -> [[T]] {
        let (values, counts) = try local.withUnsafeBufferPointer { try allgatherv($0) }
        var out: [[T]] = []
        out.reserveCapacity(counts.count)
        var offset = 0
        for c in counts {
            out.append(Array(values[offset..<(offset + c)]))
            offset += c
        }
        return out
    }

    /// Broadcasts an array in place from `root`. Every rank must pass an array of the same
    /// count; use ``broadcastResizing(_:root:)`` when only the root knows the count.
    public func broadcast<T: CollectiveScalar>(_ array: inout [T], root: Int) throws {
        try array.withUnsafeMutableBufferPointer { try broadcast($0, root: root) }
    }

    /// Broadcasts an array whose length only `root` knows: the count travels first.
    public func broadcastResizing<T: CollectiveScalar>(_ array: inout [T], root: Int) throws {
        var n = [Int64(array.count)]
        try broadcast(&n, root: root)
        if rank != root { array = [T](repeating: 0, count: Int(n[0])) }
        try broadcast(&array, root: root)
    }

    /// Rank 0 receives every rank's array in rank order, one rank at a time (a broadcast from
    /// each), so no rank ever holds more than its own array and one other; the other ranks get an
    /// empty array. For writing a file on rank 0 from data split across ranks.
    public func gatherToRoot<T: CollectiveScalar>(_ local: [T]) throws -> [[T]] {
        var out = rank == 0 ? [local] : []
        for root in 1..<max(worldSize, 1) {
            var part = rank == root ? local : []
            try broadcastResizing(&part, root: root)
            if rank == 0 { out.append(part) }
        }
        return out
    }

    /// Broadcasts a UTF-8 string from `root`.
    public func broadcast(string: String, root: Int) throws -> String {
        var bytes = rank == root ? Array(string.utf8) : []
        try broadcastResizing(&bytes, root: root)
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Writes `text` to file descriptor 2 unbuffered (safe from any thread and just before
/// an abort, when buffered stdio might be lost).
public func writeToStandardError(_ text: String) {
    var bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeMutableBytes { raw in
            posixWrite(2, raw.baseAddress! + offset, raw.count - offset)
        }
        if n <= 0 { break }
        offset += n
    }
}
