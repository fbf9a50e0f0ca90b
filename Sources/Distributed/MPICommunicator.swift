import CMPI
import Foundation
#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// A ``Communicator`` over `MPI_COMM_WORLD`.
///
/// Every collective is issued as a non-blocking MPI call (`MPI_Iallreduce`,
/// `MPI_Iallgatherv`, `MPI_Ibcast`, `MPI_Ibarrier`) and polled with `MPI_Test` on the
/// calling thread until it completes or ``stallTimeout`` passes. No other thread ever
/// calls MPI, which is why `MPI_THREAD_FUNNELED` suffices.
///
/// Buffers longer than ``maxElementsPerCall`` elements (default `Int32.max`, the C `int`
/// limit of MPI counts) are moved in chunks, never truncated.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let worldSize: Int
    public var stallTimeout: Double?
    public var phase: String = "start-up"
    public private(set) var collectiveWaitSeconds = 0.0
    /// The largest element count passed to a single MPI call.
    public let maxElementsPerCall: Int
    /// Allreduces larger than this many bytes are split into outstanding chunks of this size.
    /// (`UMTRAIN_ALLREDUCE_CHUNK_BYTES` overrides the default.)
    public var pipelineBytes = ProcessInfo.processInfo.environment["UMTRAIN_ALLREDUCE_CHUNK_BYTES"].flatMap { Int($0) } ?? (2 << 20)

    private let comm: MPI_Comm

    init(world: Void, maxElementsPerCall: Int) throws {
        precondition(maxElementsPerCall >= 1 && maxElementsPerCall <= Int(Int32.max),
                     "maxElementsPerCall must be in 1...Int32.max, got \(maxElementsPerCall)")
        comm = cmpi_comm_world()
        self.maxElementsPerCall = maxElementsPerCall
        var r: Int32 = 0
        var n: Int32 = 0
        try Self.check(MPI_Comm_rank(comm, &r), "MPI_Comm_rank", phase: "start-up")
        try Self.check(MPI_Comm_size(comm, &n), "MPI_Comm_size", phase: "start-up")
        rank = Int(r)
        worldSize = Int(n)
    }

    /// A communicator over the same world that moves at most `maxElementsPerCall`
    /// elements per MPI call (used by tests to prove chunking with small numbers).
    public func withChunkLimit(_ maxElementsPerCall: Int) throws -> MPICommunicator {
        let c = try MPICommunicator(world: (), maxElementsPerCall: maxElementsPerCall)
        c.stallTimeout = stallTimeout
        c.phase = phase
        return c
    }

    // MARK: - Collectives

    public func allreduce<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReduceOp) throws {
        guard worldSize > 1, let base = buffer.baseAddress, buffer.count > 0 else {
            if worldSize > 1 { try barrierLikeEmpty() }
            return
        }
        let dtype = datatype(T.self)
        let mop = mpiOp(op)
        // Large buffers go as several outstanding non-blocking allreduces of at most
        // `pipelineBytes` each (Open MPI's non-blocking allreduce is several times slower than
        // the blocking one on single multi-MB buffers; pipelined chunks recover the rate), and
        // never more than `maxElementsPerCall` elements per call.
        let chunk = max(1, min(maxElementsPerCall, max(1, pipelineBytes / MemoryLayout<T>.stride)))
        let label = "allreduce(\(op.rawValue), \(buffer.count) x \(T.self))"
        var requests: [MPI_Request?] = []
        var offset = 0
        while offset < buffer.count {
            let n = min(chunk, buffer.count - offset)
            var req: MPI_Request? = cmpi_request_null()
            try check(MPI_Iallreduce(cmpi_in_place(), base + offset, Int32(n), dtype, mop, comm, &req), "MPI_Iallreduce")
            requests.append(req)
            offset += n
        }
        for i in requests.indices {
            try wait(&requests[i], collective: requests.count > 1 ? label + " chunk \(i + 1)/\(requests.count)" : label)
        }
    }

    /// Starts the SUM allreduce of `buffer` with the same chunks as ``allreduce(_:op:)`` (so the
    /// results are the same bits) and returns without waiting.
    public func startAllreduce(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> PendingAllreduce {
        let label = "allreduce(sum, \(buffer.count) x Float, overlapped)"
        guard worldSize > 1, let base = buffer.baseAddress, buffer.count > 0 else { return PendingAllreduce(label: label, done: true) }
        let chunk = max(1, min(maxElementsPerCall, max(1, pipelineBytes / MemoryLayout<Float>.stride)))
        let pending = PendingAllreduce(label: label, done: false)
        var offset = 0
        while offset < buffer.count {
            let n = min(chunk, buffer.count - offset)
            var req: MPI_Request? = cmpi_request_null()
            try check(MPI_Iallreduce(cmpi_in_place(), base + offset, Int32(n), cmpi_float(), cmpi_op_sum(), comm, &req), "MPI_Iallreduce")
            pending.requests.append(req)
            offset += n
        }
        return pending
    }

    public func testAllreduce(_ pending: PendingAllreduce) throws -> Bool {
        if pending.done { return true }
        var all = true
        for i in pending.requests.indices {
            var flag: Int32 = 0
            try check(MPI_Test(&pending.requests[i], &flag, cmpi_status_ignore()), "MPI_Test(\(pending.label))")
            if flag == 0 { all = false }
        }
        pending.done = all
        return all
    }

    public func waitAllreduce(_ pending: PendingAllreduce) throws {
        if pending.done { return }
        for i in pending.requests.indices { try wait(&pending.requests[i], collective: pending.label) }
        pending.done = true
    }

    /// An empty allreduce still has to match a collective on the other ranks.
    private func barrierLikeEmpty() throws {
        var dummy: Int64 = 0
        var req: MPI_Request? = cmpi_request_null()
        try check(MPI_Iallreduce(cmpi_in_place(), &dummy, 1, cmpi_int64(), cmpi_op_sum(), comm, &req),
                  "MPI_Iallreduce")
        try wait(&req, collective: "allreduce(empty)")
    }

    public func allgatherv<T: CollectiveScalar>(_ local: UnsafeBufferPointer<T>) throws -> (values: [T], counts: [Int]) {
        // 1. Counts first.
        var counts64 = [Int64](repeating: 0, count: worldSize)
        var mine = Int64(local.count)
        var req: MPI_Request? = cmpi_request_null()
        try counts64.withUnsafeMutableBufferPointer { cp in
            try check(MPI_Iallgather(&mine, 1, cmpi_int64(), cp.baseAddress, 1, cmpi_int64(), comm, &req),
                      "MPI_Iallgather")
            try wait(&req, collective: "allgather(counts)")
        }
        let counts = counts64.map { Int($0) }
        let total = counts.reduce(0, +)
        var result = [T](repeating: 0, count: total)
        var offsets = [Int](repeating: 0, count: worldSize)
        for r in 1..<max(worldSize, 1) { offsets[r] = offsets[r - 1] + counts[r - 1] }
        let dtype = datatype(T.self)
        var dummySend = T.zero
        let collective = "allgatherv(\(total) x \(T.self))"

        if total <= maxElementsPerCall {
            // 2a. One call: every count and displacement fits in a C int.
            var rc32 = counts.map { Int32($0) }
            var displs32 = offsets.map { Int32($0) }
            try result.withUnsafeMutableBufferPointer { out in
                var dummyRecv = T.zero
                let recv: UnsafeMutableRawPointer = out.baseAddress.map { UnsafeMutableRawPointer($0) }
                    ?? withUnsafeMutablePointer(to: &dummyRecv) { UnsafeMutableRawPointer($0) }
                let send: UnsafeRawPointer = local.baseAddress.map { UnsafeRawPointer($0) }
                    ?? withUnsafePointer(to: &dummySend) { UnsafeRawPointer($0) }
                try check(MPI_Iallgatherv(send, Int32(local.count), dtype, recv, &rc32, &displs32, dtype, comm, &req),
                          "MPI_Iallgatherv")
                try wait(&req, collective: collective)
            }
            return (result, counts)
        }

        // 2b. Rounds: each rank sends at most `perRank` elements per round, so a round's
        // total stays within the limit; the round's pieces are copied to their places.
        let perRank = max(1, maxElementsPerCall / worldSize)
        let maxCount = counts.max() ?? 0
        let rounds = (maxCount + perRank - 1) / perRank
        var staging = [T](repeating: 0, count: perRank * worldSize)
        for round in 0..<rounds {
            let begin = round * perRank
            var rc32 = [Int32](repeating: 0, count: worldSize)
            var displs32 = [Int32](repeating: 0, count: worldSize)
            var acc = 0
            for r in 0..<worldSize {
                let n = max(0, min(perRank, counts[r] - begin))
                rc32[r] = Int32(n)
                displs32[r] = Int32(acc)
                acc += n
            }
            let myN = Int(rc32[rank])
            try staging.withUnsafeMutableBufferPointer { st in
                let send: UnsafeRawPointer = (myN > 0 ? local.baseAddress.map { UnsafeRawPointer($0 + begin) } : nil)
                    ?? withUnsafePointer(to: &dummySend) { UnsafeRawPointer($0) }
                try check(MPI_Iallgatherv(send, Int32(myN), dtype, st.baseAddress, &rc32, &displs32, dtype, comm, &req),
                          "MPI_Iallgatherv")
                try wait(&req, collective: collective + " round \(round + 1)/\(rounds)")
            }
            for r in 0..<worldSize where rc32[r] > 0 {
                let n = Int(rc32[r])
                let src = Int(displs32[r])
                let dst = offsets[r] + begin
                result.withUnsafeMutableBufferPointer { out in
                    staging.withUnsafeBufferPointer { st in
                        (out.baseAddress! + dst).update(from: st.baseAddress! + src, count: n)
                    }
                }
            }
        }
        return (result, counts)
    }

    public func broadcast<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws {
        guard root >= 0 && root < worldSize else {
            throw CommunicatorError.invalidArgument(
                "broadcast root \(root) is outside the world of size \(worldSize). Hint: use a rank in 0..<\(worldSize).")
        }
        guard worldSize > 1, let base = buffer.baseAddress, buffer.count > 0 else { return }
        let dtype = datatype(T.self)
        var offset = 0
        while offset < buffer.count {
            let n = min(maxElementsPerCall, buffer.count - offset)
            var req: MPI_Request? = cmpi_request_null()
            try check(MPI_Ibcast(base + offset, Int32(n), dtype, Int32(root), comm, &req), "MPI_Ibcast")
            try wait(&req, collective: "broadcast(root \(root), \(buffer.count) x \(T.self))")
            offset += n
        }
    }

    public func barrier() throws {
        guard worldSize > 1 else { return }
        var req: MPI_Request? = cmpi_request_null()
        try check(MPI_Ibarrier(comm, &req), "MPI_Ibarrier")
        try wait(&req, collective: "barrier")
    }

    public func abort(code: Int32, message: String) -> Never {
        if !message.isEmpty { writeToStandardError(message.hasSuffix("\n") ? message : message + "\n") }
        MPI_Abort(comm, code)
        exit(code)  // MPI_Abort does not return; this satisfies the type checker.
    }

    /// Blocking `MPI_Allreduce` (no deadline), kept for benchmarks that compare it with
    /// the polled non-blocking path.
    public func blockingAllreduce(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        guard worldSize > 1, let base = buffer.baseAddress else { return }
        var offset = 0
        while offset < buffer.count {
            let n = min(maxElementsPerCall, buffer.count - offset)
            try check(MPI_Allreduce(cmpi_in_place(), base + offset, Int32(n), cmpi_float(), cmpi_op_sum(), comm),
                      "MPI_Allreduce")
            offset += n
        }
    }

    /// Blocking `MPI_Allreduce` of Double values (sum; no deadline), for the latency benchmark.
    public func blockingAllreduceDouble(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
        guard worldSize > 1, let base = buffer.baseAddress, buffer.count > 0 else { return }
        try check(MPI_Allreduce(cmpi_in_place(), base, Int32(buffer.count), cmpi_double(), cmpi_op_sum(), comm), "MPI_Allreduce")
    }

    // MARK: - Internals

    /// Polls `req` until it completes or the deadline passes. Spins briefly (small
    /// collectives finish in microseconds), then yields the core, then sleeps in 50 µs
    /// steps so an oversubscribed rank does not starve its neighbours.
    private func wait(_ req: inout MPI_Request?, collective: String) throws {
        var flag: Int32 = 0
        var polls = 0
        let start = DispatchTime.now().uptimeNanoseconds
        defer { collectiveWaitSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9 }
        while true {
            try check(MPI_Test(&req, &flag, cmpi_status_ignore()), "MPI_Test(\(collective))")
            if flag != 0 { return }
            polls += 1
            if polls < 2000 { continue }
            let waited = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            if let timeout = stallTimeout, waited > timeout {
                throw CommunicatorError.stalled(collective: collective, phase: phase,
                                                waitedSeconds: waited, timeoutSeconds: timeout)
            }
            if waited < 0.005 {
                sched_yield()
            } else {
                usleep(50)
            }
        }
    }

    private func check(_ rc: Int32, _ call: String) throws {
        try Self.check(rc, call, phase: phase)
    }

    private static func check(_ rc: Int32, _ call: String, phase: String) throws {
        guard rc != MPI_SUCCESS else { return }
        var buf = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING) + 1)
        var len: Int32 = 0
        MPI_Error_string(rc, &buf, &len)
        let msg = String(decoding: buf.prefix(Int(len)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        throw CommunicatorError.mpi(call: call, code: rc, mpiMessage: msg, phase: phase)
    }

    private func datatype<T: CollectiveScalar>(_: T.Type) -> MPI_Datatype {
        switch T.scalarKind {
        case .float32: return cmpi_float()
        case .float64: return cmpi_double()
        case .int32: return cmpi_int32()
        case .int64: return cmpi_int64()
        case .uint8: return cmpi_uint8()
        case .uint64: return cmpi_uint64()
        }
    }

    private func mpiOp(_ op: ReduceOp) -> MPI_Op {
        switch op {
        case .sum: return cmpi_op_sum()
        case .max: return cmpi_op_max()
        case .min: return cmpi_op_min()
        }
    }
}
