import Foundation
import Yams

/// The resolved configuration of a run. YAML keys are snake_case; every key has a default
/// (see docs/configuration.md). `train.batch_size` is the GLOBAL batch over all ranks.
///
/// Closed vocabularies are ``ConfigEnum`` types; each section validates its own ranges
/// (`validate(file:)` of the section) and ``validate(file:)`` adds the checks that span sections.
public struct RunConfig: Codable, Equatable, Sendable, DefaultConstructible {
    /// Run name: outputs go to `<output_dir>/<name>/<stage>/`.
    public var name = "run"
    /// Master seed: initialisation, sampler permutations, dropout and augmentation derive from it.
    public var seed = 0
    /// Parent folder of run folders.
    public var outputDir = "runs"
    public var model = ModelSection()
    public var data = DataSection()
    public var train = TrainSection()
    public var estimate = EstimateSection()
    public var finetune = FinetuneSection()
    public var um = UMSection()
    public var umap = UMAPSection()
    public var evaluate = EvaluateSection()

    /// The ranges of the top-level numeric keys (see ``ConfigRange``).
    static var ranges: [ConfigRange<RunConfig>] {
        [.int(\.seed, "seed", 0...Int(UInt32.max), hint: "any non-negative integer, e.g. seed: 0")]
    }

    public init() {}

    enum CodingKeys: String, CodingKey {
        case name, seed, model, data, train, estimate, finetune, um, umap, evaluate
        case outputDir = "output_dir"
    }

    /// Loads a config file (or the defaults) with CLI overrides and validates it.
    ///
    /// - Parameters:
    ///   - file: a YAML file, or nil for the defaults.
    ///   - overrides: `section.key=value` strings (`--set`), applied after the file.
    /// - Returns: the config and notes on UM-reference keys that were translated.
    /// - Throws: ``ConfigError`` naming the file, the dotted key, the expected and actual value.
    public static func load(file: String?, overrides: [String] = []) throws -> (config: RunConfig, notes: [String]) {
        var loader = ConfigLoader<RunConfig>(aliases: referenceAliases, translators: referenceTranslators)
        for score in referenceScoreSwitches {
            loader.translators[score.rawValue] = referenceSwitchTranslator(score)
        }
        var (config, notes) = try loader.load(file: file, overrides: overrides)
        config.applyReferenceScoreSwitches(notes: &notes)
        try config.validate(file: file ?? "<defaults>")
        return (config, notes)
    }

    /// The config as YAML, as saved in every run folder.
    public func yaml() throws -> String { try ConfigLoader<RunConfig>.yaml(self) }

    /// Every section's range checks, then the checks that span sections.
    ///
    /// - Throws: ``ConfigError/invalidValue(file:key:expected:actual:hint:)`` naming the key.
    public func validate(file: String) throws {
        let bad = ConfigError.invalid(file: file)
        if name.isEmpty || name.contains("/") { throw bad("name", "a non-empty name without '/'", "'\(name)'", "e.g. name: fmnist-quick") }
        for r in Self.ranges { try r.check(self, file: file) }
        try model.validate(file: file)
        try data.validate(file: file)
        try train.validate(file: file)
        try estimate.validate(file: file)
        try finetune.validate(file: file)
        try um.validate(file: file)
        try umap.validate(file: file)
        try evaluate.validate(file: file)
        // Across sections.
        if data.resize != 0 && data.resize < model.imageSize {
            throw bad("data.resize", "0 or a shorter side >= model.image_size (\(model.imageSize))", data.resize,
                      "256 with image_size 224 is torchvision's ImageNet evaluation; 0 resizes straight to image_size")
        }
        if data.randomCrop && data.padding > model.imageSize {
            throw bad("data.padding", "at most model.image_size (\(model.imageSize)) pixels with data.random_crop", data.padding,
                      "4 is the CIFAR recipe")
        }
        if data.mean.count != model.inChannels || data.std.count != model.inChannels {
            throw bad("data.mean/data.std", "\(model.inChannels) value(s) each (one per input channel)",
                      "\(data.mean.count) and \(data.std.count)", "e.g. mean: [0.2860], std: [0.3530] for Fashion-MNIST")
        }
    }

    /// The learning rate actually used, after the configured scaling with the effective global
    /// batch (batch_size x accumulation_steps).
    public var effectiveLearningRate: Double {
        train.lrScaling == .linear ? train.lr * Double(train.batchSize * train.accumulationSteps) / Double(train.referenceBatchSize) : train.lr
    }
}

extension ConfigError {
    /// A constructor of ``invalidValue(file:key:expected:actual:hint:)`` errors for `file`:
    /// `bad(key, expected, actual, hint)`.
    static func invalid(file: String) -> (String, String, Any, String) -> ConfigError {
        { key, expected, actual, hint in .invalidValue(file: file, key: key, expected: expected, actual: "\(actual)", hint: hint) }
    }
}
