import Foundation
import XCTest
@testable import SafeTensors

/// Interop with the reference Python library (huggingface/safetensors 0.8.0, numpy backend).
/// Fixtures/reference.safetensors was written by Fixtures/make_fixture.py.
final class InteropTests: XCTestCase {
    func testReaderLoadsPythonFixtureExactly() throws {
        let loaded = try SafeTensorsFile.read(path: fixturePath("reference.safetensors"))
        let expected = referenceFile()
        XCTAssertEqual(loaded.metadata, expected.metadata)
        XCTAssertEqual(Set(loaded.names), Set(expected.names))
        for want in expected.records {
            let got = try XCTUnwrap(loaded.record(named: want.name), want.name)
            XCTAssertEqual(got.dtype, want.dtype, want.name)
            XCTAssertEqual(got.shape, want.shape, want.name)
            if want.dtype == .f32 {
                XCTAssertEqual(floatBits(try got.floats()), floatBits(try want.floats()), want.name)
            } else {
                XCTAssertEqual(try got.int64s(), try want.int64s(), want.name)
            }
        }
        // Spot values written independently of referenceFile(): conv1.weight[1, 2, 1, 1] is
        // flat index 23 -> (23 - 12) / 8 = 1.375; NaN payload kept; Int64 extremes kept.
        XCTAssertEqual(try loaded.record(named: "conv1.weight")?.floats()[23], 1.375)
        XCTAssertEqual(try loaded.record(named: "specials")?.floats()[0].bitPattern, 0x7FC0_0001)
        XCTAssertEqual(try loaded.record(named: "indices")?.int64s(), [Int64.min, -1, 0, Int64.max])
        XCTAssertEqual(try loaded.record(named: "bn1.num_batches_tracked")?.int64s(), [12_345_678_901_234])
        XCTAssertEqual(loaded.record(named: "scale")?.shape, [])
        XCTAssertEqual(loaded.record(named: "empty")?.elementCount, 0)
        // Records come back in data-section order (the reference writer's order).
        XCTAssertEqual(loaded.names, ["bn1.num_batches_tracked", "indices", "conv1.weight", "empty",
                                      "fc.bias", "scale", "specials"])
    }

    /// Our writer produces exactly the bytes the reference library writes for the same content,
    /// so any reader that accepts the reference output accepts ours.
    func testWriterIsByteIdenticalToPythonLibrary() throws {
        let pythonBytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixturePath("reference.safetensors"))))
        XCTAssertEqual(try referenceFile().encode(), pythonBytes)
        // And re-encoding what we read reproduces the file.
        XCTAssertEqual(try SafeTensorsFile.decode(pythonBytes).encode(), pythonBytes)
    }

    /// Writes referenceFile() with our writer for `Fixtures/check_ours.py`:
    /// `SAFETENSORS_INTEROP_OUT=/tmp/ours.safetensors swift test --filter SafeTensorsTests.InteropTests`
    /// then `python Tests/SafeTensorsTests/Fixtures/check_ours.py /tmp/ours.safetensors`.
    func testWriteFileForPythonCheck() throws {
        let path = try ProcessInfo.processInfo.environment["SAFETENSORS_INTEROP_OUT"]
            ?? (makeTemporaryDirectory(self) + "/ours.safetensors")
        try referenceFile().write(to: path)
        XCTAssertTrue(try SafeTensorsFile.read(path: path).hasSameContents(as: referenceFile()))
    }

    /// Verdicts of our reader on the corrupted files made by `Fixtures/differential.py generate DIR`,
    /// written to DIR/swift_verdicts.json for `differential.py compare DIR`. Skipped unless
    /// SAFETENSORS_DIFF_DIR is set (it needs the Python library to make the inputs).
    func testDifferentialVerdicts() throws {
        guard let directory = ProcessInfo.processInfo.environment["SAFETENSORS_DIFF_DIR"] else {
            throw XCTSkip("set SAFETENSORS_DIFF_DIR to run the differential check")
        }
        var verdicts: [String: String] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) where name.hasSuffix(".safetensors") {
            let key = String(name.dropLast(".safetensors".count))
            do {
                _ = try SafeTensorsFile.read(path: directory + "/" + name, allowingUnsupportedDTypes: true)
                verdicts[key] = "ok"
            } catch {
                verdicts[key] = "error: " + error.description
            }
        }
        XCTAssertGreaterThan(verdicts.count, 0)
        let json = try JSONSerialization.data(withJSONObject: verdicts, options: [.sortedKeys])
        try json.write(to: URL(fileURLWithPath: directory + "/swift_verdicts.json"))
    }
}
