import Distributed
import Foundation

/// What every stage needs from the command that runs it: the communicator, rank 0's printer,
/// the process settings that provenance records, and the command-wide pre-emption request.
public final class StageContext {
    public let comm: Communicator
    /// Printer for rank 0 (other ranks never print).
    public let log: (String) -> Void
    /// OpenBLAS threads per rank.
    public let blasThreads: Int
    /// The convolution algorithm models are built with.
    public let convolution: ConvolutionSetting
    /// The command line, as `provenance.json` records it.
    public let commandLine: String
    /// SIGTERM/SIGUSR1 requests, installed by the command for its whole run.
    public let stopRequest: StopRequest
    /// The configuration file, as errors about data paths name it.
    public let configFile: String
    /// Test hook (hidden `--debug-slow-rank`/`--debug-slow-seconds` of `umtrain pipeline`): this
    /// rank sleeps `debugSlowSeconds` (seconds) after every training and fine-tuning step, so a
    /// test can stop a stage in the middle. Sleeping changes no number.
    public var debugSlowRank: Int?
    public var debugSlowSeconds = 0.2

    public init(comm: Communicator, log: @escaping (String) -> Void, blasThreads: Int = 1,
                convolution: ConvolutionSetting = ConvolutionSetting(),
                commandLine: String = CommandLine.arguments.joined(separator: " "), stopRequest: StopRequest = StopRequest(),
                configFile: String = "config") {
        self.comm = comm
        self.log = log
        self.blasThreads = blasThreads
        self.convolution = convolution
        self.commandLine = commandLine
        self.stopRequest = stopRequest
        self.configFile = configFile
    }

    public var isRoot: Bool { comm.rank == 0 }

    /// Opens a stage folder `<output_dir>/<name>/<stage>/`. Collective: rank 0 creates it
    /// (with `fresh`, first removing an earlier run's checkpoints and outputs of this stage,
    /// so a new run can never resume from, or keep, stale ones) and writes the resolved
    /// `config.yaml` and `provenance.json` (which gathers host names).
    /// - Throws: ``CheckpointError`` when the folder cannot be created or cleared.
    public func openStage(config: RunConfig, stage: String, fresh: Bool) throws -> RunFolder {
        let folder = RunFolder(config: config, stage: stage)
        if isRoot {
            if fresh {
                let removed = try folder.clearPreviousRun()
                if !removed.isEmpty {
                    log("note: \(folder.root) held an earlier run (\(removed.joined(separator: ", "))): removed for a fresh start "
                        + "(use --resume to continue a run instead)")
                }
            }
            try folder.create()
            try StageRecord.remove(from: folder)  // before config.yaml changes: this attempt has not finished
            try AtomicFile.write(try config.yaml(), to: folder.root + "/config.yaml")
        }
        let record = try Provenance.record(config: config, comm: comm, command: commandLine, blasThreads: blasThreads,
                                           convolution: convolution)
        if isRoot { try Provenance.write(record, to: folder) }
        return folder
    }

    /// Whether a stop was requested on any rank. Collective.
    public func stopAgreed() throws -> Bool { try stopRequest.agreed(comm: comm) }
}
