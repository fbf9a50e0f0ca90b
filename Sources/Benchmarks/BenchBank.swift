import ArgumentParser
import CommandSupport
import Distributed
import Foundation
import OODDetection
import TensorCore
import Training

/// `umtrain bench bank`: a KNN feature bank split across ranks, its memory per rank and the
/// exactness of the merged top-k.
struct BenchBank: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bank",
        abstract: "KNN over a synthetic feature bank split across ranks: peak resident memory per rank, search time, and a checksum of the merged top-k that must not depend on the number of ranks.",
        discussion: """
        Each rank generates only its contiguous share of the bank (row r from a generator keyed \
        by r, so the bank is the same for any number of ranks), L2-normalises it into Double (8 \
        bytes per value: the bank the evaluation keeps), and searches every query against its \
        share; the shares' top-k lists are merged by allgather, ties by id. The bank has exact \
        duplicates (every 1000th row repeats its predecessor) and a constant outlier row, and \
        one query duplicates a bank row, so ties are exercised. Peak memory is the kernel's \
        VmHWM of each rank. Example: launch/mpirun.sh -np 4 umtrain bench bank (1,000,000 x 512).
        """
    )

    @OptionGroup var runtime: RuntimeOptions
    @Option(help: "Bank rows (N).") var rows: Int = 1_000_000
    @Option(help: "Feature width (D).") var dim: Int = 512
    @Option(help: "Queries (every rank searches all of them against its share).") var queries: Int = 1_000
    @Option(help: "Neighbours (k).") var k: Int = 50

    func validate() throws {
        guard rows >= 2, dim >= 1, queries >= 1, k >= 1, k <= rows else {
            throw ValidationError("need --rows >= 2, --dim >= 1, --queries >= 1 and 1 <= --k <= --rows; got \(rows), \(dim), \(queries), \(k).")
        }
    }

    /// Row `r` of the synthetic bank `[D]`: non-negative (like ReLU features) Gaussian magnitudes;
    /// rows with r % 1000 == 1 repeat row r - 1; row 7 is constant (an outlier direction).
    static func row(_ r: Int, dim: Int, seed: UInt64) -> [Float] {
        if r == 7 { return [Float](repeating: 1, count: dim) }
        let source = r % 1000 == 1 ? r - 1 : r
        var g = SplitMix64(seed: seed, stream: UInt64(source))
        return (0..<dim).map { _ in
            let u1 = max(Double(g.next() >> 11) / Double(1 << 53), 1e-300), u2 = Double(g.next() >> 11) / Double(1 << 53)
            return Float(abs((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)))
        }
    }

    /// VmHWM (peak resident set) of this process, bytes; 0 when /proc is unavailable.
    static func peakResidentBytes() -> Int64 {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let parts = line.split(separator: " ")
            if parts.count >= 2, let kb = Int64(parts[1]) { return kb * 1024 }
        }
        return 0
    }

    func run() throws {
        runOnRanks(runtime) { rt in
            rt.log(try rt.header(command: "bench bank"))
            let comm = rt.comm, d = dim
            let range = TrainingShard.batchRange(batchCount: rows, rank: comm.rank, worldSize: comm.worldSize)
            let before = Self.peakResidentBytes()
            var t0 = now()
            // The share, normalised in chunks straight into the Double bank (no full Float copy).
            var bankRows = [Double]()
            bankRows.reserveCapacity(range.count * d)
            var start = range.lowerBound
            while start < range.upperBound {
                let end = min(start + 4096, range.upperBound)
                let raw = (start..<end).flatMap { Self.row($0, dim: d, seed: 1) }
                bankRows += KNNDetector.normalisedRows(raw, d)
                start = end
            }
            let bank = FeatureBank(rows: bankRows, ids: range.map(Int64.init), featureDim: d)
            bankRows = []
            let knn = KNNDetector(bank: bank, k: k)
            let built = now() - t0
            var qs = (0..<queries).flatMap { Self.row(1_000_000_007 + $0, dim: d, seed: 2) }
            if queries > 1 {  // query 1 duplicates bank row 0 (and so row 1): distance-0 ties
                let dup = Self.row(0, dim: d, seed: 1)
                for j in 0..<d { qs[d + j] = dup[j] }
            }
            try comm.barrier()
            t0 = now()
            let lists = try knn.topK(features: qs) { try ShardReduce.topK($0, metric: .squaredDistance, comm: comm) }
            let searched = try comm.allreduce(now() - t0, op: .max)
            var hash = FNV1a64()
            for l in lists {
                l.ids.withUnsafeBytes { hash.add(bytes: $0) }
                l.values.withUnsafeBytes { hash.add(bytes: $0) }
            }
            let peaks = try comm.allgather([Self.peakResidentBytes()])
            let starts = try comm.allgather([before])
            let builtMax = try comm.allreduce(built, op: .max)
            let gb = { (b: Int64) in fmt(Double(b) / 1e9, 2) + " GB" }
            rt.log("bank \(rows) x \(d) (Double, \(gb(Int64(rows * d * 8))) in all), \(comm.worldSize) rank(s); queries \(queries), k \(k), chunks of \(BankSearch.queryChunk) queries")
            rt.log("build \(fmt(builtMax, 2)) s, search \(fmt(searched, 2)) s (slowest rank)")
            rt.log("top-k checksum (ids and distances of every query): \(String(format: "%016llx", hash.value))")
            let first = lists[0]
            if queries > 1 { rt.log("query 1 (a copy of bank row 0; row 1 repeats row 0): top-3 ids \(first.ids[k..<(k + min(3, k))].map(String.init).joined(separator: ", ")), "
                + "distances \(first.values[k..<(k + min(3, k))].map { fmt($0.squareRoot(), 6) }.joined(separator: ", "))") }
            for r in 0..<comm.worldSize {
                rt.log("rank \(r): \(TrainingShard.batchRange(batchCount: rows, rank: r, worldSize: comm.worldSize).count) rows, "
                    + "peak resident \(gb(peaks[r][0])) (at start \(gb(starts[r][0])))")
            }
        }
    }
}
