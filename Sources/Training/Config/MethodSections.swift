import Foundation
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
    /// How xi is recommended: `mask` (the median masked loss, the paper's) or `position`.
    public var xiRule = XiRule.mask
    /// With `xi_rule: position`: the fraction of the way from the training loss to the held-out loss.
    public var xiPosition = 0.1

    /// The ranges of this section's numeric keys (see ``ConfigRange``).
    static var ranges: [ConfigRange<EstimateSection>] {
        [.numbers(\.keepRatios, "estimate.keep_ratios", 0, 1, lowerOpen: true, hint: "kept fractions: 0.99 keeps 99% of each layer's weights"),
         .number(\.keepRatio, "estimate.keep_ratio", 0, 1, lowerOpen: true, hint: "the paper uses 0.965; small models need 0.99"),
         .int(\.masks, "estimate.masks", 1...10_000, hint: "5 masks give a stable median"),
         .int(\.seed, "estimate.seed", 0...Int(UInt32.max), hint: "any non-negative integer"),
         .number(\.q, "estimate.q", 0, 1, hint: "e.g. 0.05"),
         .number(\.xiPosition, "estimate.xi_position", 0, 1, lowerOpen: true, upperOpen: true,
                 hint: "a fraction of the way from the training loss to the held-out loss, e.g. 0.1")]
    }

    public init() {}

    enum CodingKeys: String, CodingKey {
        case masks, seed, rule, q, augment
        case keepRatios = "keep_ratios", keepRatio = "keep_ratio", xiRule = "xi_rule", xiPosition = "xi_position"
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
    /// Named schedule variants for a sweep (each UM/UMAP cell and its CE control run on every
    /// one); empty (the schema placeholder only) = the one schedule above.
    public var schedules: [FinetuneSchedule] = [FinetuneSchedule()]

    /// The ranges of this section's numeric keys (see ``ConfigRange``).
    static var ranges: [ConfigRange<FinetuneSection>] {
        [.int(\.epochs, "finetune.epochs", 0...1_000_000, hint: "UM uses 8-10 on small models"),
         .number(\.lr, "finetune.lr", 0, 1e6, hint: "e.g. 0.03"),
         .int(\.warmupEpochs, "finetune.warmup_epochs", 0...1_000_000, hint: "0 disables warm-up")]
    }

    public init() {}

    enum CodingKeys: String, CodingKey {
        case epochs, lr, schedule, schedules
        case warmupEpochs = "warmup_epochs"
    }

    /// The configured schedule variants without the schema placeholder.
    public var explicitSchedules: [FinetuneSchedule] { schedules.filter { !$0.name.isEmpty } }

    /// Range checks of this section and of every schedule variant (names unique, made of
    /// letters, digits, `_` and `.`, so they can name folders).
    /// - Throws: ``ConfigError/invalidValue(file:key:expected:actual:hint:)`` naming the key.
    public func validate(file: String) throws {
        for r in Self.ranges { try r.check(self, file: file) }
        var seen: Set<String> = []
        for (i, v) in schedules.enumerated() where !(schedules.count == 1 && v == FinetuneSchedule()) {  // the schema placeholder
            let key = "finetune.schedules[\(i)]"
            let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "_."))
            guard !v.name.isEmpty, v.name.unicodeScalars.allSatisfy({ allowed.contains($0) && $0.isASCII }) else {
                throw ConfigError.invalidValue(file: file, key: key + ".name", expected: "a non-empty name of letters, digits, _ and .",
                                               actual: "'\(v.name)'", hint: "e.g. name: short (it names the cells' folders, um-short-p0.1)")
            }
            guard seen.insert(v.name).inserted else {
                throw ConfigError.invalidValue(file: file, key: key + ".name", expected: "a name no other schedule uses",
                                               actual: "'\(v.name)' twice", hint: "give each schedule variant its own name.")
            }
            for r in FinetuneSchedule.ranges(key) { try r.check(v, file: file) }
            if v.restart {
                let d = FinetuneSchedule()
                guard v.epochs == d.epochs, v.lr == d.lr, v.schedule == d.schedule, v.warmupEpochs == d.warmupEpochs else {
                    throw ConfigError.invalidValue(file: file, key: key, expected: "no epochs, lr, schedule or warmup_epochs with restart: true",
                                                   actual: "restart: true with its own values",
                                                   hint: "restart takes the whole schedule from train; drop the other keys, or set restart: false.")
                }
            }
        }
    }
}

/// One named fine-tuning schedule of a sweep (`finetune.schedules`).
public struct FinetuneSchedule: Codable, Hashable, Sendable {
    /// Names the cells (`um-<name>-<xi>`, `ce-<name>`) and their folders.
    public var name = ""
    /// Re-run the training schedule (`train.epochs`, `train.lr`, `train.schedule`,
    /// `train.warmup_epochs`) from its peak learning rate, as the UM reference does.
    public var restart = false
    public var epochs = 10
    public var lr = 0.03
    public var schedule = ScheduleKind.cosine
    public var warmupEpochs = 0

    public init() {}
    public init(name: String, restart: Bool = false, epochs: Int = 10, lr: Double = 0.03, schedule: ScheduleKind = .cosine,
                warmupEpochs: Int = 0) {
        self.name = name
        self.restart = restart
        self.epochs = epochs
        self.lr = lr
        self.schedule = schedule
        self.warmupEpochs = warmupEpochs
    }

    enum CodingKeys: String, CodingKey {
        case name, restart, epochs, lr, schedule
        case warmupEpochs = "warmup_epochs"
    }

    static func ranges(_ key: String) -> [ConfigRange<FinetuneSchedule>] {
        [.int(\.epochs, key + ".epochs", 0...1_000_000, hint: "e.g. 6"),
         .number(\.lr, key + ".lr", 0, 1e6, hint: "e.g. 0.03"),
         .int(\.warmupEpochs, key + ".warmup_epochs", 0...1_000_000, hint: "0 disables warm-up")]
    }
}

/// UM fine-tuning: flooding |beta * CE_B - xi| + xi on the global batch loss (the UM
/// reference's form; level xi / beta in cross-entropy units).
public struct UMSection: Codable, Equatable, Sendable {
    /// Loss constraints in nats, one sweep cell each; 0 = the estimate stage's recommendation
    /// (estimate.json). A single number or a list (`xi: 0.15`, `xi: [0, 0.1, 0.2]`).
    public var xi: [Double] = [0]
    /// Flood levels as fractions p of the way from the training loss to the held-out loss of the
    /// trained model (xi = train + p * (held-out - train), from estimate.json), one cell each.
    public var xiPositions: [Double] = []
    /// The reference's beta: |beta * CE - xi| + xi (gradient scaled by beta, level xi / beta).
    public var beta = 1.0
    /// Ablation: when forgetting, only the atypical samples ascend.
    public var atypicalOnly = false
    /// Use xi even when it is not strictly between the training and held-out losses.
    public var force = false
    /// Run the UM (and UMAP) stages in the pipeline (the reference's `UM` switch).
    public var enabled = true

    /// The ranges of this section's numeric keys (see ``ConfigRange``).
    static var ranges: [ConfigRange<UMSection>] {
        [.numbers(\.xi, "um.xi", 0, 1e4, hint: "losses in nats; 0 takes it from the estimate stage's estimate.json"),
         .numbers(\.xiPositions, "um.xi_positions", 0, 1, lowerOpen: true, upperOpen: true,
                  hint: "fractions of the way from the training loss to the held-out loss, e.g. [0.05, 0.1, 0.25]"),
         .number(\.beta, "um.beta", 0, 1e4, lowerOpen: true, hint: "1 is the method as published")]
    }

    public init() {}

    enum CodingKeys: String, CodingKey {
        case xi, beta, force, enabled
        case xiPositions = "xi_positions", atypicalOnly = "atypical_only"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let one = try? c.decode(Double.self, forKey: .xi) {
            xi = [one]
        } else {
            xi = try c.decode([Double].self, forKey: .xi)
        }
        xiPositions = try c.decode([Double].self, forKey: .xiPositions)
        beta = try c.decode(Double.self, forKey: .beta)
        atypicalOnly = try c.decode(Bool.self, forKey: .atypicalOnly)
        force = try c.decode(Bool.self, forKey: .force)
        enabled = try c.decode(Bool.self, forKey: .enabled)
    }

    /// `xi` is written as a number when it holds one value (as configs write it), else a list.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if xi.count == 1 { try c.encode(xi[0], forKey: .xi) } else { try c.encode(xi, forKey: .xi) }
        try c.encode(xiPositions, forKey: .xiPositions)
        try c.encode(beta, forKey: .beta)
        try c.encode(atypicalOnly, forKey: .atypicalOnly)
        try c.encode(force, forKey: .force)
        try c.encode(enabled, forKey: .enabled)
    }

    /// Range checks of this section.
    /// - Throws: ``ConfigError/invalidValue(file:key:expected:actual:hint:)`` naming the key.
    public func validate(file: String) throws {
        for r in Self.ranges { try r.check(self, file: file) }
        if xi.isEmpty && xiPositions.isEmpty {
            throw ConfigError.invalidValue(file: file, key: "um.xi", expected: "at least one value, or um.xi_positions",
                                           actual: "an empty list with no xi_positions", hint: "0 takes xi from the estimate stage.")
        }
        if Set(xi).count != xi.count || Set(xiPositions).count != xiPositions.count {
            throw ConfigError.invalidValue(file: file, key: Set(xi).count != xi.count ? "um.xi" : "um.xi_positions",
                                           expected: "distinct values", actual: "a repeated value", hint: "list each value once.")
        }
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
