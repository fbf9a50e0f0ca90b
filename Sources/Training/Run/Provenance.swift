import Distributed
import Foundation
import TensorCore

/// What a run records about where and how it ran.
public enum Provenance {
    /// The version every run header and provenance record names.
    public static let umtrainVersion = "0.1.0"

    /// Collective: gathers host names. Rank 0 gets the record; others get an empty dictionary.
    public static func record(config: RunConfig, comm: Communicator, command: String,
                              blasThreads: Int, convolution: ConvolutionSetting) throws -> [String: Any] {
        let host = ProcessInfo.processInfo.hostName
        let hosts = try comm.allgather(Array(host.utf8)).map { String(decoding: $0, as: UTF8.self) }
        guard comm.rank == 0 else { return [:] }
        var r: [String: Any] = [
            "command": command,
            "umtrain_version": umtrainVersion,
            "git_commit": gitCommit() ?? "unknown",
            "swift_compiler": swiftCompilerVersion,
            "mpi_library": comm is MPICommunicator ? MPIEnvironment.libraryVersion() : "none (single process)",
            "openblas_config": BLASKernel.config,
            "blas_kernel": BLASKernel.statusLine(),
            "blas_threads_per_rank": blasThreads,
            "conv_algorithm": convolution.description,
            "world_size": comm.worldSize,
            "rank_hosts": hosts,
            "seed": config.seed,
            "validation_seed": config.data.validationSeed,
            "started_at": ISO8601DateFormatter().string(from: Date()),
        ]
        r["environment"] = ProcessInfo.processInfo.environment.filter {
            $0.key.hasPrefix("OPENBLAS_") || $0.key.hasPrefix("OMPI_MCA_") || $0.key.hasPrefix("SLURM_JOB")
                || $0.key.hasPrefix("UMTRAIN_")
        }
        return r
    }

    static var swiftCompilerVersion: String {
        #if compiler(>=6.3)
        return "6.3 or later"
        #elseif compiler(>=6.0)
        return "6.0-6.2"
        #else
        return "older than 6.0"
        #endif
    }

    /// The commit of the source checkout the binary was started from, if it is a git checkout.
    static func gitCommit() -> String? {
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<6 {
            let head = dir.appendingPathComponent(".git/HEAD")
            if let text = try? String(contentsOf: head, encoding: .utf8) {
                let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
                if t.hasPrefix("ref: ") {
                    let ref = String(t.dropFirst(5))
                    if let sha = try? String(contentsOf: dir.appendingPathComponent(".git/" + ref), encoding: .utf8) {
                        return sha.trimmingCharacters(in: .whitespacesAndNewlines)
                    }
                    if let packed = try? String(contentsOf: dir.appendingPathComponent(".git/packed-refs"), encoding: .utf8) {
                        for line in packed.split(separator: "\n") where line.hasSuffix(" " + ref) {
                            return String(line.split(separator: " ")[0])
                        }
                    }
                    return nil
                }
                return t
            }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }

    /// Writes `provenance.json` (rank 0).
    public static func write(_ record: [String: Any], to folder: RunFolder) throws {
        let data = try JSONSerialization.data(withJSONObject: record, options: [.prettyPrinted, .sortedKeys])
        try AtomicFile.write([UInt8](data), to: folder.root + "/provenance.json")
    }
}
