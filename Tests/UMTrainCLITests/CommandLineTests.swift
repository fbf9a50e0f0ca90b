import ArgumentParser
import Training
@testable import Benchmarks
@testable import MultiRankChecks
@testable import UMTrainCLI
import XCTest

final class CommandLineTests: XCTestCase {
    func testSelftestParsesRuntimeOptions() throws {
        let cmd = try UMTrain.parseAsRoot(["selftest", "--comm", "local", "--blas-threads", "2", "--stall-timeout", "5"])
        let s = try XCTUnwrap(cmd as? SelftestCommand)
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

/// The pipeline's pre-flight check refuses, before any stage runs, what a later stage would.
final class PipelinePreflightTests: XCTestCase {
    func pipeline(_ args: [String]) throws -> PipelineCommand {
        let cmd = try UMTrain.parseAsRoot(["pipeline"] + args)
        return try XCTUnwrap(cmd as? PipelineCommand)
    }

    func preflight(_ args: [String], _ config: RunConfig) throws {
        try Pipeline.preflight(config: config, options: try pipeline(args).options, file: "cfg.yaml")
    }

    func testPreflightNamesTheKeyOfWhatALaterStageWouldRefuse() throws {
        var c = RunConfig()
        c.evaluate.oodManifest = ""
        c.evaluate.oodSets = [OODSetConfig(name: "gone", images: "/nonexistent/ood", synthetic: false)]
        XCTAssertThrowsError(try preflight([], c)) { error in
            XCTAssertTrue("\(error)".contains("/nonexistent/ood") && "\(error)".contains("evaluate.ood_sets"), "\(error)")
        }
        c.evaluate.oodSets = [OODSetConfig(name: "here", images: "/tmp", synthetic: false)]
        XCTAssertNoThrow(try preflight([], c))
        c.evaluate.tune = true
        c.evaluate.validationOODSets = [OODSetConfig(name: "val", images: "/nonexistent/val", synthetic: false)]
        XCTAssertThrowsError(try preflight([], c)) { error in
            XCTAssertTrue("\(error)".contains("evaluate.validation_ood_sets"), "\(error)")
        }
        c.evaluate.tune = false
        c.estimate.augment = true
        XCTAssertThrowsError(try preflight([], c)) { error in
            XCTAssertTrue("\(error)".contains("estimate.augment"), "\(error)")
        }
        c.estimate.augment = false
        c.train.epochs = 0
        XCTAssertThrowsError(try preflight([], c)) { error in
            XCTAssertTrue("\(error)".contains("train.epochs") && "\(error)".contains("--checkpoint"), "\(error)")
        }
        XCTAssertThrowsError(try preflight(["--checkpoint", "/nonexistent/w.safetensors"], c)) { error in
            XCTAssertTrue("\(error)".contains("--checkpoint"), "\(error)")
        }
    }
}
