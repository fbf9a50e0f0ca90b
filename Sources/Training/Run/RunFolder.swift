import NeuralNetwork
import Distributed
import Foundation
import TensorCore

/// A stage folder: `<output_dir>/<name>/<stage>/` holding `checkpoints/`, `metrics.jsonl`,
/// `reports/`, the resolved config and the provenance record. Only global rank 0 writes.
public struct RunFolder: Sendable {
    public let root: String
    public let stage: String

    public init(config: RunConfig, stage: String) {
        root = config.outputDir + "/" + config.name + "/" + stage
        self.stage = stage
    }

    public var checkpoints: String { root + "/checkpoints" }
    public var reports: String { root + "/reports" }
    public var metricsPath: String { root + "/metrics.jsonl" }

    /// Creates the folders (rank 0) and removes temporary files left by an interrupted
    /// earlier run (`.<name>.tmp.<pid>`).
    public func create() throws {
        if let names = try? FileManager.default.contentsOfDirectory(atPath: root) {
            for n in names where n.hasPrefix(".") && n.contains(".tmp.") {
                try? FileManager.default.removeItem(atPath: root + "/" + n)
            }
        }
        for d in [root, checkpoints, reports] {
            do {
                try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
            } catch {
                throw CheckpointError.writeFailed(path: d, reason: "cannot create the folder (\(error.localizedDescription))")
            }
        }
    }

    /// The files and folders a finished or interrupted run leaves in a stage folder.
    public static let runOutputs = ["checkpoints", "model.safetensors", "metrics.jsonl", "stage.json", "estimate.json",
                                    "atypical.csv", "validation_ids.json", "reports", "best_val_epoch.safetensors",
                                    "best_val_epoch.json"]

    /// Removes what an earlier run left here (``runOutputs``), so a fresh run neither resumes
    /// from nor is mistaken for it (rank 0).
    /// - Returns: the names removed.
    /// - Throws: ``CheckpointError/writeFailed(path:reason:)`` when one cannot be removed.
    public func clearPreviousRun() throws -> [String] {
        var removed: [String] = []
        for name in Self.runOutputs where FileManager.default.fileExists(atPath: root + "/" + name) {
            do {
                try FileManager.default.removeItem(atPath: root + "/" + name)
            } catch {
                throw CheckpointError.writeFailed(path: root + "/" + name, reason: "cannot remove an earlier run's output (\(error.localizedDescription))")
            }
            removed.append(name)
        }
        return removed
    }

    /// Drops the records of `metrics.jsonl` written after global step `step` (an interrupted
    /// run's epochs past the checkpoint it resumes from), so a resumed run does not list an epoch
    /// twice (rank 0). Lines that are not records with a `steps` field are kept.
    /// - Returns: the number of records removed.
    @discardableResult
    public func truncateMetrics(afterStep step: Int) throws -> Int {
        guard let data = FileManager.default.contents(atPath: metricsPath), let text = String(data: data, encoding: .utf8) else { return 0 }
        var kept: [Substring] = [], removed = 0
        for line in text.split(separator: "\n") {
            if let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
               let steps = object["steps"] as? Int, steps > step {
                removed += 1
            } else {
                kept.append(line)
            }
        }
        if removed > 0 { try AtomicFile.write(kept.map { $0 + "\n" }.joined(), to: metricsPath) }
        return removed
    }

    /// The records of a `metrics.jsonl` file, in order (lines that are not JSON objects are
    /// skipped; a missing file gives none).
    public static func readMetrics(_ path: String) -> [[String: Any]] {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// Appends one JSON object as a line to `metrics.jsonl` (rank 0). Non-finite numbers are
    /// written as null so the file stays valid JSON Lines.
    public func appendMetrics(_ record: [String: Any]) {
        let clean = record.mapValues { v -> Any in
            if let d = v as? Double, !d.isFinite { return NSNull() }
            return v
        }
        guard let data = try? JSONSerialization.data(withJSONObject: clean, options: [.sortedKeys]) else { return }
        let line = data + Data("\n".utf8)
        if let h = FileHandle(forWritingAtPath: metricsPath) {
            h.seekToEndOfFile()
            h.write(line)
            try? h.close()
        } else {
            _ = FileManager.default.createFile(atPath: metricsPath, contents: line)
        }
    }
}
