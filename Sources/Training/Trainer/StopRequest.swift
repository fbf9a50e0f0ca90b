import Distributed
import Foundation

/// Pre-emption: SIGTERM, SIGUSR1 and SIGINT (SIGTERM and SIGUSR1 are what Slurm and schedulers send before a time limit, and
/// what `mpirun` forwards when it receives SIGUSR1) become a stop request instead of ending the
/// process. The training loop sees it at the next step and every rank agrees through the step's
/// allreduce; between stages the pipeline agrees with ``agreed(comm:)``. A stage that stops on
/// request writes a checkpoint, no final output, and the command exits with status 75
/// (`EX_TEMPFAIL`), so `--resume` continues from that checkpoint.
public final class StopRequest: @unchecked Sendable {
    private let lock = NSLock()
    private var requested = false
    private var signalName = ""
    private var sources: [DispatchSourceSignal] = []

    public init() {}

    /// Whether a stop was requested on this rank.
    public var isRequested: Bool { lock.lock(); defer { lock.unlock() }; return requested }

    /// The signal that asked for the stop ("SIGTERM", "SIGUSR1"), or "" if none.
    public var reason: String { lock.lock(); defer { lock.unlock() }; return signalName }

    /// Whether any rank has a stop request. Collective (one small max-allreduce).
    public func agreed(comm: Communicator) throws -> Bool {
        var flag: [Double] = [isRequested ? 1 : 0]
        try comm.allreduce(&flag, op: .max)
        return flag[0] > 0
    }

    /// Catches SIGTERM, SIGUSR1 and SIGINT from now on (idempotent). Ctrl-C (SIGINT) is treated
    /// as SIGTERM: the step finishes and a checkpoint is written; a second Ctrl-C ends the process
    /// at once (the default action is restored after the first).
    public func install() {
        lock.lock()
        defer { lock.unlock() }
        guard sources.isEmpty else { return }
        for (sig, name) in [(SIGTERM, "SIGTERM"), (SIGUSR1, "SIGUSR1"), (SIGINT, "SIGINT")] {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { [weak self] in
                if sig == SIGINT {
                    signal(SIGINT, SIG_DFL)
                    writeToStandardError("\ninterrupt: finishing the step and writing a checkpoint (Ctrl-C again to abort without one)\n")
                }
                self?.request(name)
            }
            s.resume()
            sources.append(s)
        }
    }

    /// Restores the default actions of SIGTERM, SIGUSR1 and SIGINT.
    public func uninstall() {
        lock.lock()
        defer { lock.unlock() }
        for s in sources { s.cancel() }
        sources = []
        signal(SIGTERM, SIG_DFL)
        signal(SIGUSR1, SIG_DFL)
        signal(SIGINT, SIG_DFL)
    }

    /// Requests a stop as if `reason` had been received (signal handlers and drills).
    public func request(_ reason: String) {
        lock.lock()
        requested = true
        if signalName.isEmpty { signalName = reason }
        lock.unlock()
    }
}
