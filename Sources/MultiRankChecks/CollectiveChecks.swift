import ArgumentParser
import CommandSupport
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

/// Checks of the collectives, gradient reduction, sync BN statistics, consistency and sgemm.
extension MultiRankSuite {
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
        // The trainer's path: a BatchNorm2d layer with the communicator reducer. Rank 0 holds
        // [1001, 1002, 1003], rank 1 holds [1010], further ranks hold nothing (count 0); one rank
        // holds all four. Full batch: mean 1004, biased variance 12.5, unbiased 50/3, so the
        // output is (x - 1004) / sqrt(12.5 + eps), running_mean 0.1 * 1004, running_var
        // 0.9 + 0.1 * 50/3. The offset of 1000 checks that the moments do not cancel.
        let values: [Float]
        if comm.worldSize == 1 { values = [1001, 1002, 1003, 1010] } else { values = comm.rank == 0 ? [1001, 1002, 1003] : (comm.rank == 1 ? [1010] : []) }
        let bn = BatchNorm2d(numFeatures: 1)
        let y = bn.forward(Tensor(shape: [values.count, 1, 1, 1], values: values),
                           context: ForwardContext(mode: .train, batchNormReducer: CommunicatorBatchNormReducer(comm: comm)))
        let s = (12.5 + 1e-5).squareRoot()
        for (i, v) in values.enumerated() where abs(Double(y.scalars[i]) - (Double(v) - 1004) / s) > 1e-5 {
            return "output \(y.scalars[i]) for \(v) != \((Double(v) - 1004) / s)"
        }
        let rm = Double(bn.runningMean.value.scalars[0]), rv = Double(bn.runningVar.value.scalars[0])
        if abs(rm - 100.4) > 1e-4 { return "running_mean \(rm) != 100.4 (mean 1004)" }
        if abs(rv - (0.9 + 0.1 * 50.0 / 3)) > 1e-5 { return "running_var \(rv) != 2.56667 (unbiased variance 16.6667)" }
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

extension MultiRankSuite {
    /// Training shards split over the ranks (rank r holds rows [rN/W, (r+1)N/W)) against the
    /// whole set on this rank: the chain sum, the distributed percentile and the merged KNN top-k
    /// must equal the one-rank results bitwise.
    func shardReductions() throws -> String? {
        let n = 103, d = 5, k = 7
        var rng = SplitMix64(seed: 44)
        var all = (0..<(n * d)).map { _ in Float.random(in: -2..<3, using: &rng) }
        for j in 0..<d { all[10 * d + j] = all[9 * d + j] }  // a duplicate row (ties)
        all[3] = 0; all[4] = -0.0  // signed zeros
        let range = TrainingShard.batchRange(batchCount: n, rank: comm.rank, worldSize: comm.worldSize)
        let mine = Array(all[(range.lowerBound * d)..<(range.upperBound * d)])
        var sum = [Double](repeating: 0, count: d)
        try ShardReduce.chain(&sum, comm: comm) { RMDSDetector.accumulateSum(&$0, features: mine, featureDim: d) }
        var serial = [Double](repeating: 0, count: d)
        RMDSDetector.accumulateSum(&serial, features: all, featureDim: d)
        if sum.map(\.bitPattern) != serial.map(\.bitPattern) { return "chain sum \(sum) != serial \(serial)" }
        for p in [0.0, 3.5, 50, 90, 99.9, 100] {
            let got = try ShardReduce.percentile(mine, p, comm: comm)
            let want = ReAct.percentileThreshold(activations: all, percentile: p)
            if got.bitPattern != want.bitPattern { return "percentile \(p): \(got) on \(comm.worldSize) ranks != \(want) on one" }
        }
        let queries = (0..<(9 * d)).map { _ in Float.random(in: -2..<3, using: &rng) } + Array(all[(9 * d)..<(10 * d)])
        let whole = KNNDetector(trainingFeatures: all, featureDim: d, k: k).topK(features: queries)
        let shard = KNNDetector(bank: KNNDetector.bank(features: mine, ids: range.map(Int64.init), featureDim: d), k: k)
        let merged = try shard.topK(features: queries) { try ShardReduce.topK($0, metric: .squaredDistance, comm: comm) }
        if merged != whole { return "KNN top-k of the shards merged differs from the whole bank's" }
        if Array(merged[0].ids[(9 * k)..<(9 * k + 2)]) != [9, 10] { return "the duplicate rows 9 and 10 should be the query's two nearest, by id" }
        return nil
    }
}
