#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// A world of one rank, for rank-local use and unit tests. Every collective is the
/// identity that MPI gives for a world of size 1: allreduce leaves the buffer unchanged,
/// allgatherv returns the local contribution, broadcast from root 0 is a no-op.
public final class LocalCommunicator: Communicator {
    public let rank = 0
    public let worldSize = 1
    public var stallTimeout: Double?
    public var phase: String = "start-up"
    public let collectiveWaitSeconds = 0.0

    public init() {}

    public func allreduce<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReduceOp) throws {}

    public func allgatherv<T: CollectiveScalar>(_ local: UnsafeBufferPointer<T>) throws -> (values: [T], counts: [Int]) {
        (Array(local), [local.count])
    }

    public func broadcast<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws {
        guard root == 0 else {
            throw CommunicatorError.invalidArgument(
                "broadcast root \(root) is outside the world of size 1. Hint: use root 0.")
        }
    }

    public func barrier() throws {}

    public func startAllreduce(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> PendingAllreduce {
        PendingAllreduce(label: "allreduce", done: true)
    }
    public func testAllreduce(_ pending: PendingAllreduce) throws -> Bool { true }
    public func waitAllreduce(_ pending: PendingAllreduce) throws {}

    public func abort(code: Int32, message: String) -> Never {
        if !message.isEmpty { writeToStandardError(message.hasSuffix("\n") ? message : message + "\n") }
        exit(code)
    }
}
