import Foundation

/// Errors from reading a score file (`umtrain metrics --id FILE --ood FILE`).
public enum ScoreFileError: Error, Equatable, CustomStringConvertible {
    /// No file at `path`.
    case fileNotFound(path: String)
    /// The file exists but could not be read or is not UTF-8 text.
    case unreadable(path: String, reason: String)
    /// The file holds no numbers (empty, or only blank lines).
    case empty(path: String)
    /// Line `line` (1-based) is neither blank nor a number; `text` is the trimmed line.
    case nonNumeric(path: String, line: Int, text: String)
    /// A CSV file's header has no column `column`.
    case missingColumn(path: String, column: String, header: [String])
    /// CSV line `line` (1-based, the header is line 1) has no cell in column `column`.
    case missingCell(path: String, line: Int, column: String, cells: Int)

    public var description: String {
        switch self {
        case let .fileNotFound(path):
            return "score file \(path): not found (expected a text file with one score per line). "
                + "Hint: check the path given to --id/--ood."
        case let .unreadable(path, reason):
            return "score file \(path): cannot be read (\(reason)); expected UTF-8 text, one score per line. "
                + "Hint: check permissions and encoding."
        case let .empty(path):
            return "score file \(path): no scores (expected at least 1 number, got 0). "
                + "Hint: the scoring run may have failed or written to another file."
        case let .nonNumeric(path, line, text):
            let shown = text.count > 60 ? String(text.prefix(60)) + "..." : text
            return "score file \(path):\(line): expected a number, got \"\(shown)\". "
                + "Hint: one decimal number per line (e.g. 0.8731 or -12.5e-3); headers and commas are not accepted."
        case let .missingColumn(path, column, header):
            return "score file \(path): no column '\(column)' in the header (columns: \(header.joined(separator: ", "))). "
                + "Hint: pass one of those to --column."
        case let .missingCell(path, line, column, cells):
            return "score file \(path):\(line): no cell in column '\(column)' (the line has \(cells) cell(s)). "
                + "Hint: every row needs a value in that column; the file may be truncated."
        }
    }
}

/// Plain-text score files: one number per line, higher = more in-distribution.
///
/// Blank lines and surrounding whitespace (spaces, tabs, `\r`) are ignored. Numbers use Swift's
/// `Double(String)` syntax, so `nan`, `inf` and `-inf` parse; they are then rejected (with counts)
/// or excluded by `OODMetrics.compute`, not here.
public enum ScoreFile {
    /// Reads the scores of the file at `path`.
    /// - Returns: `[n]` scores in file order.
    /// - Throws: `ScoreFileError.fileNotFound`, `.unreadable`, `.empty`, `.nonNumeric` (with the
    ///   file name and 1-based line number).
    public static func read(path: String) throws -> [Double] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ScoreFileError.fileNotFound(path: path)
        }
        if isDirectory.boolValue { throw ScoreFileError.unreadable(path: path, reason: "it is a directory") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ScoreFileError.unreadable(path: path, reason: "read failed")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ScoreFileError.unreadable(path: path, reason: "not valid UTF-8")
        }
        return try parse(text, fileName: path)
    }

    /// Parses score-file text; `fileName` is only used in error messages.
    /// - Throws: `ScoreFileError.empty`, `.nonNumeric`.
    public static func parse(_ text: String, fileName: String) throws -> [Double] {
        var scores = [Double]()
        var lineNumber = 0
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: isLineBreak) {
            lineNumber += 1
            let line = trimmed(rawLine)
            if line.isEmpty { continue }
            guard let value = Double(line) else {
                throw ScoreFileError.nonNumeric(path: fileName, line: lineNumber, text: String(line))
            }
            scores.append(value)
        }
        if scores.isEmpty { throw ScoreFileError.empty(path: fileName) }
        return scores
    }

    /// Reads one column of a CSV score file with a header (e.g. the reports/scores/*.csv that
    /// `umtrain evaluate` writes): the header names the columns; blank lines are skipped; a row
    /// without a cell in the column, or with a non-numeric one, is an error naming the line.
    /// - Returns: `[n]` scores in file order.
    /// - Throws: `ScoreFileError.missingColumn`, `.missingCell`, `.nonNumeric`, `.empty`.
    public static func parseColumn(_ text: String, column: String, fileName: String) throws -> [Double] {
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: isLineBreak)
        guard let headerLine = lines.first(where: { !trimmed($0).isEmpty }) else { throw ScoreFileError.empty(path: fileName) }
        let header = headerLine.split(separator: ",", omittingEmptySubsequences: false).map { String(trimmed($0)) }
        guard let index = header.firstIndex(of: column) else {
            throw ScoreFileError.missingColumn(path: fileName, column: column, header: header)
        }
        var scores = [Double]()
        var seenHeader = false
        for (n, rawLine) in lines.enumerated() {
            if trimmed(rawLine).isEmpty { continue }
            if !seenHeader { seenHeader = true; continue }
            let cells = rawLine.split(separator: ",", omittingEmptySubsequences: false)
            guard index < cells.count else {
                throw ScoreFileError.missingCell(path: fileName, line: n + 1, column: column, cells: cells.count)
            }
            let cell = trimmed(cells[index])
            guard let value = Double(cell) else {
                throw ScoreFileError.nonNumeric(path: fileName, line: n + 1, text: String(cell))
            }
            scores.append(value)
        }
        if scores.isEmpty { throw ScoreFileError.empty(path: fileName) }
        return scores
    }

    /// Reads one column of the CSV score file at `path` (see ``parseColumn(_:column:fileName:)``).
    public static func readColumn(path: String, column: String) throws -> [Double] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ScoreFileError.fileNotFound(path: path)
        }
        if isDirectory.boolValue { throw ScoreFileError.unreadable(path: path, reason: "it is a directory") }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ScoreFileError.unreadable(path: path, reason: "read failed or not valid UTF-8")
        }
        return try parseColumn(text, column: column, fileName: path)
    }

    /// Line breaks: LF, CRLF (one Swift `Character`) and a lone CR.
    private static func isLineBreak(_ c: Character) -> Bool { c == "\n" || c == "\r\n" || c == "\r" }

    /// Writes `scores` one per line with round-trip precision (Swift's shortest exact `description`).
    public static func write(_ scores: [Double], to path: String) throws {
        var text = ""
        text.reserveCapacity(scores.count * 20)
        for s in scores {
            text += s.description
            text += "\n"
        }
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// Drops leading and trailing whitespace (spaces, tabs, stray carriage returns).
    private static func trimmed(_ s: Substring) -> Substring {
        var lo = s.startIndex
        var hi = s.endIndex
        while lo < hi, s[lo].isWhitespace { lo = s.index(after: lo) }
        while hi > lo, s[s.index(before: hi)].isWhitespace { hi = s.index(before: hi) }
        return s[lo..<hi]
    }
}
