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

    /// The ranges of this section's numeric keys (see ``ConfigRange``).
    static var ranges: [ConfigRange<EstimateSection>] {
        [.numbers(\.keepRatios, "estimate.keep_ratios", 0, 1, lowerOpen: true, hint: "kept fractions: 0.99 keeps 99% of each layer's weights"),
         .number(\.keepRatio, "estimate.keep_ratio", 0, 1, lowerOpen: true, hint: "the paper uses 0.965; small models need 0.99"),
         .int(\.masks, "estimate.masks", 1...10_000, hint: "5 masks give a stable median"),
         .int(\.seed, "estimate.seed", 0...Int(UInt32.max), hint: "any non-negative integer"),
         .number(\.q, "estimate.q", 0, 1, hint: "e.g. 0.05")]
    }

    public init() {}

    enum CodingKeys: String, CodingKey {
        case masks, seed, rule, q, augment
        case keepRatios = "keep_ratios", keepRatio = "keep_ratio"
    }

    /// Range checks of this section.
    /// - Throws: ``ConfigError/invalidValue(file:key:expected:actual:hint:)`` naming the key.
    public func validate(file: String) throws {
        for r in Self.ranges { try r.check(self, file: file) }
    }
}

/// The fine-tuning schedule shared by UM, UMAP and the plain cross-entropy control. Batch
/// size, momentum, weight decay and BN mode come from `train`.
public struct FinetuneSection: Codable, Equatable, Sendable {
    public var epochs = 10
    public var lr = 0.03
    public var schedule = ScheduleKind.cosine
    public var warmupEpochs = 0

    /// The ranges of this section's numeric keys (see ``ConfigRange``).
    static var ranges: [ConfigRange<FinetuneSection>] {
        [.int(\.epochs, "finetune.epochs", 0...1_000_000, hint: "UM uses 8-10 on small models"),
         .number(\.lr, "finetune.lr", 0, 1e6, hint: "e.g. 0.03"),
         .int(\.warmupEpochs, "finetune.warmup_epochs", 0...1_000_000, hint: "0 disables warm-up")]
    }

    public init() {}

    enum CodingKeys: String, CodingKey {
        case epochs, lr, schedule
        case warmupEpochs = "warmup_epochs"
    }

    /// Range checks of this section.
    /// - Throws: ``ConfigError/invalidValue(file:key:expected:actual:hint:)`` naming the key.
    public func validate(file: String) throws {
        for r in Self.ranges { try r.check(self, file: file) }
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

    /// The ranges of this section's numeric keys (see ``ConfigRange``).
    static var ranges: [ConfigRange<UMSection>] {
        [.number(\.xi, "um.xi", 0, 1e4, hint: "a loss in nats; 0 takes it from the estimate stage's estimate.json"),
         .number(\.beta, "um.beta", 0, 1e4, lowerOpen: true, hint: "1 is the method as published")]
    }

    public init() {}

    enum CodingKeys: String, CodingKey {
        case xi, beta, force, enabled
        case atypicalOnly = "atypical_only"
    }

    /// Range checks of this section.
    /// - Throws: ``ConfigError/invalidValue(file:key:expected:actual:hint:)`` naming the key.
    public func validate(file: String) throws {
        for r in Self.ranges { try r.check(self, file: file) }
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

    /// The ranges of this section's numeric keys (see ``ConfigRange``).
    static var ranges: [ConfigRange<UMAPSection>] {
        [.number(\.keepRatio, "umap.keep_ratio", 0, 1, lowerOpen: true,
                 hint: "the fraction KEPT (alias prune_rate): 0.8 keeps 80% of each layer's weights")]
    }

    public init() {}

    enum CodingKeys: String, CodingKey {
        case selection
        case keepRatio = "keep_ratio", freezeWeights = "freeze_weights", nonAffineBN = "non_affine_bn"
    }

    /// Range checks of this section.
    /// - Throws: ``ConfigError/invalidValue(file:key:expected:actual:hint:)`` naming the key.
    public func validate(file: String) throws {
        for r in Self.ranges { try r.check(self, file: file) }
    }
}
