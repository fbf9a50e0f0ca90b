/// Stage 1 of UM: the loss constraint xi and the atypical-sample mask.
public struct EstimateSection: Codable, Equatable, Sendable {
    /// Kept fractions to try (each with `masks` random masks).
    public var keepRatios: [Double] = [0.99, 0.98, 0.965]
    /// The kept fraction whose median xi is recommended (paper: 0.965; small CNNs: 0.99).
    public var keepRatio = 0.99
    /// Random masks per kept fraction (different seeds).
    public var masks = 5
    /// Base seed of the random masks (mask m of ratio r uses seed + m).
    public var seed = 0
    /// Atypical-sample rule: flip, quantile or increase.
    public var rule = AtypicalRuleName.flip
    /// Fraction for the quantile / increase rules.
    public var q = 0.05
    /// Use training augmentation while estimating (the reference does; default off).
    public var augment = false

    public init() {}

    enum CodingKeys: String, CodingKey {
        case masks, seed, rule, q, augment
        case keepRatios = "keep_ratios", keepRatio = "keep_ratio"
    }

    /// Range checks of this section.
    /// - Throws: ``ConfigError/invalidValue(file:key:expected:actual:hint:)`` naming the key.
    public func validate(file: String) throws {
        let bad = ConfigError.invalid(file: file)
        for (i, r) in keepRatios.enumerated() where !(r > 0 && r <= 1) {
            throw bad("estimate.keep_ratios[\(i)]", "a kept fraction in (0, 1]", r, "0.99 keeps 99% of each layer's weights")
        }
        if !(keepRatio > 0 && keepRatio <= 1) {
            throw bad("estimate.keep_ratio", "a kept fraction in (0, 1]", keepRatio, "the paper uses 0.965; small models need 0.99")
        }
        if masks < 1 { throw bad("estimate.masks", "at least 1", masks, "5 masks give a stable median") }
        if !(q >= 0 && q <= 1) { throw bad("estimate.q", "a fraction in [0, 1]", q, "e.g. 0.05") }
    }
}

/// The fine-tuning schedule shared by UM, UMAP and the plain cross-entropy control. Batch
/// size, momentum, weight decay and BN mode come from `train`.
public struct FinetuneSection: Codable, Equatable, Sendable {
    public var epochs = 10
    public var lr = 0.03
    public var schedule = ScheduleKind.cosine
    public var warmupEpochs = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case epochs, lr, schedule
        case warmupEpochs = "warmup_epochs"
    }

    /// Range checks of this section.
    /// - Throws: ``ConfigError/invalidValue(file:key:expected:actual:hint:)`` naming the key.
    public func validate(file: String) throws {
        let bad = ConfigError.invalid(file: file)
        if epochs < 0 { throw bad("finetune.epochs", "a count >= 0", epochs, "UM uses 8-10 on small models") }
        if !(lr >= 0) { throw bad("finetune.lr", "a number >= 0", lr, "e.g. 0.03") }
    }
}

/// UM fine-tuning (flooding at beta * xi on the global batch loss).
public struct UMSection: Codable, Equatable, Sendable {
    /// Loss constraint in nats; 0 = read it from the estimate stage's estimate.json.
    public var xi = 0.0
    /// Flood level multiplier (level = beta * xi).
    public var beta = 1.0
    /// Ablation: when forgetting, only the atypical samples ascend.
    public var atypicalOnly = false
    /// Use xi even when it is not strictly between the training and held-out losses.
    public var force = false
    /// Run the UM (and UMAP) stages in the pipeline (the reference's `UM` switch).
    public var enabled = true

    public init() {}

    enum CodingKeys: String, CodingKey {
        case xi, beta, force, enabled
        case atypicalOnly = "atypical_only"
    }

    /// Range checks of this section.
    /// - Throws: ``ConfigError/invalidValue(file:key:expected:actual:hint:)`` naming the key.
    public func validate(file: String) throws {
        let bad = ConfigError.invalid(file: file)
        if xi < 0 { throw bad("um.xi", "a loss in nats >= 0 (0 = take it from estimate.json)", xi, "run estimate-loss first") }
        if !(beta > 0) { throw bad("um.beta", "a positive multiplier of xi", beta, "1 is the method as published") }
    }
}

/// UMAP: learned weight masks (edge-popup) under the same flooding objective.
public struct UMAPSection: Codable, Equatable, Sendable {
    /// Fraction of each prunable layer's weights KEPT (the reference's `prune_rate`).
    public var keepRatio = 0.8
    /// `layer` (top-k per layer) or `model` (one global threshold).
    public var selection = MaskSelection.layer
    /// Keep the weights frozen and learn only the scores (the CIFAR-10 setting); false trains both.
    public var freezeWeights = true
    /// Replace BatchNorm's affine parameters by the identity and freeze them.
    public var nonAffineBN = false

    public init() {}

    enum CodingKeys: String, CodingKey {
        case selection
        case keepRatio = "keep_ratio", freezeWeights = "freeze_weights", nonAffineBN = "non_affine_bn"
    }

    /// Range checks of this section.
    /// - Throws: ``ConfigError/invalidValue(file:key:expected:actual:hint:)`` naming the key.
    public func validate(file: String) throws {
        let bad = ConfigError.invalid(file: file)
        if !(keepRatio > 0 && keepRatio <= 1) {
            throw bad("umap.keep_ratio", "a kept fraction in (0, 1] (alias prune_rate, the fraction KEPT)", keepRatio,
                      "e.g. 0.8 keeps 80% of each layer's weights")
        }
    }
}
