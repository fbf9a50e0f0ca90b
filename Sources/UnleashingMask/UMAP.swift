import Distributed
import NeuralNetwork
import TensorCore

/// The prunable layers of UM and UMAP: every Conv2d and the final Linear (their weights),
/// in registration order.
public func prunableWeights(_ model: Classifier) -> [Parameter] {
    var out: [Parameter] = []
    func visit(_ layer: any Layer) {
        if let c = layer as? Conv2d { out.append(c.weight) }
        for (_, child) in layer.children where !(child === model.classifier) { visit(child) }
    }
    visit(model)
    out.append(model.classifier.weight)
    return out
}

/// UMAP options (mirrors the config's `umap` section).
public struct UMAPOptions: Sendable {
    public var keepRatio: Double
    /// `true`: one global threshold over all layers; `false`: top-k per layer.
    public var modelWise: Bool
    public var freezeWeights: Bool
    public var nonAffineBN: Bool

    public init(keepRatio: Double, modelWise: Bool = false, freezeWeights: Bool = true, nonAffineBN: Bool = false) {
        self.keepRatio = keepRatio
        self.modelWise = modelWise
        self.freezeWeights = freezeWeights
        self.nonAffineBN = nonAffineBN
    }
}

/// UMAP (UM paper Sec. 3.3; edge-popup, Ramanujan et al., CVPR 2020): every prunable layer
/// gets real-valued `scores` shaped like its weight, initialised U(-1/sqrt(fanIn), +1/sqrt(fanIn));
/// the effective weight is W * m where m keeps the `keepRatio` fraction of largest |scores|
/// (ties to the lower index, exact kept count round(keepRatio * n)). Backward is
/// straight-through: dL/dscores = sign(scores) * W * dL/dW_eff. Weights are frozen by default
/// (only scores learn), or trained jointly (dL/dW = m * dL/dW_eff).
///
/// Implementation: the layer keeps computing the gradient of its (effective) weight; these
/// hooks set W_eff = W * m before each forward and route that gradient afterwards, so no
/// layer needs to know about masks.
public final class UMAPState: TrainingHooks {
    public let model: Classifier
    public let options: UMAPOptions
    let comm: Communicator
    /// The prunable layers' weight parameters (their values hold W * m during training).
    public let layerWeights: [Parameter]
    /// W (the unmasked weights), one per prunable layer.
    public let originals: [Parameter]
    /// The scores, one per prunable layer.
    public let scores: [Parameter]
    /// The current masks (1 = kept).
    public private(set) var masks: [[Float]] = []

    /// Adds scores to every prunable layer of `model` and sets W_eff = W * m. Collective: the
    /// scores (drawn from `seed`, identical on every rank) are broadcast from rank 0 anyway.
    /// Side effects: with `freezeWeights`, every other parameter of `model` becomes frozen; with
    /// `nonAffineBN`, BatchNorm's scale and shift are reset to 1 and 0 and frozen.
    /// - Throws: communicator errors.
    public init(model: Classifier, options: UMAPOptions, seed: UInt64, comm: Communicator) throws {
        self.model = model
        self.options = options
        self.comm = comm
        layerWeights = prunableWeights(model)
        var rng = RandomStream(seed: seed, stream: [0x554D_4150])  // "UMAP"
        var o: [Parameter] = [], s: [Parameter] = []
        for w in layerWeights {
            let orig = Parameter(localName: "weight_orig", shape: w.shape, role: options.freezeWeights ? .frozen : .trainable)
            orig.name = w.name + "_orig"
            orig.value.assign(w.value)
            o.append(orig)
            let sc = Parameter(localName: "scores", shape: w.shape)
            sc.name = String(w.name.dropLast("weight".count)) + "scores"
            let fanIn = w.count / max(w.shape[0], 1)
            let bound = 1 / Float(fanIn).squareRoot()
            sc.value.withUnsafeMutableBufferPointer { p in
                for i in 0..<p.count { p[i] = (2 * rng.nextUniform() - 1) * bound }
            }
            s.append(sc)
        }
        originals = o
        scores = s
        if options.freezeWeights {
            // Everything but the prunable weights stops computing gradients.
            let prunable = Set(layerWeights.map { ObjectIdentifier($0) })
            for p in model.parameters where !prunable.contains(ObjectIdentifier(p)) { p.role = .frozen }
        }
        if options.nonAffineBN {
            for case let bn as BatchNorm2d in allLayers(model) {
                bn.weight?.value.assign(Tensor(shape: bn.weight!.shape, filledWith: 1))
                bn.bias?.value.assign(Tensor(zeros: bn.bias!.shape))
                bn.weight?.role = .frozen
                bn.bias?.role = .frozen
            }
        }
        // Scores start identical on every rank (same seed), but broadcast anyway.
        for p in scores {
            var v = p.value
            try v.withUnsafeMutableBufferPointer { try comm.broadcast($0, root: 0) }
            p.value = v
        }
        recomputeMasks()
    }

    /// Kept count per layer (layer-wise) or overall (model-wise), and the fraction kept.
    public var keptCounts: [Int] { masks.map { Int($0.reduce(0, +)) } }

    /// Recomputes the masks from the scores and sets W_eff = W * m.
    public func recomputeMasks() {
        if options.modelWise {
            masks = WeightMask.globalTopK(scores: scores.map(\.value.scalars), keepRatio: options.keepRatio)
        } else {
            masks = scores.map { s in
                s.value.withUnsafeBufferPointer { WeightMask.topK(scores: $0, keep: WeightMask.keptCount(n: s.count, keepRatio: options.keepRatio)) }
            }
        }
        for (l, w) in layerWeights.enumerated() {
            let m = masks[l]
            originals[l].value.withUnsafeBufferPointer { o in
                w.value.withUnsafeMutableBufferPointer { v in
                    for i in 0..<v.count { v[i] = o[i] * m[i] }
                }
            }
        }
    }

    // MARK: TrainingHooks

    public func optimizedParameters() -> [Parameter] {
        if options.freezeWeights { return scores }
        let prunable = Set(layerWeights.map { ObjectIdentifier($0) })
        let others = model.parameters.filter { $0.role == .trainable && !prunable.contains(ObjectIdentifier($0)) }
        return others + originals + scores
    }

    public func beforeForward() {
        recomputeMasks()
        for w in layerWeights { w.grad.zero() }
    }

    public func afterBackward() {
        for (l, w) in layerWeights.enumerated() {
            let m = masks[l]
            w.grad.withUnsafeBufferPointer { g in
                originals[l].value.withUnsafeBufferPointer { o in
                    scores[l].value.withUnsafeBufferPointer { s in
                        scores[l].grad.withUnsafeMutableBufferPointer { sg in
                            for i in 0..<sg.count {
                                let sign: Float = s[i] > 0 ? 1 : (s[i] < 0 ? -1 : 0)
                                sg[i] += sign * o[i] * g[i]
                            }
                        }
                    }
                }
                if !options.freezeWeights {
                    originals[l].grad.withUnsafeMutableBufferPointer { og in
                        for i in 0..<og.count { og[i] += m[i] * g[i] }
                    }
                }
            }
        }
    }

    /// Recomputes the masks and verifies them identical on every rank. Collective.
    /// - Throws: ``UMAPError/masksDiffer(_:)`` naming the layers; communicator errors.
    public func prepareForEvaluation() throws {
        recomputeMasks()
        try checkMasksAcrossRanks()
    }

    /// Verifies that every rank holds the same masks (checksum compared across ranks). Collective.
    public func checkMasksAcrossRanks() throws {
        let names = layerWeights.map { $0.name + " mask" }
        let sums = masks.map { m in m.withUnsafeBufferPointer { RankConsistency.checksum($0) } }
        if let diff = try RankConsistency.compare(names: names, checksums: sums, comm: comm) {
            throw UMAPError.masksDiffer(diff)
        }
    }

    public func extraState() -> [(name: String, values: [Float])] {
        scores.map { ($0.name, $0.value.scalars) } + originals.map { ($0.name, $0.value.scalars) }
    }

    public func restoreExtraState(_ state: [String: [Float]]) throws {
        for p in scores + originals {
            guard let v = state[p.name], v.count == p.count else {
                throw UMAPError.stateMissing(p.name)
            }
            p.value.assign(Tensor(shape: p.shape, values: v))
        }
        recomputeMasks()
    }

    /// Leaves the plain dense model W * m in the layers (it loads anywhere our models load).
    public func exportDense() { recomputeMasks() }
}

public enum UMAPError: Error, CustomStringConvertible {
    case masksDiffer(String)
    case stateMissing(String)
    public var description: String {
        switch self {
        case .masksDiffer(let d): return "UMAP masks differ between ranks: \(d). Hint: this is a bug; please report it."
        case .stateMissing(let n): return "UMAP checkpoint lacks '\(n)' (or its size differs). Hint: resume with the same model and umap settings."
        }
    }
}

/// Every layer in the tree (depth first).
func allLayers(_ root: any Layer) -> [any Layer] {
    var out: [any Layer] = [root]
    for (_, c) in root.children { out += allLayers(c) }
    return out
}
