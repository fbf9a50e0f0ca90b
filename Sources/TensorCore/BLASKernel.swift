import COpenBLAS
import Foundation

/// Choosing and reporting the OpenBLAS compute kernel.
///
/// Debian's OpenBLAS 0.3.21 (built with `DYNAMIC_ARCH`) picks its kernel table from a
/// CPUID lookup at load time. CPUs newer than the library (for example Emerald Rapids,
/// family 6 model 0xCF) are not in that table and silently fall back to the SSE3
/// "Prescott" kernels: about 30 GFLOP/s per core instead of about 145 with the AVX-512
/// "SkylakeX" kernels. The kernel is chosen in a load-time constructor, so the only fix is
/// to set `OPENBLAS_CORETYPE` before the process starts: the executable's start-up
/// (`Sources/umtrain/BLASKernelSelection.swift`) re-executes the program once with it set. An explicit user setting is always respected.
public enum BLASKernel {
    /// Instruction-set tiers that matter for OpenBLAS's sgemm kernels, weakest first.
    public enum Tier: Int, Comparable, Sendable, CustomStringConvertible {
        case sse2 = 0, sse3, avx, avx2, avx512

        public static func < (a: Tier, b: Tier) -> Bool { a.rawValue < b.rawValue }

        public var description: String {
            switch self {
            case .sse2: return "SSE2"
            case .sse3: return "SSE3"
            case .avx: return "AVX"
            case .avx2: return "AVX2"
            case .avx512: return "AVX-512"
            }
        }
    }

    /// The CPU features relevant to the kernel choice (x86-64 names from /proc/cpuinfo).
    public struct CPUFeatures: Equatable, Sendable {
        public var flags: Set<String>

        public init(flags: Set<String>) { self.flags = flags }

        /// The best tier the CPU supports; `nil` when no x86 flags are known (for
        /// example on ARM, where the choice is left to OpenBLAS).
        public var bestTier: Tier? {
            if ["avx512f", "avx512bw", "avx512vl", "avx512dq"].allSatisfy(flags.contains) { return .avx512 }
            if flags.contains("avx2") && flags.contains("fma") { return .avx2 }
            if flags.contains("avx") { return .avx }
            if flags.contains("pni") || flags.contains("sse3") { return .sse3 }
            if flags.contains("sse2") { return .sse2 }
            return nil
        }

        /// Reads the `flags` line of the first processor in /proc/cpuinfo.
        public static func current() -> CPUFeatures {
            guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else {
                return CPUFeatures(flags: [])
            }
            for line in text.split(separator: "\n") where line.hasPrefix("flags") {
                if let colon = line.firstIndex(of: ":") {
                    let words = line[line.index(after: colon)...].split(separator: " ").map(String.init)
                    return CPUFeatures(flags: Set(words))
                }
            }
            return CPUFeatures(flags: [])
        }
    }

    /// The OpenBLAS core type to request for a tier (`OPENBLAS_CORETYPE` value).
    public static func coreType(for tier: Tier) -> String? {
        switch tier {
        case .avx512: return "SkylakeX"
        case .avx2: return "Haswell"
        case .avx: return "Sandybridge"
        case .sse3, .sse2: return nil
        }
    }

    /// The instruction-set tier of an x86-64 OpenBLAS core name, as returned by
    /// `openblas_get_corename()` (case-insensitive). `nil` for names this table does not
    /// know (other architectures), in which case nothing is changed.
    public static func tier(ofCore name: String) -> Tier? {
        switch name.lowercased() {
        case "katmai", "coppermine", "northwood", "banias", "athlon", "opteron", "generic":
            return .sse2
        case "prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "barcelona",
             "bobcat", "nano", "opteron(sse3)", "atom_p", "silvermont", "goldmont":
            return .sse3
        case "sandybridge", "bulldozer", "piledriver", "steamroller":
            return .avx
        case "haswell", "zen", "excavator", "skylake", "cooperlake_avx2":
            return .avx2
        case "skylakex", "cooperlake", "sapphirerapids":
            return .avx512
        default:
            return nil
        }
    }

    /// The outcome of the kernel choice.
    public enum Decision: Equatable, Sendable {
        /// Run with the kernel OpenBLAS loaded; `reason` says why.
        case keep(reason: String)
        /// Re-execute with `OPENBLAS_CORETYPE=coreType`.
        case reexecute(coreType: String, reason: String)
    }

    /// The kernel choice as a pure function of (the CPU's features, the core OpenBLAS
    /// reports, the user's `OPENBLAS_CORETYPE` setting, and whether this process was
    /// already re-executed by us).
    ///
    /// - An explicit `OPENBLAS_CORETYPE` (even empty) is respected.
    /// - After one re-execution, never re-execute again (no loops if the library ignores
    ///   the request).
    /// - Otherwise re-execute when the CPU supports a stronger tier than the reported core.
    public static func decide(cpu: CPUFeatures, reportedCore: String, userSetting: String?,
                              alreadyReexecuted: Bool) -> Decision {
        if alreadyReexecuted {
            return .keep(reason: "auto-selected by umtrain (OpenBLAS had chosen a weaker kernel)")
        }
        if let setting = userSetting {
            return .keep(reason: "OPENBLAS_CORETYPE=\(setting) set by the user")
        }
        guard let cpuTier = cpu.bestTier else {
            return .keep(reason: "CPU features unknown; OpenBLAS's own choice")
        }
        guard let coreTier = tier(ofCore: reportedCore) else {
            return .keep(reason: "core '\(reportedCore)' not in umtrain's table; OpenBLAS's own choice")
        }
        if coreTier < cpuTier, let wanted = coreType(for: cpuTier) {
            return .reexecute(coreType: wanted,
                              reason: "OpenBLAS chose \(reportedCore) (\(coreTier)) on a CPU with \(cpuTier)")
        }
        return .keep(reason: "OpenBLAS's own choice matches the CPU (\(cpuTier))")
    }

    /// Environment variable set on re-execution so the new process knows (and reports)
    /// that the kernel was auto-selected.
    public static let reexecMarker = "UMTRAIN_BLAS_AUTOSELECTED"

    /// The core name OpenBLAS is using now (`openblas_get_corename()`).
    public static var coreName: String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }

    /// `openblas_get_config()`, e.g. "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ...".
    public static var config: String {
        guard let p = openblas_get_config() else { return "unknown" }
        return String(cString: p).trimmingCharacters(in: .whitespaces)
    }

    /// One line for run headers: the core in use and why.
    public static func statusLine() -> String {
        let env = ProcessInfo.processInfo.environment
        if let auto = env[reexecMarker] {
            return "\(coreName) (auto-selected: \(auto))"
        }
        if let user = env["OPENBLAS_CORETYPE"] {
            return "\(coreName) (OPENBLAS_CORETYPE=\(user) set by the user)"
        }
        return "\(coreName) (OpenBLAS's own choice)"
    }

    /// Sets OpenBLAS's thread count: `requested` if given, else `OPENBLAS_NUM_THREADS` if
    /// set, else 1 (one thread per rank). Returns the count in effect.
    @discardableResult
    public static func configureThreads(requested: Int?) -> Int {
        let env = ProcessInfo.processInfo.environment
        let n = requested ?? env["OPENBLAS_NUM_THREADS"].flatMap { Int($0) } ?? 1
        openblas_set_num_threads(Int32(max(1, n)))
        return Int(openblas_get_num_threads())
    }
}
