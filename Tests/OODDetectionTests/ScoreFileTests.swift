import XCTest
@testable import OODDetection

final class ScoreFileTests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("ood-scorefile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    private func write(_ name: String, _ text: String) throws -> String {
        let path = dir.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testParsesWithBlankLinesWhitespaceAndCRLF() throws {
        let path = try write("id.txt", "  0.5\n\n\t-1.25e-3  \r\n3\r\n\n   \n42")
        XCTAssertEqual(try ScoreFile.read(path: path), [0.5, -0.00125, 3, 42])
    }

    func testRoundTripsThroughWrite() throws {
        let scores = [0.1, -2.5e-17, 1e300, 2.126928011042972]
        let path = dir.appendingPathComponent("rt.txt").path
        try ScoreFile.write(scores, to: path)
        XCTAssertEqual(try ScoreFile.read(path: path), scores)
    }

    func testNonNumericLineIsReportedWithFileAndLineNumber() throws {
        let path = try write("ood.txt", "0.1\n\n0.2\nscore\n0.3\n")
        XCTAssertThrowsError(try ScoreFile.read(path: path)) { error in
            XCTAssertEqual(error as? ScoreFileError, .nonNumeric(path: path, line: 4, text: "score"))
            let text = String(describing: error)
            XCTAssertTrue(text.contains("\(path):4"), text)
            XCTAssertTrue(text.contains("Hint:"), text)
        }
        // CRLF lines count once each.
        XCTAssertThrowsError(try ScoreFile.parse("1\r\n2\r\n0,5\r\n", fileName: "x.txt")) {
            XCTAssertEqual($0 as? ScoreFileError, .nonNumeric(path: "x.txt", line: 3, text: "0,5"))
        }
        XCTAssertThrowsError(try ScoreFile.parse("1 2\n", fileName: "y.txt")) {
            XCTAssertEqual($0 as? ScoreFileError, .nonNumeric(path: "y.txt", line: 1, text: "1 2"))
        }
    }

    func testEmptyAndMissingFiles() throws {
        let empty = try write("empty.txt", "")
        XCTAssertThrowsError(try ScoreFile.read(path: empty)) {
            XCTAssertEqual($0 as? ScoreFileError, .empty(path: empty))
        }
        let blank = try write("blank.txt", "\n  \n\t\n")
        XCTAssertThrowsError(try ScoreFile.read(path: blank)) {
            XCTAssertEqual($0 as? ScoreFileError, .empty(path: blank))
        }
        let missing = dir.appendingPathComponent("nope.txt").path
        XCTAssertThrowsError(try ScoreFile.read(path: missing)) {
            XCTAssertEqual($0 as? ScoreFileError, .fileNotFound(path: missing))
            XCTAssertTrue(String(describing: $0).contains(missing))
        }
        XCTAssertThrowsError(try ScoreFile.read(path: dir.path)) {
            guard case .unreadable? = $0 as? ScoreFileError else { return XCTFail("\($0)") }
        }
    }

    func testNonFiniteTokensParseAndAreCountedByMetrics() throws {
        let id = try ScoreFile.parse("0.9\nnan\ninf\n0.8\n", fileName: "id.txt")
        XCTAssertEqual(id.count, 4)
        XCTAssertThrowsError(try OODMetrics.compute(idScores: id, oodScores: [0.1])) {
            guard case let .nonFiniteScores(idc, _, _, _)? = $0 as? OODMetricsError else { return XCTFail("\($0)") }
            XCTAssertEqual(idc.total, 2)
        }
    }

    /// `umtrain metrics --column`: a row without a cell in the column used to be dropped
    /// silently (the metrics then covered fewer samples than the file); it is now an error
    /// naming the line. Blank lines are still skipped; a missing column names the header.
    func testCSVColumnRowWithoutTheCellIsAnErrorNamingTheLine() throws {
        let ok = "id,msp,energy\n0,-0.1,3.5\n\n1,-0.2,2.5\n"
        XCTAssertEqual(try ScoreFile.parseColumn(ok, column: "energy", fileName: "s.csv"), [3.5, 2.5])
        XCTAssertThrowsError(try ScoreFile.parseColumn("id,msp,energy\n0,-0.1,3.5\n1,-0.2\n2,-0.3,1\n", column: "energy",
                                                      fileName: "s.csv")) { error in
            XCTAssertEqual(error as? ScoreFileError, .missingCell(path: "s.csv", line: 3, column: "energy", cells: 2))
            XCTAssertTrue("\(error)".contains("s.csv:3"), "\(error)")
        }
        XCTAssertThrowsError(try ScoreFile.parseColumn("id,msp\n0,\n", column: "msp", fileName: "s.csv")) { error in
            XCTAssertEqual(error as? ScoreFileError, .nonNumeric(path: "s.csv", line: 2, text: ""))
        }
        XCTAssertThrowsError(try ScoreFile.parseColumn("id,msp\n0,1\n", column: "knn", fileName: "s.csv")) { error in
            XCTAssertEqual(error as? ScoreFileError, .missingColumn(path: "s.csv", column: "knn", header: ["id", "msp"]))
        }
    }
}
