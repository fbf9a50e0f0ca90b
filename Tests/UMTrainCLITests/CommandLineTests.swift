import ArgumentParser
@testable import UMTrainCLI
import XCTest

final class CommandLineTests: XCTestCase {
    func testSelftestParsesRuntimeOptions() throws {
        let cmd = try UMTrain.parseAsRoot(["selftest", "--comm", "local", "--blas-threads", "2", "--stall-timeout", "5"])
        let s = try XCTUnwrap(cmd as? Selftest)
        XCTAssertEqual(s.runtime.comm, .local)
        XCTAssertEqual(s.runtime.blasThreads, 2)
        XCTAssertEqual(s.runtime.stallTimeout, 5)
    }

    func testInvalidOptionsAreRejectedWithTheOptionName() {
        XCTAssertThrowsError(try UMTrain.parseAsRoot(["selftest", "--blas-threads", "0"])) { error in
            XCTAssertTrue(UMTrain.message(for: error).contains("--blas-threads"), UMTrain.message(for: error))
        }
        XCTAssertThrowsError(try UMTrain.parseAsRoot(["bench", "comm", "--sizes", "1,x"])) { error in
            XCTAssertTrue(UMTrain.message(for: error).contains("--sizes"), UMTrain.message(for: error))
        }
        XCTAssertThrowsError(try UMTrain.parseAsRoot(["selftest", "--comm", "tcp"]))
    }

    func testMedianOfOddAndEvenSamples() {
        XCTAssertEqual(median([3, 1, 2]), 2)
        XCTAssertEqual(median([4, 1, 3, 2]), 2.5)
    }

    func testSuiteValueIsRankDependent() {
        XCTAssertNotEqual(MultiRankSuite.value(rank: 0, index: 3), MultiRankSuite.value(rank: 1, index: 3))
        XCTAssertEqual(MultiRankSuite.unevenCount(rank: 1), 0)
        XCTAssertEqual(MultiRankSuite.unevenCount(rank: 2), 7)
    }
}
