import Foundation
import XCTest
@testable import SafeTensors

final class WriterAndRecordErrorTests: XCTestCase {
    func testRecordRejectsWrongByteCount() {
        XCTAssertThrowsError(try SafeTensorsRecord(name: "fc.weight", dtype: .f32, shape: [2, 3], bytes: [0, 0, 0])) { error in
            XCTAssertEqual(error as? SafeTensorsError, .invalidRecord(tensor: "fc.weight", reason:
                "F32 shape [2, 3] needs 24 bytes, expected that many, got 3"))
            assertMessage(error as? SafeTensorsError, contains: ["tensor 'fc.weight'", "needs 24 bytes", "got 3"])
        }
        XCTAssertThrowsError(try SafeTensorsRecord(name: "n", dtype: .f32, shape: [-1], bytes: [])) { error in
            assertMessage(error as? SafeTensorsError, contains: ["tensor 'n'", "negative dimension"])
        }
        XCTAssertThrowsError(try SafeTensorsRecord(name: "q", dtype: .f4, shape: [3], bytes: [0, 0])) { error in
            assertMessage(error as? SafeTensorsError, contains: ["tensor 'q'", "3 elements of F4 do not fill whole bytes"])
        }
    }

    func testEncodeRejectsDuplicateReservedAndTamperedRecords() {
        let weight = SafeTensorsRecord(name: "w", shape: [1], floats: [1])
        XCTAssertThrowsError(try SafeTensorsFile(records: [weight, weight]).encode()) { error in
            assertMessage(error as? SafeTensorsError, contains: ["tensor 'w'", "duplicate tensor name"])
        }
        let reserved = SafeTensorsRecord(name: "__metadata__", shape: [1], floats: [1])
        XCTAssertThrowsError(try SafeTensorsFile(records: [reserved]).encode()) { error in
            assertMessage(error as? SafeTensorsError, contains: ["'__metadata__'", "reserved"])
        }
        var tampered = weight
        tampered.shape = [2]
        XCTAssertThrowsError(try SafeTensorsFile(records: [tampered]).encode()) { error in
            assertMessage(error as? SafeTensorsError, contains: ["tensor 'w'", "needs 8 bytes", "got 4"])
        }
    }

    func testInvalidFileIsNotWritten() throws {
        let directory = try makeTemporaryDirectory(self)
        let path = directory + "/model.safetensors"
        let weight = SafeTensorsRecord(name: "w", shape: [1], floats: [1])
        XCTAssertThrowsError(try SafeTensorsFile(records: [weight, weight]).write(to: path))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), [])
    }

    func testWriteIntoMissingDirectoryFails() {
        let file = SafeTensorsFile(records: [SafeTensorsRecord(name: "w", shape: [1], floats: [1])])
        XCTAssertThrowsError(try file.write(to: "/nonexistent-dir-st/model.safetensors")) { error in
            guard case let .writeFailed(path, operation, reason)? = error as? SafeTensorsError else { return XCTFail("\(error)") }
            XCTAssertEqual(path, "/nonexistent-dir-st/model.safetensors")
            XCTAssertTrue(operation.hasPrefix("create temporary file /nonexistent-dir-st/.model.safetensors.tmp."), operation)
            XCTAssertTrue(reason.contains("No such file"), reason)
            assertMessage(error as? SafeTensorsError, contains: ["writing safetensors file failed", "previous file"])
        }
    }

    func testWriteToRelativePathInCurrentDirectory() throws {
        let directory = try makeTemporaryDirectory(self)
        let previous = FileManager.default.currentDirectoryPath
        XCTAssertTrue(FileManager.default.changeCurrentDirectoryPath(directory))
        defer { _ = FileManager.default.changeCurrentDirectoryPath(previous) }
        let file = SafeTensorsFile(records: [SafeTensorsRecord(name: "w", shape: [1], floats: [1])])
        try file.write(to: "relative.safetensors")
        XCTAssertEqual(try SafeTensorsFile.read(path: directory + "/relative.safetensors"), file)
    }
}
