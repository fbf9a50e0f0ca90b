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

/// N-rank vs 1-rank equivalence of training, UM, UMAP, the estimate stage and OOD evaluation.
extension MultiRankSuite {
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
        c.model.arch = .cnn5
        c.model.width = 4
        c.model.imageSize = 12
        c.model.numClasses = 4
        c.train.epochs = 100
        c.train.maxSteps = 20
        c.train.batchSize = worldSize == 3 ? 60 : 64
        c.train.lr = 0.05
        c.train.momentum = 0.9
        c.train.weightDecay = 5e-4
        c.train.schedule = .constant
        c.train.bnMode = .sync
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
            localBN.train.bnMode = .local
            let other = try Trainer(config: localBN, comm: comm, model: try ModelFactory.make(config.model, seed: 7),
                                    data: data, folder: nil, log: quiet)
            try other.train(evaluateEachEpoch: false)
            let largest = Self.relativeDifference(other.model, single.model).1
            if largest <= 1e-4 { return "negative control failed: local BN also within 1e-4 (\(largest))" }
            runtime.log("        (negative control, local BN: largest relative difference \(String(format: "%.2e", largest)) > 1e-4)")
        }
        return nil
    }

    /// The allreduce overlapped with backward, with buckets small enough (about 1 KB and 2 KB)
    /// that many start while backward runs, against reducing after backward: the replicas must be
    /// bitwise the same after 20 steps.
    func overlapEquivalence() throws -> String? {
        let data = Self.syntheticData(count: 242, seed: 11)
        var config = Self.equivalenceConfig(worldSize: comm.worldSize)
        config.train.bucketFirstMiB = 0.001
        config.train.bucketMiB = 0.002
        var sums: [Bool: [UInt64]] = [:]
        var started = 0, buckets = 0
        for overlap in [false, true] {
            config.train.overlapAllreduce = overlap
            let t = try Trainer(config: config, comm: comm, model: try ModelFactory.make(config.model, seed: 7), data: data, folder: nil, log: { _ in })
            try t.train(evaluateEachEpoch: false)
            sums[overlap] = t.checksums(includeBuffers: true).sums
            if overlap { started = t.bucketsStartedDuringBackward; buckets = t.bucketCount }
        }
        if sums[true] != sums[false] { return "overlapped and after-backward reductions give different replicas" }
        if comm.worldSize > 1 && started < 2 { return "only \(started) of \(buckets) buckets started during backward: nothing was overlapped" }
        runtime.log("        (\(started) of \(buckets) buckets started before backward ended)")
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
        let (dist, _) = try LossEstimation.run(config: config, comm: comm, model: try Self.copyModel(base, config),
                                               data: splitData, log: { _ in })
        let (single, _) = try LossEstimation.run(config: config, comm: LocalCommunicator(), model: try Self.copyModel(base, config),
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
        config.evaluate.scores = ScoreKind.allCases  // the classic seven and GEN, fDBD, ASH, SCALE, RMDS, ViM, NNGuide
        config.evaluate.genM = 3
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
        // Bootstrap intervals: the work is split by score over the ranks, the streams keyed by
        // (seed, score, set), so they must not depend on the number of ranks either.
        if dist.bootstrapReplicates == 0 || dist.rows.contains(where: { $0.intervals == nil }) { return "no bootstrap intervals" }
        for (x, y) in zip(dist.rows, single.rows) where x.intervals != y.intervals {
            return "bootstrap intervals of \(x.score)/\(x.set) differ from 1 rank"
        }
        if dist.averageIntervals != single.averageIntervals { return "bootstrap intervals of the averages differ from 1 rank" }
        // The reports, without the wall-time cost table (timings are the one thing allowed to differ).
        var (a, b) = (dist, single)
        a.cost = EvaluationCost()
        b.cost = EvaluationCost()
        if OODEvaluation.markdown(a, title: "t") != OODEvaluation.markdown(b, title: "t") { return "reports differ" }
        if dist.cost.order != EvaluationCost.phases(for: dist.scoreOrder) { return "cost phases \(dist.cost.order) are not the declared ones" }
        // The OOD-validation curve (train.ood_validation_every): held-out loss and validation
        // AUROC/FPR95 from a capped, evenly spaced subset, gathered by id.
        var curveConfig = config
        curveConfig.train.oodValidationEvery = 1
        curveConfig.train.oodValidationScores = [.energy, .msp, .knn]
        curveConfig.train.oodValidationSamples = 40
        func curve(_ c: Communicator) throws -> OODValidationMonitor.Point {
            try OODValidationMonitor(config: curveConfig, sets: sets, validationCount: trainData.validationIds.count, folder: nil,
                                     comm: c, resume: false)
                .measure(model: try Self.copyModel(base, config), comm: c, data: trainData)
        }
        let pd = try curve(comm), ps = try curve(LocalCommunicator())
        if pd.heldOutLoss.bitPattern != ps.heldOutLoss.bitPattern || pd.auroc != ps.auroc || pd.fpr95 != ps.fpr95 {
            return "OOD-validation point differs from 1 rank: loss \(pd.heldOutLoss) vs \(ps.heldOutLoss), AUROC \(pd.auroc) vs \(ps.auroc)"
        }
        runtime.log("        (\(dist.rows.count) metric rows identical; e.g. energy AUROC on 'dim' \(String(format: "%.4f", dist.rows.first { $0.score == .energy && $0.set == "dim" }!.metrics.auroc)))")
        return nil
    }
}
