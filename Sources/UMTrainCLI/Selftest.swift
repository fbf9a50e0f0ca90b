import ArgumentParser
import COpenBLAS
import Distributed
import Foundation
import Datasets
import NeuralNetwork
import OODDetection
import SafeTensors
import TensorCore
import Training
import UnleashingMask

/// `umtrain selftest`: the multi-rank checks, run on however many ranks were launched.
struct Selftest: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the collectives (allreduce, allgatherv, broadcast, chunking) and sgemm on every rank.",
        discussion: """
        Run under mpirun with any number of ranks, e.g. `launch/mpirun.sh -np 3 umtrain selftest`. \
        Every check runs on all ranks; rank 0 prints one line per check and a final \
        `N passed, N failed` line. Exit status 1 if any check failed on any rank.
        """
    )

    @OptionGroup var runtime: RuntimeOptions

    @Option(help: ArgumentHelp("Run only checks whose name contains this text.", valueName: "text"))
    var filter: String?

    func run() throws {
        var failed = 0
        runOnRanks(runtime) { rt in
            rt.log(try rt.header(command: "selftest"))
            let suite = MultiRankSuite(runtime: rt)
            let result = try suite.run(filter: filter)
            rt.log("\(result.passed) passed, \(result.failed) failed")
            failed = result.failed
        }
        if failed > 0 { throw ExitCode(1) }
    }
}

/// The multi-rank test suite behind `umtrain selftest`. Every check issues the same
/// collectives on every rank (no early returns), then compares locally; failures are
/// gathered so rank 0 can print every rank's detail.
struct MultiRankSuite {
    let runtime: Runtime
    var comm: Communicator { runtime.comm }

    struct Check {
        let name: String
        /// Returns nil on success, or what went wrong on this rank.
        let body: () throws -> String?
    }

    func checks() -> [Check] {
        [
            Check(name: "allreduce sum float32 (1000 elements): correct, bitwise identical on every rank") {
                try allreduceSum(Float.self, count: 1000)
            },
            Check(name: "allreduce sum float64 (1000 elements): correct, bitwise identical on every rank") {
                try allreduceSum(Double.self, count: 1000)
            },
            Check(name: "allreduce sum int64: exact") { try allreduceInt64(op: .sum) },
            Check(name: "allreduce max/min float32, float64, int64: exact on every rank") { try allreduceMaxMin() },
            Check(name: "allreduce of an empty buffer completes") {
                var empty: [Float] = []
                try comm.allreduce(&empty, op: .sum)
                return empty.isEmpty ? nil : "buffer changed size"
            },
            Check(name: "allgatherv with uneven and zero lengths, in rank order") { try allgathervUneven() },
            Check(name: "broadcast from a non-zero root (root = worldSize - 1)") { try broadcastNonZeroRoot() },
            Check(name: "broadcast of a string whose length only the root knows") { try broadcastString() },
            Check(name: "chunked allreduce (limit 7 elements, 20-element buffer) equals unchunked") { try chunkedAllreduce() },
            Check(name: "chunked allgatherv (limit 7) equals unchunked") { try chunkedAllgatherv() },
            Check(name: "chunked broadcast (limit 7, 20 elements) equals unchunked") { try chunkedBroadcast() },
            Check(name: "single-process communicator gives the one-rank answers") { try localEquivalence() },
            Check(name: "barrier with a deadline completes") {
                let saved = comm.stallTimeout
                comm.stallTimeout = 30
                defer { comm.stallTimeout = saved }
                try comm.barrier()
                return nil
            },
            Check(name: "gradient reduction: local loss sum / global count, then SUM, gives the global mean (uneven shards)") {
                try gradientMeanUneven()
            },
            Check(name: "bucketed gradient allreduce equals one allreduce of the whole arena") { try bucketedReduction() },
            Check(name: "metrics reduce (sum, count) pairs: 100 at 0.90 + 10 at 0.50 = 95/110") { try metricPairs() },
            Check(name: "sync BN statistics: [1,2,3] + [10] (+ empty ranks) -> mean 4, var 12.5, unbiased 16.6667") {
                try syncBatchNormWorkedExample()
            },
            Check(name: "rank-consistency check passes on equal tensors and names a rank-dependent one") {
                try consistencyCheck()
            },
            Check(name: "training: N ranks (sync BN, global batch \(comm.worldSize == 3 ? 60 : 64)) equal 1 rank after 20 SGD steps (rel. error <= 1e-4 per tensor); replicas bitwise identical") {
                try trainingEquivalence()
            },
            Check(name: "estimate-loss: xi bitwise identical to 1 rank, atypical mask identical (gathered by id, padding dropped)") {
                try estimateEquivalence()
            },
            Check(name: "UM flooding steps (sign from the global batch) on N ranks equal 1 rank (rel. error <= 1e-4)") {
                try umEquivalence()
            },
            Check(name: "UMAP masks after 10 steps bitwise identical on every rank, >= 99.9% equal to 1 rank") {
                try umapEquivalence()
            },
            Check(name: "OOD evaluation (7 scores, 2 OOD sets): per-sample scores and metrics bitwise identical to 1 rank") {
                try oodEquivalence()
            },
            Check(name: "sgemm (kernel \(BLASKernel.coreName)) matches a naive Double loop on odd shapes and transposes") {
                sgemmAgainstNaive()
            },
        ]
    }

    func run(filter: String?) throws -> (passed: Int, failed: Int) {
        var passed = 0
        var failed = 0
        for check in checks() where filter.map({ check.name.contains($0) }) ?? true {
            comm.phase = "selftest: \(check.name)"
            let detail = try check.body()
            // Gather every rank's verdict (empty = pass) so rank 0 can report details.
            let bytes = Array((detail ?? "").utf8)
            let all = try comm.allgather(bytes).map { String(decoding: $0, as: UTF8.self) }
            let failures = all.enumerated().filter { !$0.element.isEmpty }
            if failures.isEmpty {
                passed += 1
                runtime.log("  ok    \(check.name)")
            } else {
                failed += 1
                runtime.log("  FAIL  \(check.name)")
                for (r, msg) in failures { runtime.log("        rank \(r): \(msg)") }
            }
        }
        return (passed, failed)
    }

    // MARK: - Checks

    /// A deterministic, rank-dependent, non-trivial value (not exactly representable sums).
    static func value(rank: Int, index: Int) -> Double {
        sin(Double(index + 1) * 0.37 + Double(rank) * 1.91) * (1 + Double(rank))
    }

    /// Allgathers `values` and returns nil if every rank holds the same bits.
    func bitwiseIdentical<T: CollectiveScalar & BinaryFloatingPoint>(_ values: [T]) throws -> String? {
        let bits: [UInt64] = values.map { v in
            if let f = v as? Float { return UInt64(f.bitPattern) }
            if let d = v as? Double { return d.bitPattern }
            return 0
        }
        let all = try comm.allgather(bits)
        for (r, other) in all.enumerated() where other != all[0] {
            let i = other.indices.first { other[$0] != all[0][$0] } ?? 0
            return "result on rank \(r) differs from rank 0 at element \(i)"
        }
        return nil
    }

    func allreduceSum<T: CollectiveScalar & BinaryFloatingPoint>(_: T.Type, count: Int) throws -> String? {
        var buf = (0..<count).map { T(Self.value(rank: comm.rank, index: $0)) }
        try comm.allreduce(&buf, op: .sum)
        var worst = 0.0
        for i in 0..<count {
            var expected = 0.0
            for r in 0..<comm.worldSize { expected += Double(T(Self.value(rank: r, index: i))) }
            worst = max(worst, abs(Double(buf[i]) - expected))
        }
        let tolerance = T.self == Float.self ? 1e-5 * Double(comm.worldSize) : 1e-12 * Double(comm.worldSize)
        if let diff = try bitwiseIdentical(buf) { return diff }
        return worst <= tolerance ? nil : "max |error| \(worst) exceeds \(tolerance)"
    }

    func allreduceInt64(op: ReduceOp) throws -> String? {
        let base: Int64 = 1 << 40
        var buf = (0..<257).map { Int64(comm.rank + 1) * base + Int64($0) }
        try comm.allreduce(&buf, op: .sum)
        let w = Int64(comm.worldSize)
        for i in 0..<buf.count {
            let expected = base * w * (w + 1) / 2 + w * Int64(i)
            if buf[i] != expected { return "element \(i): \(buf[i]) != \(expected)" }
        }
        let all = try comm.allgather(buf)
        return all.allSatisfy { $0 == all[0] } ? nil : "int64 results differ between ranks"
    }

    func allreduceMaxMin() throws -> String? {
        let n = 101
        var problems: [String] = []
        for op in [ReduceOp.max, .min] {
            var f = (0..<n).map { Float(Self.value(rank: comm.rank, index: $0)) }
            var d = (0..<n).map { Self.value(rank: comm.rank, index: $0) }
            var q = (0..<n).map { Int64(Self.value(rank: comm.rank, index: $0) * 1e12) }
            try comm.allreduce(&f, op: op)
            try comm.allreduce(&d, op: op)
            try comm.allreduce(&q, op: op)
            for i in 0..<n {
                let fs = (0..<comm.worldSize).map { Float(Self.value(rank: $0, index: i)) }
                let ds = (0..<comm.worldSize).map { Self.value(rank: $0, index: i) }
                let qs = ds.map { Int64($0 * 1e12) }
                let ef = op == .max ? fs.max()! : fs.min()!
                let ed = op == .max ? ds.max()! : ds.min()!
                let eq = op == .max ? qs.max()! : qs.min()!
                if f[i] != ef || d[i] != ed || q[i] != eq {
                    problems.append("\(op.rawValue) element \(i) wrong")
                    break
                }
            }
        }
        return problems.isEmpty ? nil : problems.joined(separator: "; ")
    }

    /// Rank r contributes 0 elements when r is odd, else 3 + 2r.
    static func unevenCount(rank: Int) -> Int { rank % 2 == 1 ? 0 : 3 + 2 * rank }

    func allgathervUneven() throws -> String? {
        let mine = (0..<Self.unevenCount(rank: comm.rank)).map { Double(comm.rank * 1000 + $0) }
        let (values, counts) = try mine.withUnsafeBufferPointer { try comm.allgatherv($0) }
        let expectedCounts = (0..<comm.worldSize).map { Self.unevenCount(rank: $0) }
        let expected = (0..<comm.worldSize).flatMap { r in (0..<Self.unevenCount(rank: r)).map { Double(r * 1000 + $0) } }
        if counts != expectedCounts { return "counts \(counts) != \(expectedCounts)" }
        if values != expected { return "values not in rank order" }
        // Int64 and float32 too, through the array convenience.
        let asInt = try comm.allgather(mine.map { Int64($0) })
        if asInt.map({ $0.count }) != expectedCounts { return "int64 allgather counts wrong" }
        return nil
    }

    func broadcastNonZeroRoot() throws -> String? {
        let root = comm.worldSize - 1
        let payload = (0..<33).map { Float($0) * 0.5 + Float(root) }
        var buf = comm.rank == root ? payload : [Float](repeating: -1, count: payload.count)
        try comm.broadcast(&buf, root: root)
        var d = comm.rank == root ? payload.map(Double.init) : [Double](repeating: -1, count: payload.count)
        try comm.broadcast(&d, root: root)
        if buf != payload { return "float32 buffer differs from the root's" }
        if d != payload.map(Double.init) { return "float64 buffer differs from the root's" }
        return nil
    }

    func broadcastString() throws -> String? {
        let root = comm.worldSize - 1
        let text = "root \(root) says héllo to \(comm.worldSize) ranks"
        let got = try comm.broadcast(string: comm.rank == root ? text : "", root: root)
        return got == text ? nil : "got '\(got)'"
    }

    /// Exactly representable values, so any reduction order gives the same bits.
    func chunkedAllreduce() throws -> String? {
        guard let mpi = comm as? MPICommunicator else {
            return nil  // The single-process communicator never chunks.
        }
        let chunked = try mpi.withChunkLimit(7)
        var problems: [String] = []
        for op in ReduceOp.allCases {
            let input = (0..<20).map { Float(($0 * 7 + comm.rank * 13) % 23) - 11 }
            var a = input
            var b = input
            try comm.allreduce(&a, op: op)
            try chunked.allreduce(&b, op: op)
            var expected = [Float](repeating: 0, count: 20)
            for i in 0..<20 {
                let vals = (0..<comm.worldSize).map { Float((i * 7 + $0 * 13) % 23) - 11 }
                switch op {
                case .sum: expected[i] = vals.reduce(0, +)
                case .max: expected[i] = vals.max()!
                case .min: expected[i] = vals.min()!
                }
            }
            if a != b { problems.append("\(op.rawValue): chunked != unchunked") }
            if b != expected { problems.append("\(op.rawValue): chunked result wrong") }
        }
        return problems.isEmpty ? nil : problems.joined(separator: "; ")
    }

    func chunkedAllgatherv() throws -> String? {
        guard let mpi = comm as? MPICommunicator else { return nil }
        let chunked = try mpi.withChunkLimit(7)
        // Counts 10, 0, 14, 0, ...: both per-rank and total counts exceed the limit.
        let count = comm.rank % 2 == 1 ? 0 : 10 + 2 * comm.rank
        let mine = (0..<count).map { Int64(comm.rank * 100 + $0) }
        let a = try mine.withUnsafeBufferPointer { try comm.allgatherv($0) }
        let b = try mine.withUnsafeBufferPointer { try chunked.allgatherv($0) }
        if a.counts != b.counts { return "counts differ: \(a.counts) vs \(b.counts)" }
        if a.values != b.values { return "values differ" }
        return nil
    }

    func chunkedBroadcast() throws -> String? {
        guard let mpi = comm as? MPICommunicator else { return nil }
        let chunked = try mpi.withChunkLimit(7)
        let root = comm.worldSize - 1
        let payload = (0..<20).map { Double($0) * 1.25 - 3 }
        var buf = comm.rank == root ? payload : [Double](repeating: 0, count: 20)
        try chunked.broadcast(&buf, root: root)
        return buf == payload ? nil : "chunked broadcast differs from the root's buffer"
    }

    func localEquivalence() throws -> String? {
        let local = LocalCommunicator()
        let input = (0..<20).map { Float(Self.value(rank: comm.rank, index: $0)) }
        var problems: [String] = []
        for op in ReduceOp.allCases {
            var viaLocal = input
            try local.allreduce(&viaLocal, op: op)
            if viaLocal != input { problems.append("local allreduce \(op.rawValue) is not the identity") }
            if comm.worldSize == 1 {
                var viaMPI = input
                try comm.allreduce(&viaMPI, op: op)
                if viaMPI != viaLocal { problems.append("MPI(1 rank) and local allreduce \(op.rawValue) differ") }
            }
        }
        let gathered = try local.allgather(input.map(Double.init))
        if gathered != [input.map(Double.init)] { problems.append("local allgather is not [[local]]") }
        var b = input
        try local.broadcast(&b, root: 0)
        if b != input { problems.append("local broadcast changed the buffer") }
        do {
            try local.broadcast(&b, root: 1)
            problems.append("local broadcast from root 1 did not throw")
        } catch {}
        return problems.isEmpty ? nil : problems.joined(separator: "; ")
    }

    /// pitfalls.md F3, generalised: rank r holds r + 1 samples whose gradient is the vector
    /// [1, 2] scaled by (sample index + 1); each rank backpropagates its local SUM divided by
    /// the global count; SUM-allreduce must give the mean over all samples.
    func gradientMeanUneven() throws -> String? {
        let counts = (0..<comm.worldSize).map { $0 + 1 }
        let globalCount = try comm.allreduce(Int64(counts[comm.rank]), op: .sum)
        var grad: [Double] = [0, 0]
        for j in 0..<counts[comm.rank] {
            let scale = Double(j + 1)
            grad[0] += 1 * scale / Double(globalCount)
            grad[1] += 2 * scale / Double(globalCount)
        }
        try comm.allreduce(&grad, op: .sum)
        var expected: [Double] = [0, 0]
        var n = 0
        for c in counts { for j in 0..<c { expected[0] += Double(j + 1); expected[1] += 2 * Double(j + 1); n += 1 } }
        expected = expected.map { $0 / Double(n) }
        if globalCount != Int64(n) { return "global count \(globalCount) != \(n)" }
        return abs(grad[0] - expected[0]) < 1e-12 && abs(grad[1] - expected[1]) < 1e-12
            ? nil : "mean gradient \(grad) != \(expected)"
    }

    func bucketedReduction() throws -> String? {
        let sizes = [5, 300, 17, 1, 64, 2000, 3]
        let total = sizes.reduce(0, +)
        // Exactly representable values: any summation order gives the same bits.
        let input = (0..<total).map { Float(($0 * 31 + comm.rank * 17) % 101) - 50 }
        var whole = input
        try comm.allreduce(&whole, op: .sum)
        var bucketed = input
        let reducer = GradientReducer(buckets: planGradientBuckets(sizes: sizes, firstBucketBytes: 64, bucketBytes: 1024))
        try bucketed.withUnsafeMutableBufferPointer { try reducer.reduce($0, comm: comm) }
        return whole == bucketed ? nil : "bucketed result differs from whole-arena allreduce"
    }

    func metricPairs() throws -> String? {
        // Rank 0 holds 100 samples at accuracy 0.90, rank 1 holds 10 at 0.50, others none.
        let local: [Double] = comm.rank == 0 ? [90, 100] : (comm.rank == 1 ? [5, 10] : [0, 0])
        var pair = local
        try comm.allreduce(&pair, op: .sum)
        let accuracy = pair[0] / pair[1]
        let expected = comm.worldSize >= 2 ? 95.0 / 110.0 : 0.9
        return abs(accuracy - expected) < 1e-15 ? nil : "accuracy \(accuracy) != \(expected)"
    }

    func syncBatchNormWorkedExample() throws -> String? {
        // Rank 0 holds [1, 2, 3], rank 1 holds [10], further ranks hold nothing (count 0).
        // With one rank, that rank holds all four values.
        let values: [Double]
        if comm.worldSize == 1 { values = [1, 2, 3, 10] } else { values = comm.rank == 0 ? [1, 2, 3] : (comm.rank == 1 ? [10] : []) }
        let local = ChannelStatistics(sum: [values.reduce(0, +)], sumOfSquares: [values.map { $0 * $0 }.reduce(0, +)],
                                      count: Double(values.count))
        let g = try local.allreduced(comm)
        if g.count != 4 { return "count \(g.count) != 4" }
        if abs(g.mean[0] - 4) > 1e-12 { return "mean \(g.mean[0]) != 4" }
        if abs(g.biasedVariance[0] - 12.5) > 1e-12 { return "biased variance \(g.biasedVariance[0]) != 12.5" }
        if abs(g.unbiasedVariance[0] - 50.0 / 3) > 1e-12 { return "unbiased variance \(g.unbiasedVariance[0]) != 16.6667" }
        return nil
    }

    func consistencyCheck() throws -> String? {
        let same: [Float] = [1, 2, 3]
        let rankDependent: [Float] = [Float(comm.rank), 0]
        let c1 = same.withUnsafeBufferPointer { RankConsistency.checksum($0) }
        let c2 = rankDependent.withUnsafeBufferPointer { RankConsistency.checksum($0) }
        let clean = try RankConsistency.compare(names: ["a.weight", "b.weight"], checksums: [c1, c1], comm: comm)
        let dirty = try RankConsistency.compare(names: ["a.weight", "b.running_mean"], checksums: [c1, c2], comm: comm)
        if clean != nil { return "equal tensors reported as different: \(clean!)" }
        if comm.worldSize > 1 {
            guard let d = dirty, d.contains("b.running_mean"), !d.contains("a.weight"), d.contains("ranks 1") else {
                return "mismatch not reported correctly: \(dirty ?? "nil")"
            }
        } else if dirty != nil {
            return "one rank cannot disagree with itself"
        }
        return nil
    }

    /// A synthetic 1x12x12 dataset whose label depends on the pixels (learnable).
    static func syntheticData(count: Int, seed: UInt64) -> TrainingData {
        var rng = SplitMix64(seed: seed)
        var images = [UInt8](repeating: 0, count: count * 144)
        var labels = [Int](repeating: 0, count: count)
        for i in 0..<count {
            let label = Int(rng.next() % 4)
            labels[i] = label
            for p in 0..<144 {
                let row = p / 12, col = p % 12
                let bright = (label == 0 && row < 6) || (label == 1 && row >= 6) || (label == 2 && col < 6) || (label == 3 && col >= 6)
                images[i * 144 + p] = UInt8(truncatingIfNeeded: Int(rng.next() % 96) + (bright ? 140 : 0))
            }
        }
        let ds = ImageDataset(images: images, labels: labels, channels: 1, height: 12, width: 12, classCount: 4, classNames: [])
        return TrainingData(trainSet: ds, trainIds: Array(0..<count), validationIds: [], testSet: ds,
                            normalizer: ChannelNormalizer(mean: [0.4], std: [0.3]))
    }

    static func equivalenceConfig(worldSize: Int) -> RunConfig {
        var c = RunConfig()
        c.seed = 7
        c.model.arch = "cnn5"
        c.model.width = 4
        c.model.imageSize = 12
        c.model.numClasses = 4
        c.train.epochs = 100
        c.train.maxSteps = 20
        c.train.batchSize = worldSize == 3 ? 60 : 64
        c.train.lr = 0.05
        c.train.momentum = 0.9
        c.train.weightDecay = 5e-4
        c.train.schedule = "constant"
        c.train.bnMode = "sync"
        c.train.consistencyEvery = 5
        c.data.mean = [0.4]
        c.data.std = [0.3]
        return c
    }

    func trainingEquivalence() throws -> String? {
        // 242 samples: not a multiple of 60 or 64; with 3 ranks the last step holds 2 real
        // samples and 1 padded entry, so rank 2 has 0 samples there and still joins every
        // collective. (A 1-sample last step makes sync BN so ill-conditioned that rounding
        // differences grow past 1e-4 in 20 steps; that is not a useful equivalence test.)
        let data = Self.syntheticData(count: 242, seed: 11)
        let config = Self.equivalenceConfig(worldSize: comm.worldSize)
        let quiet: (String) -> Void = { _ in }
        let distributed = try Trainer(config: config, comm: comm, model: try ModelFactory.make(config.model, seed: 7),
                                      data: data, folder: nil, log: quiet)
        try distributed.train(evaluateEachEpoch: false)
        try distributed.synchronizeBuffers()
        // Bitwise identical replicas (parameters and buffers).
        let (names, sums) = distributed.checksums(includeBuffers: true)
        if let diff = try RankConsistency.compare(names: names, checksums: sums, comm: comm) {
            return "replicas differ: \(diff)"
        }
        // The single-process reference with the same global batches.
        let single = try Trainer(config: config, comm: LocalCommunicator(), model: try ModelFactory.make(config.model, seed: 7),
                                 data: data, folder: nil, log: quiet)
        try single.train(evaluateEachEpoch: false)
        if distributed.globalStep != 20 || single.globalStep != 20 {
            return "ran \(distributed.globalStep) and \(single.globalStep) steps, expected 20"
        }
        let (worstName, worstRel) = Self.relativeDifference(distributed.model, single.model)
        let worst = (name: worstName, rel: worstRel)
        if worst.rel > 1e-4 { return "\(worst.name): ||a - b|| / ||b|| = \(worst.rel) > 1e-4" }
        runtime.log("        (largest relative difference \(String(format: "%.2e", worst.rel)) in \(worst.name.isEmpty ? "-" : worst.name))")
        // Negative control: per-rank (local) BatchNorm is a different algorithm; the same
        // comparison must then fail, or the test could not tell.
        if comm.worldSize > 1 {
            var localBN = config
            localBN.train.bnMode = "local"
            let other = try Trainer(config: localBN, comm: comm, model: try ModelFactory.make(config.model, seed: 7),
                                    data: data, folder: nil, log: quiet)
            try other.train(evaluateEachEpoch: false)
            let largest = Self.relativeDifference(other.model, single.model).1
            if largest <= 1e-4 { return "negative control failed: local BN also within 1e-4 (\(largest))" }
            runtime.log("        (negative control, local BN: largest relative difference \(String(format: "%.2e", largest)) > 1e-4)")
        }
        return nil
    }

    /// A tiny model trained briefly on the synthetic data (identical on every rank).
    func pretrained(_ config: RunConfig, _ data: TrainingData) throws -> Classifier {
        var c = config
        c.train.maxSteps = 12
        let model = try ModelFactory.make(c.model, seed: 7)
        let t = try Trainer(config: c, comm: LocalCommunicator(), model: model, data: data, folder: nil, log: { _ in })
        try t.train(evaluateEachEpoch: false)
        return model
    }

    static func copyModel(_ m: Classifier, _ config: RunConfig) throws -> Classifier {
        let c = try ModelFactory.make(config.model, seed: 99)
        let f = SafeTensorsFile(records: StateDict.records(of: m))
        try StateDict.load(f, into: c, strict: true, source: "copy")
        return c
    }

    static func relativeDifference(_ a: Classifier, _ b: Classifier) -> (String, Double) {
        var worst = ("", 0.0)
        for (x, y) in zip(a.parameters + a.buffers, b.parameters + b.buffers) {
            let av = x.value.scalars, bv = y.value.scalars
            var num = 0.0, den = 0.0
            for i in 0..<av.count { let d = Double(av[i]) - Double(bv[i]); num += d * d; den += Double(bv[i]) * Double(bv[i]) }
            let rel = den > 0 ? (num / den).squareRoot() : num.squareRoot()
            if rel > worst.1 { worst = (x.name, rel) }
        }
        return worst
    }

    func estimateEquivalence() throws -> String? {
        let data = Self.syntheticData(count: 241, seed: 11)
        var config = Self.equivalenceConfig(worldSize: comm.worldSize)
        config.train.batchSize = 64   // the same pretrained model whatever the world size
        config.estimate.keepRatios = [0.9, 0.8]
        config.estimate.keepRatio = 0.9
        config.estimate.masks = 3
        config.train.evalBatchSize = 37
        let base = try pretrained(config, data)
        let splitData = TrainingData(trainSet: data.trainSet, trainIds: Array(0..<200), validationIds: Array(200..<241),
                                     testSet: data.testSet, normalizer: data.normalizer)
        let (dist, _) = try EstimateStage.run(config: config, comm: comm, model: try Self.copyModel(base, config),
                                              data: splitData, log: { _ in })
        let (single, _) = try EstimateStage.run(config: config, comm: LocalCommunicator(), model: try Self.copyModel(base, config),
                                                data: splitData, log: { _ in })
        if dist.xi.bitPattern != single.xi.bitPattern { return "xi \(dist.xi) (N ranks) != \(single.xi) (1 rank)" }
        if dist.maskChecksum != single.maskChecksum || dist.atypicalCount != single.atypicalCount {
            return "atypical mask differs: \(dist.atypicalCount) vs \(single.atypicalCount)"
        }
        runtime.log("        (xi \(String(format: "%.9f", dist.xi)) on \(comm.worldSize) rank(s) and 1 rank; \(dist.atypicalCount) atypical)")
        return nil
    }

    func umEquivalence() throws -> String? {
        let data = Self.syntheticData(count: 241, seed: 11)
        var config = Self.equivalenceConfig(worldSize: comm.worldSize)
        let base = try pretrained(config, data)
        config.train.maxSteps = 10
        // A flood level between the batch losses so both signs occur.
        let probe = try Evaluator.evaluate(model: base, comm: LocalCommunicator(), data: data, dataset: data.trainSet,
                                           ids: data.trainIds, batchSize: 64)
        let flooding = Flooding(xi: probe.loss * 1.02)
        let a = try Trainer(config: config, comm: comm, model: try Self.copyModel(base, config), data: data, folder: nil, log: { _ in })
        a.lossTransform = flooding
        try a.train(evaluateEachEpoch: false)
        let b = try Trainer(config: config, comm: LocalCommunicator(), model: try Self.copyModel(base, config), data: data,
                            folder: nil, log: { _ in })
        b.lossTransform = flooding
        try b.train(evaluateEachEpoch: false)
        let (name, rel) = Self.relativeDifference(a.model, b.model)
        if rel > 1e-4 { return "\(name): relative difference \(rel) > 1e-4" }
        runtime.log("        (largest relative difference \(String(format: "%.2e", rel)))")
        return nil
    }

    func umapEquivalence() throws -> String? {
        let data = Self.syntheticData(count: 241, seed: 11)
        var config = Self.equivalenceConfig(worldSize: comm.worldSize)
        let base = try pretrained(config, data)
        config.train.maxSteps = 10
        config.train.lr = 0.1
        let probe = try Evaluator.evaluate(model: base, comm: LocalCommunicator(), data: data, dataset: data.trainSet,
                                           ids: data.trainIds, batchSize: 64)
        let options = UMAPOptions(keepRatio: 0.7)
        let ma = try Self.copyModel(base, config)
        let ua = try UMAPState(model: ma, options: options, seed: 5, comm: comm)
        let a = try Trainer(config: config, comm: comm, model: ma, data: data, folder: nil, log: { _ in }, hooks: ua)
        a.lossTransform = Flooding(xi: probe.loss * 0.5)
        try a.train(evaluateEachEpoch: false)
        try ua.prepareForEvaluation()   // recompute + checksum across ranks
        let mb = try Self.copyModel(base, config)
        let ub = try UMAPState(model: mb, options: options, seed: 5, comm: LocalCommunicator())
        let b = try Trainer(config: config, comm: LocalCommunicator(), model: mb, data: data, folder: nil, log: { _ in }, hooks: ub)
        b.lossTransform = Flooding(xi: probe.loss * 0.5)
        try b.train(evaluateEachEpoch: false)
        ub.recomputeMasks()
        var total = 0, same = 0
        for (x, y) in zip(ua.masks, ub.masks) { total += x.count; same += zip(x, y).filter { $0 == $1 }.count }
        let agreement = Double(same) / Double(total)
        if ua.keptCounts != ub.keptCounts { return "kept counts differ: \(ua.keptCounts) vs \(ub.keptCounts)" }
        let initial = try UMAPState(model: try Self.copyModel(base, config), options: options, seed: 5, comm: LocalCommunicator())
        var changed = 0
        for (x, y) in zip(ua.masks, initial.masks) { changed += zip(x, y).filter { $0 != $1 }.count }
        if changed == 0 { return "the masks did not change in 10 steps: the test would not see a divergence" }
        if agreement < 0.999 { return "masks agree with 1 rank on \(agreement * 100)% < 99.9%" }
        runtime.log("        (\(changed) mask entries changed in 10 steps; agreement with 1 rank \(String(format: "%.4f", agreement * 100))%)")
        return nil
    }

    func oodEquivalence() throws -> String? {
        let data = Self.syntheticData(count: 241, seed: 11)
        var config = Self.equivalenceConfig(worldSize: comm.worldSize)
        config.train.batchSize = 64
        config.evaluate.batchSize = 29
        config.evaluate.knnK = 5
        let base = try pretrained(config, data)
        let noise = Self.syntheticData(count: 57, seed: 99).trainSet.dataset!
        let flat = ImageDataset(images: noise.images.map { $0 / 4 }, labels: noise.labels, channels: 1, height: 12, width: 12,
                                classCount: 4, classNames: [])
        let sets = [OODSet(name: "noise", synthetic: true, dataset: noise), OODSet(name: "dim", synthetic: false, dataset: flat)]
        let trainData = TrainingData(trainSet: data.trainSet, trainIds: Array(0..<180), validationIds: Array(180..<241),
                                     testSet: Self.syntheticData(count: 73, seed: 12).trainSet, normalizer: data.normalizer)
        let dist = try OODEvaluation.run(model: try Self.copyModel(base, config), comm: comm, config: config, data: trainData,
                                         sets: sets, log: { _ in })
        let single = try OODEvaluation.run(model: try Self.copyModel(base, config), comm: LocalCommunicator(), config: config,
                                           data: trainData, sets: sets, log: { _ in })
        for k in config.evaluate.scores {
            let a = dist.idScores.scores[k]!.map { $0.bitPattern }, b = single.idScores.scores[k]!.map { $0.bitPattern }
            if a != b { return "ID scores of \(k) differ from 1 rank" }
            for name in ["noise", "dim"] where dist.oodScores[name]!.scores[k]!.map({ $0.bitPattern }) != single.oodScores[name]!.scores[k]!.map({ $0.bitPattern }) {
                return "\(name) scores of \(k) differ from 1 rank"
            }
        }
        for (x, y) in zip(dist.rows, single.rows) where x.metrics != y.metrics {
            return "metrics of \(x.score)/\(x.set) differ: \(x.metrics.auroc) vs \(y.metrics.auroc)"
        }
        if OODEvaluation.markdown(dist, title: "t") != OODEvaluation.markdown(single, title: "t") { return "reports differ" }
        runtime.log("        (\(dist.rows.count) metric rows identical; e.g. energy AUROC on 'dim' \(String(format: "%.4f", dist.rows.first { $0.score == "energy" && $0.set == "dim" }!.metrics.auroc)))")
        return nil
    }

    /// `C = alpha * op(A) * op(B) + beta * C` through cblas_sgemm, against a Double loop.
    func sgemmAgainstNaive() -> String? {
        let shapes: [(Int, Int, Int)] = [(1, 1, 1), (7, 5, 3), (33, 17, 65), (64, 129, 576), (3, 200, 9)]
        var rng: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Float {
            rng = rng &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: rng >> 11) % 2001 - 1000) / 1000
        }
        for (m, n, k) in shapes {
            for transA in [false, true] {
                for transB in [false, true] {
                    let a = (0..<(m * k)).map { _ in next() }
                    let b = (0..<(k * n)).map { _ in next() }
                    var c = (0..<(m * n)).map { _ in next() }
                    let c0 = c
                    let alpha: Float = 0.75
                    let beta: Float = -0.5
                    let lda = transA ? m : k
                    let ldb = transB ? k : n
                    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, &c, Int32(n))
                    for i in 0..<m {
                        for j in 0..<n {
                            var acc = 0.0
                            for p in 0..<k {
                                let av = transA ? a[p * m + i] : a[i * k + p]
                                let bv = transB ? b[j * k + p] : b[p * n + j]
                                acc += Double(av) * Double(bv)
                            }
                            let ref = Double(alpha) * acc + Double(beta) * Double(c0[i * n + j])
                            let tol = 1e-6 * Double(k) + 1e-5
                            if abs(Double(c[i * n + j]) - ref) > tol {
                                return "m=\(m) n=\(n) k=\(k) transA=\(transA) transB=\(transB): C[\(i),\(j)] = \(c[i * n + j]), naive \(ref)"
                            }
                        }
                    }
                }
            }
        }
        return nil
    }
}
