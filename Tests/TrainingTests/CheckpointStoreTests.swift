import Distributed
import Training
import XCTest

final class CheckpointStoreTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-\(UUID().uuidString)").path
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func testWriteListKeepAndRead() throws {
        let store = CheckpointStore(directory: dir, keep: 2)
        let comm = LocalCommunicator()
        for step in [5, 10, 15] {
            try store.write(step: step, files: ["model.safetensors": [UInt8](repeating: UInt8(step), count: 100),
                                                "state.json": Array("{\"step\": \(step)}".utf8)], comm: comm)
        }
        XCTAssertEqual(store.listed().map(\.step), [10, 15], "only the last 2 are kept")
        let newest = try XCTUnwrap(store.newestComplete())
        XCTAssertEqual(newest.step, 15)
        XCTAssertEqual(try newest.read("model.safetensors"), [UInt8](repeating: 15, count: 100))
        XCTAssertThrowsError(try newest.read("optimizer.safetensors")) { e in
            XCTAssertTrue("\(e)".contains("no file 'optimizer.safetensors'"), "\(e)")
        }
        // No temporary files are left behind.
        let leftovers = try FileManager.default.subpathsOfDirectory(atPath: dir).filter { $0.contains(".tmp.") }
        XCTAssertEqual(leftovers, [])
    }

    func testTruncatedNewestFallsBackToPrevious() throws {
        let store = CheckpointStore(directory: dir, keep: 3)
        let comm = LocalCommunicator()
        try store.write(step: 1, files: ["model.safetensors": Array(repeating: 1, count: 64)], comm: comm)
        let newest = try store.write(step: 2, files: ["model.safetensors": Array(repeating: 2, count: 64)], comm: comm)
        // Truncate the newest model file behind the store's back.
        let fh = try XCTUnwrap(FileHandle(forWritingAtPath: newest + "/model.safetensors"))
        try fh.truncate(atOffset: 10)
        try fh.close()
        var reports: [String] = []
        let c = try XCTUnwrap(store.newestComplete { reports.append($0) })
        XCTAssertEqual(c.step, 1)
        XCTAssertEqual(reports.count, 1)
        XCTAssertTrue(reports[0].contains("has 10 bytes, the marker says 64"), reports[0])
    }

    /// A hand-edited marker naming a file outside its folder (found while fuzzing the marker):
    /// verification read `../<file>` and accepted the checkpoint when that file matched.
    func testMarkerNamingAFileOutsideTheFolderMakesTheCheckpointCorrupt() throws {
        let store = CheckpointStore(directory: dir, keep: 3)
        try store.write(step: 1, files: ["a": [1, 2, 3]], comm: LocalCommunicator())
        let newest = try store.write(step: 2, files: ["a": [4, 5, 6]], comm: LocalCommunicator())
        // Point the newest marker at the older checkpoint's file: same size and checksum.
        let older = try XCTUnwrap(store.listed().first)
        let marker = newest + "/COMPLETE"
        var json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: marker))) as? [String: Any])
        let olderJSON = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: older.path + "/COMPLETE"))) as? [String: Any])
        let olderRecord = try XCTUnwrap((olderJSON["files"] as? [String: Any])?["a"])
        json["files"] = ["../" + (older.path as NSString).lastPathComponent + "/a": olderRecord]
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: marker))
        var reports: [String] = []
        XCTAssertEqual(store.newestComplete { reports.append($0) }?.step, 1)
        XCTAssertTrue(reports.first?.contains("not a file of this folder") ?? false, "\(reports)")
    }

    func testFolderWithoutMarkerIsIgnored() throws {
        let store = CheckpointStore(directory: dir, keep: 3)
        try store.write(step: 3, files: ["a": [1, 2, 3]], comm: LocalCommunicator())
        try FileManager.default.createDirectory(atPath: dir + "/step-00000009", withIntermediateDirectories: true)
        try Data([9]).write(to: URL(fileURLWithPath: dir + "/step-00000009/a"))
        XCTAssertEqual(store.newestComplete()?.step, 3)
    }

    func testAtomicWriteReplacesWholeFile() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let p = dir + "/x.json"
        try AtomicFile.write("first version, longer", to: p)
        try AtomicFile.write("second", to: p)
        XCTAssertEqual(try String(contentsOfFile: p, encoding: .utf8), "second")
        XCTAssertThrowsError(try AtomicFile.write("x", to: dir + "/missing-dir/y.json")) { e in
            XCTAssertTrue("\(e)".contains("cannot write"), "\(e)")
        }
    }
}
