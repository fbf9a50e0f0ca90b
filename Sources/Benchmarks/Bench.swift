import ArgumentParser
import CommandSupport
import COpenBLAS
import Distributed
import Foundation
import Training
import TensorCore

/// `umtrain bench …`: throughput figures, printed as medians over repeats.
package struct BenchCommand: ParsableCommand {
    package init() {}

    package static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks: communication (comm), BLAS (gemm), model training/inference (train), each conv layer against sgemm (conv), the data loader (data), the bootstrap intervals (bootstrap) a KNN bank split across ranks (bank) and the per-sample-loss gather (gather). Figures are medians over repeats.",
        subcommands: [BenchComm.self, BenchGemm.self, BenchTrain.self, BenchConv.self, BenchData.self, BenchBootstrap.self, BenchBank.self, BenchGather.self]
    )
}

/// Median of a non-empty sample.
func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    let n = s.count
    return n % 2 == 1 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2])
}

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }


/// `umtrain bench comm`: allreduce time and bus bandwidth.
struct BenchComm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "comm",
        abstract: "Allreduce (float32 sum, in place) time and bus bandwidth for 1, 10 and 40 MB buffers.",
        discussion: """
        Bus bandwidth = bytes / time x 2(n-1)/n (the NCCL-tests convention). The 'polled' \
        column is the path the trainer uses (MPI_Iallreduce polled with MPI_Test under a \
        deadline); 'blocking' is plain MPI_Allreduce for comparison. A barrier precedes \
        every timed call. Run under mpirun, e.g. launch/mpirun.sh -np 2 umtrain bench comm.
        """
    )

    @OptionGroup var runtime: RuntimeOptions

    @Option(help: "Timed repeats per size (after 2 warm-ups).")
    var repeats: Int = 20

    @Option(help: ArgumentHelp("Buffer sizes in MB (10^6 bytes), comma-separated.", valueName: "list"))
    var sizes: String = "1,10,40"

    @Flag(help: "Small-message latency instead: float64 sums of 8 B to 64 KB (the BatchNorm-statistics sizes), polled vs blocking, medians of 200 calls.")
    var latency = false

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1, got \(repeats).") }
        guard parsedSizes() != nil else {
            throw ValidationError("--sizes must be a comma-separated list of positive numbers, got '\(sizes)'.")
        }
    }

    func parsedSizes() -> [Double]? {
        let parts = sizes.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ ($0 ?? 0) > 0 }) else { return nil }
        return parts.map { $0! }
    }

    func run() throws {
        if latency { return try runLatency() }
        runOnRanks(runtime) { rt in
            rt.log(try rt.header(command: "bench comm"))
            let n = Double(rt.worldSize)
            let busFactor = rt.worldSize > 1 ? 2 * (n - 1) / n : 1
            rt.log("allreduce float32 sum, \(rt.worldSize) rank(s), median of \(repeats) (best in brackets)")
            rt.log("size_mb  polled_ms          polled_busbw_gbs  blocking_ms        blocking_busbw_gbs")
            for mb in parsedSizes()! {
                let count = Int(mb * 1e6 / 4)
                var buf = [Float](repeating: 1, count: count)
                var polled: [Double] = []
                var blocking: [Double] = []
                for i in 0..<(repeats + 2) {
                    try rt.comm.barrier()
                    var t0 = now()
                    try buf.withUnsafeMutableBufferPointer { try rt.comm.allreduce($0, op: .sum) }
                    let tp = now() - t0
                    try rt.comm.barrier()
                    t0 = now()
                    if let mpi = rt.comm as? MPICommunicator {
                        try buf.withUnsafeMutableBufferPointer { try mpi.blockingAllreduce($0) }
                    }
                    let tb = now() - t0
                    // Keep values bounded so repeated sums stay finite.
                    buf.withUnsafeMutableBufferPointer { p in
                        for j in 0..<p.count { p[j] = 1 }
                    }
                    if i >= 2 {
                        polled.append(tp)
                        blocking.append(tb)
                    }
                }
                // Rank 0 reports the slowest rank's time for each repeat.
                try rt.comm.allreduce(&polled, op: .max)
                try rt.comm.allreduce(&blocking, op: .max)
                let bytes = Double(count * 4)
                let mp = median(polled), bp = polled.min()!
                let mbk = median(blocking), bb = blocking.min()!
                func bw(_ t: Double) -> String { t > 0 ? fmt(bytes / t * busFactor / 1e9) : "-" }
                rt.log("\(fmt(mb, 0).padding(toLength: 9, withPad: " ", startingAt: 0))"
                    + "\((fmt(mp * 1e3, 3) + " (" + fmt(bp * 1e3, 3) + ")").padding(toLength: 19, withPad: " ", startingAt: 0))"
                    + "\(bw(mp).padding(toLength: 18, withPad: " ", startingAt: 0))"
                    + "\((fmt(mbk * 1e3, 3) + " (" + fmt(bb * 1e3, 3) + ")").padding(toLength: 19, withPad: " ", startingAt: 0))"
                    + "\(bw(mbk))")
            }
            if rt.worldSize == 1 {
                rt.log("note: one rank, so every allreduce is a no-op; run under mpirun with -np 2 or more.")
            }
        }
    }
}

extension BenchComm {
    /// Small allreduces (float64 sum, the size of BatchNorm statistics: 2C + 1 values for C
    /// channels) through the polled path the trainer uses and through blocking MPI_Allreduce.
    /// Each call is preceded by a barrier, so the time is transfer plus the reduction, not
    /// waiting for a late rank; the trainer's sync-BN cost beyond this is waiting.
    func runLatency() throws {
        runOnRanks(runtime) { rt in
            rt.log(try rt.header(command: "bench comm --latency"))
            rt.log("allreduce float64 sum, \(rt.worldSize) rank(s), after a barrier; median of \(max(repeats, 200)) calls in microseconds (min in brackets)")
            rt.log("bytes    values  polled_us          blocking_us")
            for bytes in [8, 64, 512, 4096, 32768, 65536] {
                let count = bytes / 8
                var buf = [Double](repeating: 1, count: count)
                var polled: [Double] = [], blocking: [Double] = []
                for i in 0..<(max(repeats, 200) + 10) {
                    try rt.comm.barrier()
                    var t0 = now()
                    try buf.withUnsafeMutableBufferPointer { try rt.comm.allreduce($0, op: .sum) }
                    let tp = now() - t0
                    try rt.comm.barrier()
                    t0 = now()
                    if let mpi = rt.comm as? MPICommunicator {
                        try buf.withUnsafeMutableBufferPointer { try mpi.blockingAllreduceDouble($0) }
                    }
                    let tb = now() - t0
                    for j in 0..<buf.count { buf[j] = 1 }
                    if i >= 10 { polled.append(tp); blocking.append(tb) }
                }
                try rt.comm.allreduce(&polled, op: .max)
                try rt.comm.allreduce(&blocking, op: .max)
                rt.log("\(String(bytes).padding(toLength: 9, withPad: " ", startingAt: 0))\(String(count).padding(toLength: 8, withPad: " ", startingAt: 0))"
                    + "\((fmt(median(polled) * 1e6, 1) + " (" + fmt(polled.min()! * 1e6, 1) + ")").padding(toLength: 19, withPad: " ", startingAt: 0))"
                    + "\(fmt(median(blocking) * 1e6, 1)) (\(fmt(blocking.min()! * 1e6, 1)))")
            }
            if rt.worldSize == 1 { rt.log("note: one rank, so every allreduce is a no-op; run under mpirun with -np 2 or more.") }
        }
    }
}

/// `umtrain bench gemm`: OpenBLAS sgemm GFLOP/s.
struct BenchGemm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm",
        abstract: "OpenBLAS sgemm GFLOP/s: square 512/1024/2048 and the three GEMMs of a 3x3, 64-channel conv on 128 images of 32x32.",
        discussion: """
        Conv shapes (row-major, flops = 2mnk): forward M=64 N=131072 K=576; weight gradient \
        M=64 N=576 K=131072 (B transposed); input gradient M=576 N=131072 K=64 (A transposed). \
        Each rank runs the benchmark at the same time; rank 0 prints its own medians.
        """
    )

    @OptionGroup var runtime: RuntimeOptions

    @Option(help: "Timed repeats per shape (after 1 warm-up).")
    var repeats: Int = 7

    @Flag(help: "Only the square shapes (faster).")
    var squareOnly = false

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1, got \(repeats).") }
    }

    struct Shape {
        let name: String
        let m, n, k: Int
        let transA, transB: Bool
    }

    func run() throws {
        runOnRanks(runtime) { rt in
            rt.log(try rt.header(command: "bench gemm"))
            var shapes = [512, 1024, 2048].map { Shape(name: "square \($0)", m: $0, n: $0, k: $0, transA: false, transB: false) }
            if !squareOnly {
                shapes += [
                    Shape(name: "conv3x3 c64 fwd", m: 64, n: 131_072, k: 576, transA: false, transB: false),
                    Shape(name: "conv3x3 c64 dW (B^T)", m: 64, n: 576, k: 131_072, transA: false, transB: true),
                    Shape(name: "conv3x3 c64 dX (A^T)", m: 576, n: 131_072, k: 64, transA: true, transB: false),
                ]
            }
            rt.log("sgemm, kernel \(BLASKernel.coreName), \(rt.blasThreads) thread(s) per rank, \(rt.worldSize) rank(s) running at once")
            rt.log("shape                    m       n       k        gflops_median  gflops_best  ms_median")
            for s in shapes {
                let a = [Float](repeating: 0.5, count: s.m * s.k)
                let b = [Float](repeating: 0.25, count: s.k * s.n)
                var c = [Float](repeating: 0, count: s.m * s.n)
                var times: [Double] = []
                try rt.comm.barrier()
                for i in 0..<(repeats + 1) {
                    let t0 = now()
                    cblas_sgemm(CblasRowMajor, s.transA ? CblasTrans : CblasNoTrans, s.transB ? CblasTrans : CblasNoTrans,
                                Int32(s.m), Int32(s.n), Int32(s.k), 1, a, Int32(s.transA ? s.m : s.k),
                                b, Int32(s.transB ? s.k : s.n), 0, &c, Int32(s.n))
                    let t = now() - t0
                    if i >= 1 { times.append(t) }
                }
                let flops = 2.0 * Double(s.m) * Double(s.n) * Double(s.k)
                let med = median(times)
                rt.log(s.name.padding(toLength: 25, withPad: " ", startingAt: 0)
                    + String(s.m).padding(toLength: 8, withPad: " ", startingAt: 0)
                    + String(s.n).padding(toLength: 8, withPad: " ", startingAt: 0)
                    + String(s.k).padding(toLength: 9, withPad: " ", startingAt: 0)
                    + fmt(flops / med / 1e9, 1).padding(toLength: 15, withPad: " ", startingAt: 0)
                    + fmt(flops / times.min()! / 1e9, 1).padding(toLength: 13, withPad: " ", startingAt: 0)
                    + fmt(med * 1e3, 2))
            }
        }
    }
}
