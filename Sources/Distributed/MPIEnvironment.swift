import CMPI
import Foundation

/// The process's one MPI environment: initialises MPI once, with `MPI_THREAD_FUNNELED`
/// (only the thread that initialised MPI makes MPI calls; loader and watchdog threads
/// never do), and finalises only if this process initialised it.
///
/// This is the only global mutable state in the project. It is guarded by a lock.
public final class MPIEnvironment: @unchecked Sendable {
    /// The process-wide instance.
    public static let shared = MPIEnvironment()

    private let lock = NSLock()
    private var initializedHere = false
    private var providedLevel: Int32 = -1

    private init() {}

    /// True when a launcher (mpirun/orterun, srun with PMI/PMIx) started this process.
    /// Without one, MPI still works as a singleton (world size 1).
    public static var launchedByMPILauncher: Bool {
        let env = ProcessInfo.processInfo.environment
        return env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMIX_RANK"] != nil
            || env["PMI_RANK"] != nil || env["PMI_SIZE"] != nil
    }

    /// The rank the launcher assigned, read from the environment (before or without
    /// MPI_Init). `nil` without a launcher.
    public static var launcherRank: Int? {
        let env = ProcessInfo.processInfo.environment
        for key in ["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"] {
            if let v = env[key], let r = Int(v) { return r }
        }
        return nil
    }

    /// Whether MPI is currently initialised (and not finalised) in this process.
    public var isActive: Bool {
        var inited: Int32 = 0
        var finalized: Int32 = 0
        MPI_Initialized(&inited)
        MPI_Finalized(&finalized)
        return inited != 0 && finalized == 0
    }

    /// The thread level MPI granted (`MPI_THREAD_FUNNELED` = 1 requested).
    public var threadLevel: Int32 { lock.lock(); defer { lock.unlock() }; return providedLevel }

    /// Initialises MPI if needed and returns the world communicator.
    ///
    /// - Parameter maxElementsPerCall: the largest element count passed to one MPI call;
    ///   longer buffers are sent in chunks (default `Int32.max`, MPI's C `int` limit).
    /// - Throws: ``CommunicatorError/lifecycle(_:)`` if MPI was already finalised in this
    ///   process (MPI cannot be re-initialised), or an MPI error.
    public func world(maxElementsPerCall: Int = Int(Int32.max)) throws -> MPICommunicator {
        try initialize()
        return try MPICommunicator(world: (), maxElementsPerCall: maxElementsPerCall)
    }

    /// Initialises MPI once. Safe to call repeatedly.
    public func initialize() throws {
        lock.lock()
        defer { lock.unlock() }
        var inited: Int32 = 0
        var finalized: Int32 = 0
        MPI_Initialized(&inited)
        MPI_Finalized(&finalized)
        if finalized != 0 {
            throw CommunicatorError.lifecycle(
                "MPI was already finalised in this process and cannot be initialised again. "
                + "Hint: create communicators before the end of the program.")
        }
        if inited == 0 {
            // Open MPI's default choice for the non-blocking allreduce (which every collective
            // here uses, so it can be polled under a deadline) is 2-4x slower than the blocking
            // one on multi-MB buffers; the ring algorithm matches it (docs/performance.md).
            // An explicit setting in the environment wins.
            if ProcessInfo.processInfo.environment["OMPI_MCA_coll_libnbc_iallreduce_algorithm"] == nil {
                setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "1", 0)
            }
            var provided: Int32 = 0
            let rc = MPI_Init_thread(nil, nil, cmpi_thread_funneled(), &provided)
            guard rc == MPI_SUCCESS else {
                throw CommunicatorError.lifecycle("MPI_Init_thread failed with code \(rc). "
                    + "Hint: check that Open MPI is installed (launch/setup.sh) and that mpirun matches libmpi.")
            }
            initializedHere = true
            providedLevel = provided
        } else {
            var provided: Int32 = 0
            MPI_Query_thread(&provided)
            providedLevel = provided
        }
        // Errors come back as codes instead of aborting the process.
        MPI_Comm_set_errhandler(cmpi_comm_world(), cmpi_errors_return())
    }

    /// Finalises MPI if (and only if) this process initialised it and it is still active.
    public func finalizeIfOwned() {
        lock.lock()
        defer { lock.unlock() }
        guard initializedHere else { return }
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        if finalized == 0 { MPI_Finalize() }
        initializedHere = false
    }

    /// The processor (host) name, `MPI_Get_processor_name`, or the POSIX hostname
    /// without MPI.
    public func processorName() -> String {
        if isActive {
            var buf = [CChar](repeating: 0, count: Int(MPI_MAX_PROCESSOR_NAME) + 1)
            var len: Int32 = 0
            MPI_Get_processor_name(&buf, &len)
            return String(decoding: buf.prefix(Int(len)).prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        return ProcessInfo.processInfo.hostName
    }

    /// The MPI library version string (`MPI_Get_library_version`), first line.
    public static func libraryVersion() -> String {
        var buf = [CChar](repeating: 0, count: Int(MPI_MAX_LIBRARY_VERSION_STRING) + 1)
        var len: Int32 = 0
        MPI_Get_library_version(&buf, &len)
        let bytes = buf.prefix(Int(len)).prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        let s = String(decoding: bytes, as: UTF8.self)
        return s.split(separator: "\n").first.map { String($0).trimmingCharacters(in: .whitespaces) } ?? s
    }
}
