import ArgumentParser
import CommandSupport
import Distributed
import Foundation
import NeuralNetwork
import Optimizers
import TensorCore
import Training

/// Synchronised BatchNorm for the benchmark (the trainer's `sync` mode): sums per-channel
/// statistics over ranks; a failed collective aborts the job. Accumulates the wall time
/// spent in its allreduces (seconds) and their number.
private final class BenchBatchNormReducer: BatchNormStatisticsReducer {
    let comm: Communicator
    var seconds = 0.0
    var calls = 0
    init(comm: Communicator) { self.comm = comm }
    func sumAcrossReplicas(_ values: UnsafeMutableBufferPointer<Double>) {
        let t0 = now()
        defer { seconds += now() - t0; calls += 1 }
        do { try comm.allreduce(values, op: .sum) } catch {
            comm.abort(code: 1, message: "[rank \(comm.rank)] error: synchronised BatchNorm: \(error)")
        }
    }
}

/// `umtrain bench train`: training and inference throughput of a model on synthetic data.
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Training and inference images/s of a model on synthetic data (medians over steps), with achieved GFLOP/s and the sgemm rate of its largest conv GEMM.",
        discussion: """
        One training step = the trainer's step path: zero the gradient arena, forward (train \
        mode; BatchNorm statistics summed over ranks with --bn-mode sync), softmax cross-entropy \
        (gradient scaled by 1 / global batch), the small loss-statistics allreduce, backward, \
        the bucketed gradient allreduce (GradientReducer, buckets 1 MiB then 25 MiB), SGD \
        (momentum 0.9, weight decay 5e-4). Inference = eval-mode forward. Inputs are N(0, 1) \
        noise, labels uniform; the same batch every step.

        --batch is the GLOBAL batch, split across ranks (rank r gets batch/W, the first \
        batch%W ranks one more). A step's time is the slowest rank's; throughput = global \
        batch / median step time. 'allreduce share' = time inside the gradient allreduce \
        (including waiting for the slowest rank) / step time, median over steps, rank 0; \
        'all collectives' adds the BatchNorm-statistics allreduces (--bn-mode sync) and the \
        loss-statistics allreduce. \
        Scaling efficiency: run with -np 1 and -np W and divide (W-rank img/s) / (W x 1-rank img/s).

        GFLOP/s use conv + linear MACs of one forward (see model-info): forward FLOPs = 2 x MACs, \
        training FLOPs = 3 x forward. The sgemm line times OpenBLAS on the largest conv GEMM \
        (M = Cout, N = images x OH x OW of one chunk, K = Cin x KH x KW) on every rank at once; \
        the ratio = model GFLOP/s / sgemm GFLOP/s (how close the whole step gets to the GEMM rate).
        Example: launch/mpirun.sh -np 2 umtrain bench train --arch resnet20 --batch 128
        """
    )

    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var model: ModelOptions

    @Option(help: "Global batch (split across ranks).")
    var batch: Int = 128

    @Option(help: "Timed steps (median reported; use at least 10).")
    var steps: Int = 10

    @Option(help: "Untimed warm-up steps before the timed ones.")
    var warmup: Int = 3

    @Option(help: ArgumentHelp("BatchNorm statistics across ranks: sync (trainer default) or local (PyTorch DDP default).",
                               valueName: "mode"))
    var bnMode: BatchNormMode = .sync

    @Option(help: ArgumentHelp("Gradient bucket caps in MiB: first bucket, then the others (train.bucket_first_mib, train.bucket_mib).",
                               valueName: "first,rest"))
    var buckets: String = "1,25"

    @Flag(help: "Overlap the gradient allreduce with backward (the trainer's default, train.overlap_allreduce); the allreduce time is then what is left after backward.")
    var overlap = false

    @Flag(help: "Skip the inference measurement.")
    var noInference = false

    @Option(help: "Timed sgemm repeats for the largest conv GEMM (0 = skip).")
    var gemmRepeats: Int = 5

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1, got \(batch).") }
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1, got \(steps).") }
        guard warmup >= 0 else { throw ValidationError("--warmup must be >= 0, got \(warmup).") }
        guard gemmRepeats >= 0 else { throw ValidationError("--gemm-repeats must be >= 0, got \(gemmRepeats).") }
    }

    /// Images of rank `rank` when a global batch of `batch` is split over `worldSize` ranks.
    static func share(batch: Int, rank: Int, worldSize: Int) -> Int {
        batch / worldSize + (rank < batch % worldSize ? 1 : 0)
    }

    func run() throws {
        runOnRanks(runtime) { rt in
            rt.log(try rt.header(command: "bench train"))
            rt.comm.phase = "bench train set-up"
            let section = model.section
            let local = Self.share(batch: batch, rank: rt.rank, worldSize: rt.worldSize)
            guard local >= 1 else {
                throw ValidationError("--batch \(batch) gives rank \(rt.rank) no images with \(rt.worldSize) ranks; use a batch of at least \(rt.worldSize).")
            }
            let info = try ModelInfoReport.measure(section, gemmBatch: local, convolution: rt.convolution.algorithm)
            let net = try ModelFactory.make(section, seed: 0, convolution: rt.convolution.algorithm)
            let flopsForward = 2 * Double(info.forwardMACsPerImage)
            rt.log("model \(section.arch) \(section.inChannels)x\(section.imageSize)x\(section.imageSize), \(section.numClasses) classes: "
                   + "\(grouped(info.trainableParameters)) parameters, \(fmt(Double(info.forwardMACsPerImage) / 1e6, 1)) M MACs/image")
            rt.log("global batch \(batch) over \(rt.worldSize) rank(s) (rank 0: \(Self.share(batch: batch, rank: 0, worldSize: rt.worldSize))), "
                   + "\(warmup) warm-up + \(steps) timed steps, bn \(bnMode)")

            // Synthetic batch, different per rank.
            var rng = RandomStream(seed: 1234, stream: [UInt64(rt.rank)])
            var x = Tensor(uninitialized: [local, section.inChannels, section.imageSize, section.imageSize])
            x.withUnsafeMutableBufferPointer { for i in 0..<$0.count { $0[i] = rng.nextNormal() } }
            let labels = (0..<local).map { _ in Int(rng.nextUInt32() % UInt32(section.numClasses)) }
            let ids = (0..<local).map { Int64(rt.rank * batch + $0) }

            // The trainer's state: arena, momentum, buckets, BN reducer.
            let trainable = net.parameters.filter { $0.role == .trainable }
            let arena = ParameterArena(parameters: trainable)
            var momentum = [Float](repeating: 0, count: arena.count)
            let caps = buckets.split(separator: ",").compactMap { Double($0) }
            guard caps.count == 2, caps.allSatisfy({ $0 > 0 }) else { throw ValidationError("--buckets must be FIRST,REST in MiB, e.g. 1,25; got '\(buckets)'") }
            let reducer = GradientReducer(buckets: planGradientBuckets(sizes: trainable.map(\.count),
                                                                       firstBucketBytes: Int(caps[0] * 1_048_576), bucketBytes: Int(caps[1] * 1_048_576)))
            let overlapped = overlap && rt.worldSize > 1 ? OverlappedReduction(buckets: reducer.buckets, parameters: trainable, comm: rt.comm) : nil
            let bnSync: BenchBatchNormReducer? = bnMode == .sync && rt.worldSize > 1 ? BenchBatchNormReducer(comm: rt.comm) : nil
            let bnReducer: (any BatchNormStatisticsReducer)? = bnSync
            let hp = SGDHyperparameters(learningRate: 0.01, momentum: 0.9, weightDecay: 5e-4)
            try hp.validate()

            var stepTimes: [Double] = [], reduceTimes: [Double] = [], shares: [Double] = []
            var collectiveShares: [Double] = [], bnTimes: [Double] = [], bnCalls = 0
            try rt.comm.barrier()
            for i in 0..<(warmup + steps) {
                rt.comm.phase = "bench train step \(i + 1)"
                let t0 = now()
                bnSync?.seconds = 0
                bnSync?.calls = 0
                arena.zeroGradients()
                let ctx = ForwardContext(mode: .train, seed: 1, epoch: 0, sampleIDs: ids, batchNormReducer: bnReducer)
                let logits = net.forward(x, context: ctx)
                let ce = softmaxCrossEntropy(logits: logits, labels: labels, gradientScale: 1 / Float(batch))
                var sums = [ce.lossSum, Double(local)]
                let l0 = now()
                try rt.comm.allreduce(&sums, op: .sum)
                let lossStatsTime = now() - l0
                var grads = arena.gradients
                var r0 = 0.0
                if let overlapped {
                    try grads.withUnsafeMutableBufferPointer { g in
                        try overlapped.run(arena: g) {
                            _ = net.backward(ce.logitsGradient)
                            r0 = now()
                        }
                    }
                } else {
                    _ = net.backward(ce.logitsGradient)
                    r0 = now()
                    try grads.withUnsafeMutableBufferPointer { try reducer.reduce($0, comm: rt.comm) }
                }
                let r1 = now()
                var values = arena.values
                values.withUnsafeMutableBufferPointer { v in
                    grads.withUnsafeBufferPointer { g in
                        momentum.withUnsafeMutableBufferPointer { m in
                            sgdUpdate(parameters: v, gradients: g, momentumBuffer: m, momentumInitialized: i > 0, hp: hp)
                        }
                    }
                }
                let t1 = now()
                guard sums[0].isFinite else {
                    throw ValidationError("non-finite loss at benchmark step \(i + 1); the synthetic run diverged.")
                }
                if i >= warmup {
                    stepTimes.append(t1 - t0)
                    reduceTimes.append(r1 - r0)
                    shares.append((r1 - r0) / (t1 - t0))
                    let bn = bnSync?.seconds ?? 0
                    bnTimes.append(bn)
                    bnCalls = bnSync?.calls ?? 0
                    collectiveShares.append((r1 - r0 + bn + lossStatsTime) / (t1 - t0))
                }
            }
            // The slowest rank sets each step's time.
            try rt.comm.allreduce(&stepTimes, op: .max)
            let trainStep = median(stepTimes)
            let trainIPS = Double(batch) / trainStep
            let trainGF = trainIPS * 3 * flopsForward / 1e9
            let slowest = Double(batch) / stepTimes.max()!, fastest = Double(batch) / stepTimes.min()!
            rt.log("train:     \(fmt(trainIPS, 1)) img/s global (range \(fmt(slowest, 1))-\(fmt(fastest, 1))), "
                   + "step \(fmt(trainStep * 1e3, 1)) ms, \(fmt(trainGF, 2)) GFLOP/s (3 x 2 x MACs)")
            rt.log("           gradient allreduce \(fmt(median(reduceTimes) * 1e3, 2)) ms/step, allreduce share \(fmt(100 * median(shares), 1))% "
                   + "(rank 0, median; \(grouped(arena.count * 4)) bytes in \(reducer.buckets.count) bucket(s)"
                   + (overlapped.map { ", overlapped with backward: \($0.startedDuringBackward) of them started before it ended; the time is what is left after backward" } ?? "") + ")")
            if rt.worldSize > 1 {
                rt.log("           all collectives share \(fmt(100 * median(collectiveShares), 1))% (gradient + loss statistics"
                       + (bnSync != nil ? " + \(bnCalls) BatchNorm-statistics allreduces, \(fmt(median(bnTimes) * 1e3, 2)) ms/step)" : ")"))
            }
            if bnSync != nil {
                // Which rank waits: a rank that is slower in every layer makes the others wait at
                // every synchronisation point (systematic); random per-layer jitter makes both wait.
                let perRank = try rt.comm.allgather([median(bnTimes)]).map { $0[0] * 1e3 }
                rt.log("           BatchNorm-statistics wait per rank (median ms/step): "
                       + perRank.enumerated().map { "rank \($0.offset) \(fmt($0.element, 2))" }.joined(separator: ", "))
            }

            var inferGF = 0.0
            if !noInference {
                var inferTimes: [Double] = []
                try rt.comm.barrier()
                for i in 0..<(warmup + steps) {
                    let t0 = now()
                    _ = net.forward(x, context: .eval)
                    let t = now() - t0
                    if i >= warmup { inferTimes.append(t) }
                }
                try rt.comm.allreduce(&inferTimes, op: .max)
                let inferIPS = Double(batch) / median(inferTimes)
                inferGF = inferIPS * flopsForward / 1e9
                rt.log("inference: \(fmt(inferIPS, 1)) img/s global (range \(fmt(Double(batch) / inferTimes.max()!, 1))-"
                       + "\(fmt(Double(batch) / inferTimes.min()!, 1))), \(fmt(inferGF, 2)) GFLOP/s (2 x MACs)")
            }

            if gemmRepeats > 0, let g = info.largestConvGemm {
                let a = [Float](repeating: 0.5, count: g.m * g.k)
                let b = [Float](repeating: 0.25, count: g.k * g.n)
                var c = [Float](repeating: 0, count: g.m * g.n)
                var times: [Double] = []
                try rt.comm.barrier()
                for i in 0..<(gemmRepeats + 1) {
                    let t0 = now()
                    a.withUnsafeBufferPointer { ap in
                        b.withUnsafeBufferPointer { bp in
                            c.withUnsafeMutableBufferPointer { cp in
                                Kernels.sgemm(transposeA: false, transposeB: false, m: g.m, n: g.n, k: g.k, alpha: 1,
                                              a: ap.baseAddress!, lda: g.k, b: bp.baseAddress!, ldb: g.n, beta: 0,
                                              c: cp.baseAddress!, ldc: g.n)
                            }
                        }
                    }
                    if i >= 1 { times.append(now() - t0) }
                }
                let gemmGF = 2 * Double(g.macs) / median(times) / 1e9
                let perRankTrain = trainGF / Double(rt.worldSize)
                var line = "sgemm:     \(fmt(gemmGF, 2)) GFLOP/s per rank on the largest conv's im2col GEMM (\(g.layer): M=\(g.m) N=\(g.n) K=\(g.k)); "
                    + "train/sgemm \(fmt(perRankTrain / gemmGF, 2))"
                if !noInference { line += ", inference/sgemm \(fmt(inferGF / Double(rt.worldSize) / gemmGF, 2))" }
                rt.log(line)
                rt.log("           conv layers: \(info.algorithmCounts) (GFLOP/s count direct-convolution MACs, so "
                       + "Winograd layers can exceed the sgemm rate)")
            }
        }
    }
}
