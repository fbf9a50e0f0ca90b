import Foundation
import TensorCore

/// How a stage ended.
public enum StageStatus: String, Codable, Sendable {
    /// Finished; its outputs and `stage.json` are written.
    case completed
    /// Stopped on SIGTERM/SIGUSR1 after a checkpoint; no final output. `--resume` continues it.
    case preempted
}

/// The completion record of a stage, `<stage>/stage.json`, written last, after every output:
/// which weights it started from (path and checksum) and what it wrote. The pipeline's
/// `--resume` reuses a stage only when its record exists, its outputs are there and it was made
/// from the same input weights; otherwise the stage runs (resuming from its own checkpoint).
public struct StageRecord: Codable, Equatable, Sendable {
    public var stage: String
    /// The weights the stage started from (nil for training from scratch).
    public var inputWeights: String?
    /// FNV-1a (64-bit) of the input weights file's bytes.
    public var inputChecksum: String?
    /// FNV-1a (64-bit) of the run's resolved config.yaml text.
    public var configChecksum: String
    /// Files written, relative to the stage folder.
    public var outputs: [String]
    public var finishedAt: String
    /// FNV-1a of the stage folder's config.yaml bytes when the record was written (nil in
    /// records written before it existed).
    public var configFileChecksum: String?

    enum CodingKeys: String, CodingKey {
        case stage, outputs
        case inputWeights = "input_weights", inputChecksum = "input_checksum", configChecksum = "config_checksum",
             finishedAt = "finished_at", configFileChecksum = "config_file_checksum"
    }

    public init(stage: String, inputWeights: String?, config: RunConfig, outputs: [String]) {
        self.stage = stage
        self.inputWeights = inputWeights
        inputChecksum = inputWeights.flatMap(Self.checksum(ofFile:))
        configChecksum = Self.checksum(config: config)
        self.outputs = outputs
        finishedAt = ISO8601DateFormatter().string(from: Date())
    }

    /// FNV-1a of the config's YAML text as 16 hex digits.
    public static func checksum(config: RunConfig) -> String {
        var h = FNV1a64()
        h.add(bytes: ((try? config.yaml()) ?? "").utf8)
        return h.hex
    }

    /// FNV-1a of a file's bytes as 16 hex digits, or nil when it cannot be read.
    public static func checksum(ofFile path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        var h = FNV1a64()
        data.withUnsafeBytes { h.add(bytes: $0) }
        return h.hex
    }

    /// Writes `stage.json` into `folder` (rank 0, atomically), recording the checksum of the
    /// folder's config.yaml as it is now.
    public func write(to folder: RunFolder) throws {
        var record = self
        record.configFileChecksum = Self.checksum(ofFile: folder.root + "/config.yaml")
        try record.encoded(to: folder)
    }

    func encoded(to folder: RunFolder) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write([UInt8](try enc.encode(self)), to: folder.root + "/stage.json")
    }

    /// Removes `folder`'s record (rank 0): a stage about to run again is not finished, whatever
    /// happens to this attempt.
    public static func remove(from folder: RunFolder) throws {
        let path = folder.root + "/stage.json"
        if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
    }

    /// The record of `folder`, or nil when there is none (or it is unreadable).
    public static func read(_ folder: RunFolder) -> StageRecord? {
        guard let data = FileManager.default.contents(atPath: folder.root + "/stage.json") else { return nil }
        return try? JSONDecoder().decode(StageRecord.self, from: data)
    }

    /// Whether `folder` holds a finished stage made with `config` from `inputWeights` (same
    /// checksums) whose outputs all exist. Rank 0's view of the file system.
    ///
    /// The config matches when the record's checksum does, or else when the stage's own
    /// `config.yaml`, read with today's keys (keys added since get their defaults) and passed
    /// through `project` (what the stage's record leaves out, e.g. ``SweepPlan/trainingConfig(_:)``),
    /// has the checksum of `config`: a run started by an older build, before a key was added,
    /// still resumes.
    public static func isComplete(_ folder: RunFolder, inputWeights: String?, config: RunConfig,
                                  project: (RunConfig) -> RunConfig = { $0 }) -> Bool {
        guard let r = read(folder) else { return false }
        if r.configChecksum != checksum(config: config) {
            // Only the config.yaml the record was written beside (a later attempt's config.yaml
            // could sit beside an older record if that attempt died before removing it).
            let path = folder.root + "/config.yaml"
            guard FileManager.default.fileExists(atPath: path),
                  r.configFileChecksum == nil || r.configFileChecksum == checksum(ofFile: path),
                  let recorded = try? RunConfig.load(file: path).config,
                  checksum(config: project(recorded)) == checksum(config: config) else { return false }
        }
        if let inputWeights, r.inputChecksum != checksum(ofFile: inputWeights) { return false }
        return r.outputs.allSatisfy { FileManager.default.fileExists(atPath: folder.root + "/" + $0) }
    }
}
