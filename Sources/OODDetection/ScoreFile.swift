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
