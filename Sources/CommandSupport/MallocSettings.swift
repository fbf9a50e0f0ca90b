/// The glibc malloc setting in force, as run headers print it. The executable applies it at
/// start-up (`Sources/umtrain/AllocatorTuning.swift`): heap reuse unless `UMTRAIN_MALLOC=glibc`.
package enum MallocSettings {
    package static func description(environment: [String: String]) -> String {
        environment["UMTRAIN_MALLOC"] == "glibc"
            ? "glibc defaults (UMTRAIN_MALLOC=glibc)"
            : "heap reuse (mmap_max 0, trim_threshold 2 GiB; UMTRAIN_MALLOC=glibc restores defaults)"
    }
}
