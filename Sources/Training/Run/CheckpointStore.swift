import Distributed
import TensorCore
import Foundation
#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Errors from checkpoint storage.
public enum CheckpointError: Error, CustomStringConvertible, Equatable {
    case writeFailed(path: String, reason: String)
    case missingFile(checkpoint: String, file: String)
    case corrupt(checkpoint: String, reason: String)
    case noneFound(directory: String)

    public var description: String {
        switch self {
        case let .writeFailed(path, reason):
            return "cannot write \(path): \(reason). Hint: check free disk space and permissions of the run folder."
        case let .missingFile(checkpoint, file):
            return "checkpoint \(checkpoint) has no file '\(file)'. Hint: it was written by an older or different stage."
        case let .corrupt(checkpoint, reason):
            return "checkpoint \(checkpoint) is incomplete or corrupt: \(reason). Hint: an earlier complete checkpoint is used when there is one."
        case let .noneFound(directory):
            return "no complete checkpoint in \(directory). Hint: train first, or pass --checkpoint FILE."
        }
    }
}

/// Writes a file atomically: a temporary file in the same directory, fsync, rename, then
/// fsync of the directory, so a crash leaves either the old file or the new one.
public enum AtomicFile {
    public static func write(_ bytes: [UInt8], to path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        let base = (path as NSString).lastPathComponent
        let tmp = (dir.isEmpty ? "." : dir) + "/.\(base).tmp.\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw CheckpointError.writeFailed(path: path, reason: String(cString: strerror(errno))) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if n <= 0 {
                let reason = String(cString: strerror(errno))
                close(fd)
                unlink(tmp)
                throw CheckpointError.writeFailed(path: path, reason: reason)
            }
            offset += n
        }
        if fsync(fd) != 0 || close(fd) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(tmp)
            throw CheckpointError.writeFailed(path: path, reason: reason)
        }
        if rename(tmp, path) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(tmp)
            throw CheckpointError.writeFailed(path: path, reason: reason)
        }
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }

    public static func write(_ text: String, to path: String) throws { try write(Array(text.utf8), to: path) }
}

/// One checkpoint folder: `<checkpoints>/step-<NNNNNNNN>/` with its files and a `COMPLETE`
/// marker listing every file's size and checksum.
public struct Checkpoint: Equatable, Sendable {
    public let path: String
    public let step: Int
    public let files: [String: FileRecord]

    public struct FileRecord: Codable, Equatable, Sendable {
        public var bytes: Int
        public var fnv1a64: String
    }

    /// Reads one file of the checkpoint, verifying size and checksum.
    public func read(_ name: String) throws -> [UInt8] {
        guard let rec = files[name] else { throw CheckpointError.missingFile(checkpoint: path, file: name) }
        guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
            throw CheckpointError.corrupt(checkpoint: path, reason: "the COMPLETE marker names '\(name)', which is not a file of this folder")
        }
        guard let data = FileManager.default.contents(atPath: path + "/" + name) else {
            throw CheckpointError.corrupt(checkpoint: path, reason: "file \(name) is missing")
        }
        let bytes = [UInt8](data)
        guard bytes.count == rec.bytes else {
            throw CheckpointError.corrupt(checkpoint: path, reason: "\(name) has \(bytes.count) bytes, the marker says \(rec.bytes)")
        }
        let sum = bytes.withUnsafeBytes { String(FNV1a64.digest(bytes: $0), radix: 16) }
        guard sum == rec.fnv1a64 else {
            throw CheckpointError.corrupt(checkpoint: path, reason: "\(name) checksum \(sum) != \(rec.fnv1a64)")
        }
        return bytes
    }

    /// Verifies every file (sizes and checksums). A marker naming a file outside the folder
    /// (a `/`, `..` or an empty name) makes the checkpoint corrupt: only the checkpoint's own
    /// files are ever read.
    public func verify() throws {
        for name in files.keys.sorted() where name.isEmpty || name.contains("/") || name == "." || name == ".." {
            throw CheckpointError.corrupt(checkpoint: path, reason: "the COMPLETE marker names '\(name)', which is not a file of this folder")
        }
        for name in files.keys.sorted() { _ = try read(name) }
    }
}

/// Checkpoint folder management: atomic writes by global rank 0, a completion marker after
/// a barrier, retention of the last `keep` checkpoints, and discovery of the newest complete
/// one (falling back past truncated ones).
public struct CheckpointStore: Sendable {
    public let directory: String
    public let keep: Int

    public init(directory: String, keep: Int) {
        precondition(keep >= 1, "keep must be >= 1")
        self.directory = directory
        self.keep = keep
    }

    struct Marker: Codable {
        var step: Int
        var files: [String: Checkpoint.FileRecord]
        var writtenAt: String

        enum CodingKeys: String, CodingKey {
            case step, files
            case writtenAt = "written_at"
        }
    }

    static func folderName(step: Int) -> String {
        let s = String(step)
        return "step-" + String(repeating: "0", count: max(0, 8 - s.count)) + s
    }

    /// Writes a checkpoint. Collective: every rank calls it; only rank 0 touches the disk.
    /// Files are written atomically, then all ranks meet at a barrier, then rank 0 writes the
    /// `COMPLETE` marker and prunes old checkpoints.
    ///
    /// - Parameter files: file name -> contents (meaningful on rank 0 only).
    /// - Returns: the checkpoint folder.
    @discardableResult
    public func write(step: Int, files: [String: [UInt8]], comm: Communicator) throws -> String {
        let folder = directory + "/" + Self.folderName(step: step)
        var failure: String?
        if comm.rank == 0 {
            do {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                // A stale marker from an interrupted earlier write at the same step goes first.
                unlink(folder + "/COMPLETE")
                for (name, bytes) in files.sorted(by: { $0.key < $1.key }) {
                    try AtomicFile.write(bytes, to: folder + "/" + name)
                }
            } catch {
                failure = "\(error)"
            }
        }
        // Every rank learns whether rank 0 succeeded (no rank waits on a failed writer).
        var flag: [Int32] = [failure == nil ? 0 : 1]
        try comm.allreduce(&flag, op: .max)
        if flag[0] != 0 {
            throw CheckpointError.writeFailed(path: folder, reason: failure ?? "rank 0 failed to write the checkpoint")
        }
        try comm.barrier()
        if comm.rank == 0 {
            var records: [String: Checkpoint.FileRecord] = [:]
            for (name, bytes) in files {
                let sum = bytes.withUnsafeBytes { String(FNV1a64.digest(bytes: $0), radix: 16) }
                records[name] = .init(bytes: bytes.count, fnv1a64: sum)
            }
            let marker = Marker(step: step, files: records, writtenAt: ISO8601DateFormatter().string(from: Date()))
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try AtomicFile.write([UInt8](try enc.encode(marker)), to: folder + "/COMPLETE")
            prune()
        }
        return folder
    }

    /// All checkpoint folders that have a readable marker, oldest first (not verified).
    public func listed() -> [Checkpoint] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        var out: [Checkpoint] = []
        for n in names where n.hasPrefix("step-") {
            let p = directory + "/" + n
            guard let data = FileManager.default.contents(atPath: p + "/COMPLETE"),
                  let m = try? JSONDecoder().decode(Marker.self, from: data) else { continue }
            out.append(Checkpoint(path: p, step: m.step, files: m.files))
        }
        return out.sorted { $0.step < $1.step }
    }

    /// The newest checkpoint whose files all verify. Each newer one that fails is reported
    /// through `report` and skipped.
    public func newestComplete(report: (String) -> Void = { _ in }) -> Checkpoint? {
        for c in listed().reversed() {
            do {
                try c.verify()
                return c
            } catch {
                report("skipping \(error)")
            }
        }
        return nil
    }

    /// Removes all but the newest `keep` complete checkpoints, and folders without a marker
    /// that are older than the newest complete one (interrupted writes).
    func prune() {
        let complete = listed()
        guard complete.count > 0 else { return }
        for c in complete.dropLast(keep) { try? FileManager.default.removeItem(atPath: c.path) }
        let newest = complete.last!.step
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for n in names where n.hasPrefix("step-") {
            let p = directory + "/" + n
            if !FileManager.default.fileExists(atPath: p + "/COMPLETE"),
               let s = Int(n.dropFirst(5)), s < newest {
                try? FileManager.default.removeItem(atPath: p)
            }
        }
    }
}
