@preconcurrency import Glibc

/// glibc malloc settings for training: keep large tensors in the heap and reuse them.
///
/// By default glibc serves every allocation above a dynamic threshold (128 KiB growing to at
/// most 32 MiB) with a fresh `mmap` and returns it with `munmap` on free. A training step
/// allocates and frees the same multi-MB activation and gradient tensors every step (DenseNet-BC
/// at batch 128: hundreds of 4-110 MB buffers), so each step pays for the kernel to map and
/// zero those pages again (page faults, `clear_page`). `apply()` sets `M_MMAP_MAX = 0` (no mmap
/// for malloc; everything comes from the heap) and `M_TRIM_THRESHOLD` = 2 GiB - 1 (freed heap
/// tops are kept), so after the first steps the buffers are recycled without system calls.
/// Cost: the process keeps its peak heap (resident set = peak working set, plus fragmentation).
///
/// Run headers describe the setting (`MallocSettings` in CommandSupport).
/// Opt out with `UMTRAIN_MALLOC=glibc` (glibc defaults, or whatever `GLIBC_TUNABLES` says).
/// `mallopt` is looked up with `dlsym` because Swift's Glibc module does not export
/// `<malloc.h>`; option numbers are glibc's (`M_TRIM_THRESHOLD` -1, `M_MMAP_MAX` -4).
enum AllocatorTuning {
    /// Applies the settings unless `UMTRAIN_MALLOC=glibc`. Returns false if `mallopt` is
    /// unavailable or refused a setting (then glibc defaults stay in force).
    @discardableResult
    static func apply() -> Bool {
        if let v = getenv("UMTRAIN_MALLOC"), String(cString: v) == "glibc" { return true }
        typealias MalloptFunction = @convention(c) (Int32, Int32) -> Int32
        guard let symbol = dlsym(nil, "mallopt") else { return false }
        let mallopt = unsafeBitCast(symbol, to: MalloptFunction.self)
        let mmapMax: Int32 = -4, trimThreshold: Int32 = -1
        let okMmap = mallopt(mmapMax, 0) == 1
        let okTrim = mallopt(trimThreshold, Int32.max) == 1
        return okMmap && okTrim
    }
}
