import ArgumentParser
import Distributed
import Foundation
import NeuralNetwork
import TensorCore
import Training

/// Options every subcommand that touches ranks or BLAS shares.
public struct RuntimeOptions: ParsableArguments {
    public enum CommMode: String, ExpressibleByArgument, CaseIterable, Sendable {
        case auto, mpi, local
    }

    @Option(name: .long, help: ArgumentHelp(
        "Communicator: 'mpi' (MPI_COMM_WORLD; singleton without a launcher), 'local' (one process, no MPI), or 'auto' (mpi under mpirun/srun, else local).",
        valueName: "mode"))
    public var comm: CommMode = .auto

    @Option(name: .long, help: ArgumentHelp(
        "OpenBLAS threads per rank (default: OPENBLAS_NUM_THREADS if set, else 1).", valueName: "n"))
    public var blasThreads: Int?

    @Option(name: .long, help: ArgumentHelp(
        "Abort if a collective does not complete within this many seconds (0 = wait forever).",
        valueName: "seconds"))
    public var stallTimeout: Double = 300

    public init() {}

    public func validate() throws {
        if let n = blasThreads, n < 1 {
            throw ValidationError("--blas-threads must be at least 1, got \(n).")
        }
        if stallTimeout < 0 {
            throw ValidationError("--stall-timeout must be >= 0 seconds, got \(stallTimeout).")
        }
    }
}

/// What a running subcommand holds: the communicator, a printer for rank 0, the process
/// settings read at start-up, and the command-wide pre-emption request.
public final class Runtime {
    public let comm: Communicator
    public let blasThreads: Int
    /// `UMTRAIN_CONV_ALGORITHM`, read once at start-up.
    public let convolution: ConvolutionSetting
    /// SIGTERM/SIGUSR1 become this request once ``catchStopSignals()`` is called.
    public let stopRequest = StopRequest()
    private let ownsMPI: Bool

    public var rank: Int { comm.rank }
    public var worldSize: Int { comm.worldSize }
    public var isRoot: Bool { comm.rank == 0 }

    package init(comm: Communicator, blasThreads: Int, convolution: ConvolutionSetting, ownsMPI: Bool) {
        self.comm = comm
        self.blasThreads = blasThreads
        self.convolution = convolution
        self.ownsMPI = ownsMPI
    }

    /// Reads the process settings (``ConvolutionSetting``), configures BLAS threads and creates
    /// the communicator.
    /// - Throws: ``ConfigError`` for an invalid `UMTRAIN_CONV_ALGORITHM`; MPI errors.
    public static func start(_ options: RuntimeOptions) throws -> Runtime {
        let convolution = try ConvolutionSetting.from(environment: ProcessInfo.processInfo.environment)
        let threads = BLASKernel.configureThreads(requested: options.blasThreads)
        let useMPI: Bool
        switch options.comm {
        case .mpi: useMPI = true
        case .local: useMPI = false
        case .auto: useMPI = MPIEnvironment.launchedByMPILauncher
        }
        let comm: Communicator
        if useMPI {
            comm = try MPIEnvironment.shared.world()
        } else {
            comm = LocalCommunicator()
        }
        comm.stallTimeout = options.stallTimeout > 0 ? options.stallTimeout : nil
        return Runtime(comm: comm, blasThreads: threads, convolution: convolution, ownsMPI: useMPI)
    }

    /// Prints on rank 0 only (stdout, flushed).
    public func log(_ line: String) {
        guard isRoot else { return }
        print(line)
        flushStandardOutput()
    }

    /// The run header: versions, ranks, hosts, BLAS kernel and threads. Collective (every
    /// rank must call it) because it gathers host names.
    public func header(command: String) throws -> String {
        let host = MPIEnvironment.shared.processorName()
        let hostBytes = Array(host.utf8)
        let gathered = try comm.allgather(hostBytes)
        let hosts = gathered.map { String(decoding: $0, as: UTF8.self) }
        var perHost: [String: Int] = [:]
        var order: [String] = []
        for h in hosts {
            if perHost[h] == nil { order.append(h) }
            perHost[h, default: 0] += 1
        }
        let layout = order.map { "\($0) x\(perHost[$0]!)" }.joined(separator: ", ")
        // Every rank must compute convolutions the same way (UMTRAIN_CONV_ALGORITHM is per process).
        let algorithms = try comm.allgather(Array(convolution.algorithm.rawValue.utf8))
            .map { String(decoding: $0, as: UTF8.self) }
        if Set(algorithms).count > 1 {
            let perRank = algorithms.enumerated().map { "rank \($0.offset): \($0.element)" }.joined(separator: ", ")
            throw ValidationError("ranks disagree on the convolution algorithm (\(perRank)). Hint: set UMTRAIN_CONV_ALGORITHM "
                                  + "the same way for every rank (launch/mpirun.sh exports UMTRAIN_* variables; with plain "
                                  + "mpirun pass -x UMTRAIN_CONV_ALGORITHM) or unset it everywhere.")
        }
        let mpi = comm is MPICommunicator ? MPIEnvironment.libraryVersion() : "not used (single-process communicator)"
        return """
        umtrain \(Provenance.umtrainVersion) \(command)
          ranks: \(worldSize) on \(order.count) host(s): \(layout)
          mpi: \(mpi)
          openblas: \(BLASKernel.config)
          blas kernel: \(BLASKernel.statusLine()), \(blasThreads) thread(s) per rank
          conv: \(convolution.description)
          malloc: \(MallocSettings.description(environment: ProcessInfo.processInfo.environment))
        """
    }

    /// From now on SIGTERM and SIGUSR1 request a stop (the stages that train checkpoint and
    /// stop; the pipeline stops at the next stage boundary) instead of ending the process.
    public func catchStopSignals() { stopRequest.install() }

    /// The context the stages run in. `configFile` names the configuration in errors.
    public func stageContext(configFile: String) -> StageContext {
        StageContext(comm: comm, log: { [weak self] in self?.log($0) }, blasThreads: blasThreads, convolution: convolution,
                     stopRequest: stopRequest, configFile: configFile)
    }

    /// Finalises MPI if this run initialised it.
    public func finish() {
        if ownsMPI { MPIEnvironment.shared.finalizeIfOwned() }
    }
}

/// Runs `body` with a started runtime. Any error on any rank is printed as
/// `[rank r] error: …` on stderr and ends the whole job (MPI_Abort), so no rank is left
/// waiting in a collective.
/// How long a rank that hit a configuration error waits in MPI_Finalize for the others to stop
/// with the same error before it exits on its own (seconds).
package let configErrorGraceSeconds = 10.0

package func runOnRanks(_ options: RuntimeOptions, _ body: (Runtime) throws -> Void) {
    var runtime: Runtime?
    do {
        let rt = try Runtime.start(options)
        runtime = rt
        try body(rt)
        rt.finish()
    } catch {
        let rank = runtime?.rank ?? MPIEnvironment.launcherRank ?? 0
        let message = "[rank \(rank)] error: \(error)\n"
        // Configuration errors are normally raised identically on every rank before any
        // collective: rank 0 reports once and every rank ends cleanly (no MPI_Abort banner).
        // Some depend on the node (a data path present on one node and not on another): then
        // the other ranks never reach MPI_Finalize, so a watchdog ends this rank after
        // `configErrorGraceSeconds` with its own message, and mpirun stops the job.
        if error is ConfigError {
            if rank == 0 { writeToStandardError("error: \(error)\n") }
            if let rt = runtime, rt.worldSize > 1 {
                let text = rank == 0
                    ? "[rank 0] the other ranks did not stop with the same error within \(Int(configErrorGraceSeconds)) s: ending the job\n"
                    : "[rank \(rank)] error: \(error) (raised on this rank but not on all: the files or paths differ between nodes)\n"
                Thread.detachNewThread {
                    Thread.sleep(forTimeInterval: configErrorGraceSeconds)
                    writeToStandardError(text)
                    _exit(1)
                }
            }
            runtime?.finish()
            Foundation.exit(1)
        }
        if let rt = runtime, rt.worldSize > 1 {
            rt.comm.abort(code: 1, message: message)
        }
        writeToStandardError(message)
        runtime?.finish()
        Foundation.exit(1)
    }
}

/// The exit status of a command stopped on SIGTERM/SIGUSR1 after a checkpoint (`EX_TEMPFAIL`):
/// re-run it with `--resume` to continue.
package let preemptedExitStatus: Int32 = 75

/// `runOnRanks` for commands whose stages can be pre-empted: SIGTERM and SIGUSR1 become a stop
/// request for the whole run, and a run that `body` reports as `.preempted` ends with exit
/// status 75.
package func runPreemptible(_ options: RuntimeOptions, _ body: (Runtime) throws -> StageStatus) throws {
    var status = StageStatus.completed
    runOnRanks(options) { rt in
        rt.catchStopSignals()
        status = try body(rt)
    }
    if status == .preempted { throw ExitCode(preemptedExitStatus) }
}
