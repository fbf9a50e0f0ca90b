import Distributed
import XCTest

/// Rank-local tests of the communicators. Multi-rank behaviour is tested by
/// `umtrain selftest` under mpirun (launch/test.sh).
final class LocalCommunicatorTests: XCTestCase {
    func testWorldOfOne() {
        let c = LocalCommunicator()
        XCTAssertEqual(c.rank, 0)
        XCTAssertEqual(c.worldSize, 1)
    }

    func testAllreduceIsIdentityForEveryOpAndType() throws {
        let c = LocalCommunicator()
        for op in ReduceOp.allCases {
            var f: [Float] = [1.5, -2, .greatestFiniteMagnitude]
            try c.allreduce(&f, op: op)
            XCTAssertEqual(f, [1.5, -2, .greatestFiniteMagnitude])
            var q: [Int64] = [.min, 0, .max]
            try c.allreduce(&q, op: op)
            XCTAssertEqual(q, [.min, 0, .max])
            XCTAssertEqual(try c.allreduce(3.25, op: op), 3.25)
        }
    }

    func testAllgatherReturnsLocalContributionIncludingEmpty() throws {
        let c = LocalCommunicator()
        XCTAssertEqual(try c.allgather([1.0, 2.0]), [[1.0, 2.0]])
        XCTAssertEqual(try c.allgather([Int64]()), [[]])
        let (values, counts) = try [Float(7)].withUnsafeBufferPointer { try c.allgatherv($0) }
        XCTAssertEqual(values, [7])
        XCTAssertEqual(counts, [1])
    }

    func testBroadcastRejectsRootOutsideWorld() throws {
        let c = LocalCommunicator()
        var a: [Double] = [1, 2]
        try c.broadcast(&a, root: 0)
        XCTAssertEqual(a, [1, 2])
        XCTAssertThrowsError(try c.broadcast(&a, root: 1)) { error in
            XCTAssertTrue("\(error)".contains("root 1 is outside the world of size 1"), "\(error)")
        }
        XCTAssertEqual(try c.broadcast(string: "héllo", root: 0), "héllo")
    }

    func testStallErrorNamesCollectivePhaseAndDeadline() {
        let e = CommunicatorError.stalled(collective: "allreduce(sum, 10 x Float)", phase: "epoch 2 step 17",
                                          waitedSeconds: 5.04, timeoutSeconds: 5)
        let text = "\(e)"
        XCTAssertTrue(text.contains("allreduce(sum, 10 x Float)"), text)
        XCTAssertTrue(text.contains("epoch 2 step 17"), text)
        XCTAssertTrue(text.contains("5.0 s"), text)
        XCTAssertTrue(text.contains("Hint:"), text)
    }

    func testMPIErrorMessageCarriesMPIString() {
        let e = CommunicatorError.mpi(call: "MPI_Iallreduce", code: 5, mpiMessage: "MPI_ERR_TRUNCATE: message truncated",
                                      phase: "selftest")
        XCTAssertTrue("\(e)".contains("MPI_ERR_TRUNCATE: message truncated"))
        XCTAssertTrue("\(e)".contains("MPI_Iallreduce"))
    }
}

/// MPI as a singleton (no mpirun): a world of size 1 whose answers equal the
/// single-process communicator's.
final class MPISingletonTests: XCTestCase {
    static let ready: Void = {
        try? MPIEnvironment.shared.initialize()
        atexit { MPIEnvironment.shared.finalizeIfOwned() }
    }()

    override func setUp() {
        Self.ready
    }

    func testSingletonWorldMatchesLocalCommunicator() throws {
        let mpi = try MPIEnvironment.shared.world()
        XCTAssertEqual(mpi.worldSize, 1)
        XCTAssertEqual(mpi.rank, 0)
        let local = LocalCommunicator()
        let input: [Double] = [0.1, -3, 1e300, .leastNonzeroMagnitude]
        for op in ReduceOp.allCases {
            var a = input, b = input
            try mpi.allreduce(&a, op: op)
            try local.allreduce(&b, op: op)
            XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern))
        }
        XCTAssertEqual(try mpi.allgather([Int64(4), 5]), try local.allgather([Int64(4), 5]))
    }

    func testChunkedCollectivesEqualUnchunkedOnOneRank() throws {
        let mpi = try MPIEnvironment.shared.world()
        let chunked = try mpi.withChunkLimit(7)
        XCTAssertEqual(chunked.maxElementsPerCall, 7)
        let input = (0..<20).map { Float($0) * 0.5 }
        var a = input, b = input
        try mpi.allreduce(&a, op: .sum)
        try chunked.allreduce(&b, op: .sum)
        XCTAssertEqual(a, b)
        XCTAssertEqual(try chunked.allgather(input), [input])
        var c = input
        try chunked.broadcast(&c, root: 0)
        XCTAssertEqual(c, input)
    }

    func testInitializeTwiceIsSafe() throws {
        try MPIEnvironment.shared.initialize()
        try MPIEnvironment.shared.initialize()
        XCTAssertTrue(MPIEnvironment.shared.isActive)
    }
}
