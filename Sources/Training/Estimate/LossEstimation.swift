import Datasets
import Distributed
import Foundation
import NeuralNetwork
import TensorCore
import UnleashingMask

/// UM stage 1 over MPI: random weight masks, per-sample losses gathered by sample id, xi and
/// the global atypical-sample mask (identical on every rank).
public enum LossEstimation {
    /// Estimates xi and the atypical mask for `model` on the training ids: the unmasked
    /// training and held-out losses, then for each kept fraction `estimate.masks` seeded random
    /// weight masks, each giving xi = the mean masked loss (Double, id order); the median mask
    /// of `estimate.keep_ratio` gives the recommended xi and, with `estimate.rule`, the atypical
    /// mask (verified identical on every rank). The weights are restored after each mask.
    /// Collective; results are bitwise identical for any world size.
    ///
    /// - Throws: ``ConfigError`` for `estimate.augment` without augmentation;
    ///   ``TrainingError/replicasDiverged(_:)`` if ranks disagree on the mask.
    public static func run(config: RunConfig, comm: Communicator, model: Classifier, data: TrainingData,
                           log: (String) -> Void) throws -> (EstimateReport, AtypicalTable) {
        let e = config.estimate
        // With estimate.augment every pass (clean, held-out, each mask) reads the same augmented
        // view: the training view of epoch `train.epochs` (keyed by (seed, epoch, id)), so the
        // clean and masked predictions of a sample see the same image and the flip rule compares
        // like with like. Without augmentation configured the view is the plain image.
        let view: Int? = e.augment ? config.train.epochs : nil
        if e.augment && data.augmentation == nil && data.trainSet.trainingCrop == nil {
            throw ConfigError.invalidValue(file: "config", key: "estimate.augment", expected: "false when no training augmentation is configured",
                                           actual: "true", hint: "enable data.random_crop, data.horizontal_flip or data.random_resized_crop, or set estimate.augment: false.")
        }
        let rule = e.rule.rule(q: e.q)
        let batch = config.train.evalBatchSize
        let weights = prunableWeights(model)
        log("estimate: \(weights.count) prunable layers (\(weights.map(\.count).reduce(0, +)) weights); "
            + "\(data.trainIds.count) training samples, \(data.validationIds.count) held out; rule \(rule); "
            + (view.map { "augmented view of epoch \($0) (estimate.augment)" } ?? "no augmentation"))
        let clean = try Evaluator.evaluate(model: model, comm: comm, data: data, dataset: data.trainSet, ids: data.trainIds,
                                           batchSize: batch, augmentedEpoch: view)
        let heldout: EvaluationResult? = data.validationIds.isEmpty ? nil
            : try Evaluator.evaluate(model: model, comm: comm, data: data, dataset: data.trainSet, ids: data.validationIds,
                                     batchSize: batch, augmentedEpoch: view)
        log("unmasked: train loss \(f6(clean.loss)) (acc \(pct(clean.accuracy))), held-out loss \(heldout.map { f6($0.loss) } ?? "n/a")")
        var ratios = e.keepRatios
        if !ratios.contains(e.keepRatio) { ratios.append(e.keepRatio) }
        var stats: [RatioStatistics] = []
        var chosen: (result: EvaluationResult, seed: Int)?
        for r in ratios {
            var xis: [Double] = [], accs: [Double] = [], seeds: [Int] = []
            var results: [EvaluationResult] = []
            for m in 0..<e.masks {
                let seed = e.seed + m
                let saved = weights.map { $0.value.copy() }
                for (l, w) in weights.enumerated() {
                    let mask = WeightMask.random(n: w.count, keepRatio: r, seed: UInt64(seed), stream: UInt64(l))
                    w.value.withUnsafeMutableBufferPointer { v in for i in 0..<v.count { v[i] *= mask[i] } }
                }
                let masked = try Evaluator.evaluate(model: model, comm: comm, data: data, dataset: data.trainSet,
                                                    ids: data.trainIds, batchSize: batch, augmentedEpoch: view)
                for (w, s) in zip(weights, saved) { w.value.assign(s) }
                let xi = LossConstraint.xi(maskedLossesInIdOrder: masked.losses)
                xis.append(xi)
                accs.append(masked.accuracy)
                seeds.append(seed)
                results.append(masked)
                log("  keep \(r) mask seed \(seed): xi \(f6(xi)) (masked acc \(pct(masked.accuracy)))")
            }
            let order = xis.indices.sorted { xis[$0] != xis[$1] ? xis[$0] < xis[$1] : $0 < $1 }
            let medianIndex = order[(xis.count - 1) / 2]
            let mean = xis.reduce(0, +) / Double(xis.count)
            let std = (xis.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(xis.count)).squareRoot()
            stats.append(RatioStatistics(keepRatio: r, xiPerMask: xis, maskSeeds: seeds, mean: mean, median: xis[medianIndex],
                                         min: xis.min()!, max: xis.max()!, std: std, maskedAccuracyPerMask: accs))
            if r == e.keepRatio { chosen = (results[medianIndex], seeds[medianIndex]) }
        }
        let pick = chosen!
        let maskXi = LossConstraint.xi(maskedLossesInIdOrder: pick.result.losses)
        let labelOf = data.trainSet.labelsById()
        let labels = clean.ids.map { labelOf[Int($0)]! }
        let correct = zip(clean.predictions, labels).map { Int($0) == $1 }
        let maskedCorrect = zip(pick.result.predictions, labels).map { Int($0) == $1 }
        let atypical = rule.mask(loss: clean.losses, maskedLoss: pick.result.losses, correct: correct, maskedCorrect: maskedCorrect)
        // Every rank derived the mask from the same gathered vectors; verify it anyway.
        var bits = [Float](repeating: 0, count: atypical.count)
        for (i, a) in atypical.enumerated() where a { bits[i] = 1 }
        let checksum = bits.withUnsafeBufferPointer { RankConsistency.checksum($0) }
        if let diff = try RankConsistency.compare(names: ["atypical mask"], checksums: [checksum], comm: comm) {
            throw TrainingError.replicasDiverged(diff)
        }
        var perClass = [Int](repeating: 0, count: config.model.numClasses)
        for (i, a) in atypical.enumerated() where a { perClass[labels[i]] += 1 }
        let heldoutLoss = heldout?.loss ?? .nan
        let maskPosition = (maskXi - clean.loss) / (heldoutLoss - clean.loss)
        let xi: Double
        switch e.xiRule {
        case .mask:
            xi = maskXi
        case .position:
            guard heldout != nil else {
                throw ConfigError.invalidValue(file: "config", key: "estimate.xi_rule", expected: "mask when there is no held-out split",
                                               actual: "position with data.validation_size 0",
                                               hint: "set data.validation_size (e.g. 5000), or estimate.xi_rule: mask.")
            }
            xi = clean.loss + e.xiPosition * (heldoutLoss - clean.loss)
        }
        log("the mask estimate xi \(f6(maskXi)) sits at \(fmt(100 * maskPosition, 1))% of the way from the training loss \(f6(clean.loss)) "
            + "to the held-out loss \(f6(heldoutLoss))" + (e.xiRule == .position
                ? "; recommended xi (estimate.xi_rule position \(e.xiPosition)): \(f6(xi))" : ""))
        let calibrated = heldout != nil && clean.loss < xi && xi < heldoutLoss
        let note: String
        if heldout == nil {
            note = "no held-out split (data.validation_size = 0): calibration cannot be checked"
        } else if calibrated {
            note = "xi \(f6(xi)) lies strictly between the training loss \(f6(clean.loss)) and the held-out loss \(f6(heldoutLoss))"
        } else if xi >= heldoutLoss {
            note = "xi \(f6(xi)) is NOT below the held-out loss \(f6(heldoutLoss)): UM would push the training loss above the held-out level and ruin the model; use a larger estimate.keep_ratio (e.g. 0.99)"
        } else {
            note = "xi \(f6(xi)) is NOT above the training loss \(f6(clean.loss)): flooding would never ascend; use a smaller estimate.keep_ratio"
        }
        let report = EstimateReport(
            xi: xi, keepRatio: e.keepRatio, maskSeed: pick.seed, rule: "\(rule)", count: clean.count,
            atypicalCount: atypical.filter { $0 }.count, atypicalPerClass: perClass, trainLoss: clean.loss,
            trainAccuracy: clean.accuracy, heldoutLoss: heldoutLoss, heldoutCount: heldout?.count ?? 0, calibrated: calibrated,
            calibrationNote: note, ratios: stats, maskChecksum: String(checksum, radix: 16), worldSize: comm.worldSize,
            xiRule: e.xiRule.rawValue, maskXi: maskXi, maskXiPosition: maskPosition)
        let table = AtypicalTable(ids: clean.ids, labels: labels, loss: clean.losses, maskedLoss: pick.result.losses,
                                  predicted: clean.predictions, maskedPredicted: pick.result.predictions, atypical: atypical)
        return (report, table)
    }
}
