import Foundation
import TensorCore
#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Process start-up policy for the BLAS kernel (run first thing in `main`): OpenBLAS picks its
/// kernel table in a load-time constructor, so a better kernel can only be had by re-executing
/// the process with `OPENBLAS_CORETYPE` set. The decision itself is the pure
/// `BLASKernel.decide(cpu:reportedCore:userSetting:alreadyReexecuted:)` (tested in TensorCore).
enum BLASKernelSelection {
    /// Applies `BLASKernel.decide` to this process.
    /// Must run first thing in `main`, before MPI is initialised and before any thread is
    /// started. On `.reexecute` it sets `OPENBLAS_CORETYPE` and replaces the process image
    /// (`execv("/proc/self/exe", argv)`, same pid, so mpirun is unaffected) and does not
    /// return; if exec fails, it returns the decision and the run continues with the
    /// current kernel.
    @discardableResult
    static func ensureBestKernel() -> BLASKernel.Decision {
        let env = ProcessInfo.processInfo.environment
        let marker = env[BLASKernel.reexecMarker] != nil
        // Diagnostic: UMTRAIN_BLAS_SIMULATE_CORE pretends OpenBLAS reported that core, so the
        // re-exec path can be exercised on machines where OpenBLAS detects the CPU correctly.
        let reported = env["UMTRAIN_BLAS_SIMULATE_CORE"] ?? BLASKernel.coreName
        let decision = BLASKernel.decide(cpu: .current(), reportedCore: reported,
                                         userSetting: marker ? nil : env["OPENBLAS_CORETYPE"], alreadyReexecuted: marker)
        if case let .reexecute(coreType, reason) = decision {
            setenv("OPENBLAS_CORETYPE", coreType, 1)
            setenv(BLASKernel.reexecMarker, "\(reported)->\(coreType): \(reason)", 1)
            execv("/proc/self/exe", CommandLine.unsafeArgv)
            // Only reached if exec failed.
            unsetenv(BLASKernel.reexecMarker)
            return BLASKernel.Decision.keep(reason: "re-exec with OPENBLAS_CORETYPE=\(coreType) failed (errno \(errno)); running with \(BLASKernel.coreName)")
        }
        return decision
    }
}
