import Foundation
import Yams

/// A value of a UM-reference config key that cannot be translated.
public struct ReferenceKeyError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// The resolved configuration of a run. YAML keys are snake_case; every key has a default
/// (see docs/configuration.md). `train.batch_size` is the GLOBAL batch over all ranks.
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

    public init() {}

    enum CodingKeys: String, CodingKey {
        case name, seed, model, data, train, estimate, finetune, um, umap, evaluate
        case outputDir = "output_dir"
    }

    /// UM reference config keys accepted as aliases (docs/configuration.md).
    public static let referenceAliases: [String: String] = [
        "arch": "model.arch",
        "epochs": "train.epochs",
        "lr": "train.lr",
        "lr_policy": "train.schedule",
        "batch_size": "train.batch_size",
        "weight_decay": "train.weight_decay",
        "momentum": "train.momentum",
        "droprate": "model.dropout",
        "prune_rate": "umap.keep_ratio",
        "freeze_weights": "umap.freeze_weights",
    ]

    /// UM reference keys whose values are translated (docs/configuration.md).
    public static let referenceTranslators: [String: @Sendable (Node) throws -> [(String, Node)]] = [
        "set": { v in
            switch (v.string ?? "").lowercased() {
            case "cifar10", "cifar-10": return [("data.format", Node("cifar10"))]
            case "cifar100", "cifar-100": return [("data.format", Node("cifar100"))]
            case "fashionmnist", "fashion-mnist", "fmnist", "mnist": return [("data.format", Node("idx"))]
            default: throw ReferenceKeyError("set: expected CIFAR10, CIFAR100 or FashionMNIST")
            }
        },
        "bn_type": { v in
            switch v.string ?? "" {
            case "NonAffineBatchNorm", "NonAffineBN", "non_affine": return [("model.batch_norm", Node("non_affine"))]
            case "AffineBatchNorm", "LearnedBatchNorm", "BatchNorm", "affine": return [("model.batch_norm", Node("affine"))]
            default: throw ReferenceKeyError("bn_type: expected NonAffineBatchNorm or LearnedBatchNorm/AffineBatchNorm")
            }
        },
        "UM": { v in
            guard let b = v.bool else { throw ReferenceKeyError("UM: expected true or false") }
            return [("um.enabled", Node(b ? "true" : "false"))]
        },
        "ood_set": { v in
            let names = v.sequence.map { $0.compactMap(\.string) } ?? [v.string ?? ""]
            let sets = names.filter { !$0.isEmpty }.map { name -> Node in
                Node([(Node("name"), Node(name)), (Node("images"), Node("data/ood/\(name.lowercased())/images-idx3-ubyte.gz")),
                      (Node("synthetic"), Node("false"))])
            }
            return [("evaluate.ood_sets", Node(sets)), ("evaluate.ood_manifest", Node(""))]
        },
    ]

    /// Loads a config file (or the defaults) with CLI overrides and validates it.
    public static func load(file: String?, overrides: [String] = []) throws -> (config: RunConfig, notes: [String]) {
        var loader = ConfigLoader<RunConfig>(aliases: referenceAliases, translators: referenceTranslators)
        // The reference's per-score switches (msp/odin/energy/mahalanobis: true/false) become evaluate.scores.
        for score in ["msp", "odin", "energy", "mahalanobis"] {
            loader.translators[score] = { v in
                guard let b = v.bool else { throw ReferenceKeyError("\(score): expected true or false") }
                return [("evaluate.reference_switch_\(score)", Node(b ? "true" : "false"))]
            }
        }
        var (config, notes) = try loader.load(file: file, overrides: overrides)
        let switches = [("msp", config.evaluate.referenceSwitchMSP), ("odin", config.evaluate.referenceSwitchODIN),
                        ("energy", config.evaluate.referenceSwitchEnergy), ("mahalanobis", config.evaluate.referenceSwitchMahalanobis)]
        if switches.contains(where: { !$0.1.isEmpty }) {
            config.evaluate.scores = switches.filter { $0.1 == "true" }.map(\.0)
            notes.append("reference score switches give evaluate.scores = \(config.evaluate.scores)")
        }
        try config.validate(file: file ?? "<defaults>")
        return (config, notes)
    }

    /// The config as YAML, as saved in every run folder.
    public func yaml() throws -> String { try ConfigLoader<RunConfig>.yaml(self) }

    /// Range and consistency checks that types cannot express.
    ///
    /// - Throws: ``ConfigError/invalidValue(file:key:expected:actual:hint:)`` naming the key.
    public func validate(file: String) throws {
        func bad(_ key: String, _ expected: String, _ actual: Any, _ hint: String) -> ConfigError {
            .invalidValue(file: file, key: key, expected: expected, actual: "\(actual)", hint: hint)
        }
        if name.isEmpty || name.contains("/") { throw bad("name", "a non-empty name without '/'", "'\(name)'", "e.g. name: fmnist-quick") }
        if !ModelSection.architectures.contains(model.arch) {
            throw bad("model.arch", "one of \(ModelSection.architectures.joined(separator: ", "))", "'\(model.arch)'",
                      "run `umtrain model-info --help` for the model zoo.")
        }
        if ![1, 3].contains(model.inChannels) { throw bad("model.in_channels", "1 or 3", model.inChannels, "1 for grayscale, 3 for RGB") }
        if model.imageSize < 8 { throw bad("model.image_size", "at least 8 (pixels)", model.imageSize, "28 for Fashion-MNIST, 32 for CIFAR") }
        if model.numClasses < 2 { throw bad("model.num_classes", "at least 2", model.numClasses, "10 for Fashion-MNIST/CIFAR-10") }
        if !(0..<1).contains(model.dropout) { throw bad("model.dropout", "a probability in [0, 1)", model.dropout, "0.3 in the UM reference") }
        if !["affine", "non_affine"].contains(model.batchNorm) {
            throw bad("model.batch_norm", "affine or non_affine", "'\(model.batchNorm)'", "the UM reference uses non_affine")
        }
        if !["idx", "cifar10", "cifar100", "folder"].contains(data.format) {
            throw bad("data.format", "idx, cifar10, cifar100 or folder", "'\(data.format)'", "Fashion-MNIST is idx")
        }
        if SampleSet.Loading(rawValue: data.loading) == nil {
            throw bad("data.loading", "auto, memory or lazy", "'\(data.loading)'", "auto keeps sets up to 4 GiB decoded in memory")
        }
        if data.resize != 0 && data.resize < model.imageSize {
            throw bad("data.resize", "0 or a shorter side >= model.image_size (\(model.imageSize))", data.resize,
                      "256 with image_size 224 is torchvision's ImageNet evaluation; 0 resizes straight to image_size")
        }
        if data.randomResizedCrop && data.format != "folder" {
            throw bad("data.random_resized_crop", "false for data.format \(data.format)", true,
                      "it needs the full decoded images of a folder dataset; use data.random_crop for IDX/CIFAR")
        }
        if data.randomResizedCrop && data.loading == "memory" {
            throw bad("data.random_resized_crop", "false with data.loading: memory", true,
                      "the crop is taken from the full decoded image, which only lazy loading keeps: use data.loading: lazy or auto")
        }
        if data.randomResizedCrop && data.randomCrop {
            throw bad("data.random_crop", "false when data.random_resized_crop is true", true, "choose one training crop")
        }
        if data.validationSize < 0 { throw bad("data.validation_size", "a count >= 0", data.validationSize, "5000 is typical") }
        if data.trainSubset < 0 { throw bad("data.train_subset", "a count >= 0 (0 = all)", data.trainSubset, "0 uses the whole set") }
        if data.mean.count != model.inChannels || data.std.count != model.inChannels {
            throw bad("data.mean/data.std", "\(model.inChannels) value(s) each (one per input channel)",
                      "\(data.mean.count) and \(data.std.count)", "e.g. mean: [0.2860], std: [0.3530] for Fashion-MNIST")
        }
        if data.std.contains(where: { !($0 > 0) }) { throw bad("data.std", "positive values", data.std, "standard deviations of pixel values in [0, 1]") }
        if train.epochs < 0 { throw bad("train.epochs", "a count >= 0", train.epochs, "e.g. epochs: 10") }
        if train.batchSize < 1 { throw bad("train.batch_size", "a GLOBAL batch size >= 1", train.batchSize, "it is split across ranks") }
        if !(train.lr >= 0) || !train.lr.isFinite { throw bad("train.lr", "a finite number >= 0", train.lr, "e.g. lr: 0.1") }
        if !["none", "linear"].contains(train.lrScaling) {
            throw bad("train.lr_scaling", "none or linear", "'\(train.lrScaling)'",
                      "linear multiplies lr by batch_size / reference_batch_size")
        }
        if train.referenceBatchSize < 1 { throw bad("train.reference_batch_size", "a batch size >= 1", train.referenceBatchSize, "e.g. 256") }
        if !(0..<1).contains(train.momentum) { throw bad("train.momentum", "a value in [0, 1)", train.momentum, "0.9 is standard") }
        if train.weightDecay < 0 { throw bad("train.weight_decay", "a value >= 0", train.weightDecay, "e.g. 5e-4") }
        if !["constant", "step", "multistep", "cosine"].contains(train.schedule) {
            throw bad("train.schedule", "constant, step, multistep or cosine", "'\(train.schedule)'", "the UM reference uses cosine")
        }
        if !["sync", "local"].contains(train.bnMode) {
            throw bad("train.bn_mode", "sync or local", "'\(train.bnMode)'", "sync makes N ranks equal one process with the same global batch")
        }
        if !(0..<1).contains(train.labelSmoothing) { throw bad("train.label_smoothing", "a value in [0, 1)", train.labelSmoothing, "0 disables it") }
        if train.keepCheckpoints < 1 { throw bad("train.keep_checkpoints", "at least 1", train.keepCheckpoints, "the last K checkpoints are kept") }
        if train.checkpointEvery < 0 { throw bad("train.checkpoint_every", "epochs >= 0 (0 = only at the end)", train.checkpointEvery, "e.g. 1") }
        if train.consistencyEvery < 0 { throw bad("train.consistency_every", "steps >= 0 (0 = off)", train.consistencyEvery, "e.g. 100") }
        for (i, r) in estimate.keepRatios.enumerated() where !(r > 0 && r <= 1) {
            throw bad("estimate.keep_ratios[\(i)]", "a kept fraction in (0, 1]", r, "0.99 keeps 99% of each layer's weights")
        }
        if !(estimate.keepRatio > 0 && estimate.keepRatio <= 1) {
            throw bad("estimate.keep_ratio", "a kept fraction in (0, 1]", estimate.keepRatio, "the paper uses 0.965; small models need 0.99")
        }
        if estimate.masks < 1 { throw bad("estimate.masks", "at least 1", estimate.masks, "5 masks give a stable median") }
        if AtypicalRuleName(rawValue: estimate.rule) == nil {
            throw bad("estimate.rule", "flip, quantile or increase", "'\(estimate.rule)'", "flip is the default")
        }
        if !(estimate.q >= 0 && estimate.q <= 1) { throw bad("estimate.q", "a fraction in [0, 1]", estimate.q, "e.g. 0.05") }
        if finetune.epochs < 0 { throw bad("finetune.epochs", "a count >= 0", finetune.epochs, "UM uses 8-10 on small models") }
        if !(finetune.lr >= 0) { throw bad("finetune.lr", "a number >= 0", finetune.lr, "e.g. 0.03") }
        if um.xi < 0 { throw bad("um.xi", "a loss in nats >= 0 (0 = take it from estimate.json)", um.xi, "run estimate-loss first") }
        if !(um.beta > 0) { throw bad("um.beta", "a positive multiplier of xi", um.beta, "1 is the method as published") }
        if !(umap.keepRatio > 0 && umap.keepRatio <= 1) {
            throw bad("umap.keep_ratio", "a kept fraction in (0, 1] (alias prune_rate, the fraction KEPT)", umap.keepRatio,
                      "e.g. 0.8 keeps 80% of each layer's weights")
        }
        if !["layer", "model"].contains(umap.selection) {
            throw bad("umap.selection", "layer or model", "'\(umap.selection)'", "layer-wise top-k is the default")
        }
        for sc in evaluate.scores where !EvaluateSection.knownScores.contains(sc) {
            throw bad("evaluate.scores", "a list drawn from \(EvaluateSection.knownScores.joined(separator: ", "))", "'\(sc)'",
                      "e.g. scores: [msp, energy, odin]")
        }
        if !["strict", "reference", "openood"].contains(evaluate.fprMode) {
            throw bad("evaluate.fpr_mode", "strict, reference or openood", "'\(evaluate.fprMode)'", "strict is the default (ID positive)")
        }
        if evaluate.knnK < 1 { throw bad("evaluate.knn_k", "at least 1", evaluate.knnK, "50 is the KNN paper's CIFAR setting") }
        if !(evaluate.reactPercentile > 0 && evaluate.reactPercentile <= 100) {
            throw bad("evaluate.react_percentile", "a percentile in (0, 100]", evaluate.reactPercentile, "90 is ReAct's default")
        }
        if !(evaluate.odinTemperature > 0) { throw bad("evaluate.odin_temperature", "positive", evaluate.odinTemperature, "1000 in ODIN") }
        if !(evaluate.odinEpsilon >= 0) { throw bad("evaluate.odin_epsilon", "a step >= 0 in [0,1] pixel units", evaluate.odinEpsilon, "0.0014 in ODIN") }
        if train.maxSteps < 0 { throw bad("train.max_steps", "steps >= 0 (0 = no limit)", train.maxSteps, "e.g. max_steps: 100") }
        if train.evalEvery < 0 { throw bad("train.eval_every", "epochs >= 0 (0 = only at the end)", train.evalEvery, "e.g. 1") }
        if train.evalBatchSize < 1 { throw bad("train.eval_batch_size", "at least 1", train.evalBatchSize, "e.g. 500") }
        if !(train.bucketFirstMiB > 0) || !(train.bucketMiB > 0) {
            throw bad("train.bucket_mib", "positive sizes in MiB", "\(train.bucketFirstMiB), \(train.bucketMiB)", "DDP uses 1 and 25")
        }
    }

    /// The learning rate actually used, after the configured scaling with the global batch.
    public var effectiveLearningRate: Double {
        train.lrScaling == "linear" ? train.lr * Double(train.batchSize) / Double(train.referenceBatchSize) : train.lr
    }
}

public struct ModelSection: Codable, Equatable, Sendable {
    public static let architectures = ["cnn5", "lenet", "resnet20", "resnet18", "wrn40_2", "densenet_bc100", "resnet50"]
    /// Architecture name (see `umtrain model-info`).
    public var arch = "cnn5"
    /// Base width of `cnn5` (channels of its first layer).
    public var width = 32
    /// 1 (grayscale) or 3 (RGB).
    public var inChannels = 1
    /// Input height = width, in pixels.
    public var imageSize = 28
    public var numClasses = 10
    /// Dropout probability where the architecture has dropout.
    public var dropout = 0.0
    /// `affine` (gamma/beta) or `non_affine` BatchNorm.
    public var batchNorm = "affine"

    public init() {}

    enum CodingKeys: String, CodingKey {
        case arch, width, dropout
        case inChannels = "in_channels", imageSize = "image_size", numClasses = "num_classes", batchNorm = "batch_norm"
    }
}

public struct DataSection: Codable, Equatable, Sendable {
    /// `idx` (MNIST-style, raw or gzip), `cifar10`, `cifar100` (binary) or `folder`.
    public var format = "idx"
    /// Training images/labels (idx) or the dataset folder (cifar, folder).
    public var trainImages = "data/fashion-mnist/train-images-idx3-ubyte.gz"
    public var trainLabels = "data/fashion-mnist/train-labels-idx1-ubyte.gz"
    public var testImages = "data/fashion-mnist/t10k-images-idx3-ubyte.gz"
    public var testLabels = "data/fashion-mnist/t10k-labels-idx1-ubyte.gz"
    /// Use only the first N training images after the validation split is removed (0 = all).
    public var trainSubset = 0
    /// Images carved out of the training set for calibration and detector tuning.
    public var validationSize = 5000
    public var validationSeed = 0
    /// Per-channel normalisation of pixels in [0, 1].
    public var mean: [Double] = [0.2860]
    public var std: [Double] = [0.3530]
    /// Training augmentation (off by default for digit-like data).
    public var randomCrop = false
    public var padding = 4
    public var horizontalFlip = false
    /// ImageNet-style training crop for `folder` data loaded lazily: torchvision
    /// `RandomResizedCrop(image_size)` (area 8-100%, aspect 3/4-4/3) from the full decoded image,
    /// flipped when `horizontal_flip`.
    public var randomResizedCrop = false
    /// Folder images (training, test and OOD folder sets): shorter side in pixels before the
    /// centre crop to `model.image_size` (0 = image_size; torchvision's ImageNet evaluation: 256).
    public var resize = 0
    /// How folder sets are read: `auto` (in memory when the decoded set is at most 4 GiB, else
    /// lazily), `memory` (decode everything once) or `lazy` (decode each image when its batch is
    /// read, on a loader thread ahead of compute).
    public var loading = "auto"

    public init() {}

    /// `loading` as the enum (validated by `RunConfig.validate`).
    public var loadingMode: SampleSet.Loading { SampleSet.Loading(rawValue: loading) ?? .auto }

    enum CodingKeys: String, CodingKey {
        case format, mean, std, padding, resize, loading
        case trainImages = "train_images", trainLabels = "train_labels", testImages = "test_images",
             testLabels = "test_labels", trainSubset = "train_subset", validationSize = "validation_size",
             validationSeed = "validation_seed", randomCrop = "random_crop", horizontalFlip = "horizontal_flip",
             randomResizedCrop = "random_resized_crop"
    }
}

public struct TrainSection: Codable, Equatable, Sendable {
    public var epochs = 10
    /// GLOBAL batch size (summed over ranks).
    public var batchSize = 128
    /// Base learning rate.
    public var lr = 0.1
    /// `none`: lr is used as given; `linear`: lr x batch_size / reference_batch_size.
    public var lrScaling = "none"
    public var referenceBatchSize = 256
    public var momentum = 0.9
    public var dampening = 0.0
    public var nesterov = false
    public var weightDecay = 5e-4
    /// `constant`, `step`, `multistep` or `cosine`.
    public var schedule = "cosine"
    public var stepSize = 30
    public var milestones: [Int] = []
    public var gamma = 0.1
    public var warmupEpochs = 0
    /// Update the learning rate every step (cosine, warm-up) instead of once per epoch.
    public var perStepSchedule = false
    /// `sync` (statistics over the global batch) or `local` (per rank, DDP's default).
    public var bnMode = "sync"
    public var labelSmoothing = 0.0
    /// Checkpoint every N epochs (0 = only at the end).
    public var checkpointEvery = 1
    public var keepCheckpoints = 3
    /// Compare parameter checksums across ranks every N steps (0 = off).
    public var consistencyEvery = 100
    /// Gradient bucket sizes (MiB): the first bucket, then the others.
    public var bucketFirstMiB = 1.0
    public var bucketMiB = 25.0
    /// Drop the tail of each epoch instead of padding (padded samples never count).
    public var dropLast = false
    /// Stop after this many steps in total (0 = run all epochs); a checkpoint is written there.
    public var maxSteps = 0
    /// Evaluation batch size: fixed runs of consecutive sample ids, the same for any world size.
    public var evalBatchSize = 500
    /// Progress lines per epoch when stdout is not a terminal.
    public var progressLines = 10
    /// Evaluate on the ID test set every N epochs (0 = only after the last epoch).
    public var evalEvery = 1

    public init() {}

    enum CodingKeys: String, CodingKey {
        case epochs, lr, momentum, dampening, nesterov, schedule, milestones, gamma
        case batchSize = "batch_size", lrScaling = "lr_scaling", referenceBatchSize = "reference_batch_size",
             weightDecay = "weight_decay", stepSize = "step_size", warmupEpochs = "warmup_epochs",
             perStepSchedule = "per_step_schedule", bnMode = "bn_mode", labelSmoothing = "label_smoothing",
             checkpointEvery = "checkpoint_every", keepCheckpoints = "keep_checkpoints",
             consistencyEvery = "consistency_every", bucketFirstMiB = "bucket_first_mib", bucketMiB = "bucket_mib",
             dropLast = "drop_last", maxSteps = "max_steps", evalBatchSize = "eval_batch_size",
             progressLines = "progress_lines", evalEvery = "eval_every"
    }
}

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
    public var rule = "flip"
    /// Fraction for the quantile / increase rules.
    public var q = 0.05
    /// Use training augmentation while estimating (the reference does; default off).
    public var augment = false

    public init() {}

    enum CodingKeys: String, CodingKey {
        case masks, seed, rule, q, augment
        case keepRatios = "keep_ratios", keepRatio = "keep_ratio"
    }
}

public enum AtypicalRuleName: String { case flip, quantile, increase }

/// The fine-tuning schedule shared by UM, UMAP and the plain cross-entropy control. Batch
/// size, momentum, weight decay and BN mode come from `train`.
public struct FinetuneSection: Codable, Equatable, Sendable {
    public var epochs = 10
    public var lr = 0.03
    public var schedule = "cosine"
    public var warmupEpochs = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case epochs, lr, schedule
        case warmupEpochs = "warmup_epochs"
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
}

/// UMAP: learned weight masks (edge-popup) under the same flooding objective.
public struct UMAPSection: Codable, Equatable, Sendable {
    /// Fraction of each prunable layer's weights KEPT (the reference's `prune_rate`).
    public var keepRatio = 0.8
    /// `layer` (top-k per layer) or `model` (one global threshold).
    public var selection = "layer"
    /// Keep the weights frozen and learn only the scores (the CIFAR-10 setting); false trains both.
    public var freezeWeights = true
    /// Replace BatchNorm's affine parameters by the identity and freeze them.
    public var nonAffineBN = false

    public init() {}

    enum CodingKeys: String, CodingKey {
        case selection
        case keepRatio = "keep_ratio", freezeWeights = "freeze_weights", nonAffineBN = "non_affine_bn"
    }
}

/// One OOD test set.
public struct OODSetConfig: Codable, Equatable, Sendable {
    public var name = ""
    /// IDX image file (gzip or raw).
    public var images = ""
    /// Synthetic sets (noise) are reported apart and never averaged with real sets.
    public var synthetic = false

    public init() {}
    public init(name: String, images: String, synthetic: Bool) {
        self.name = name
        self.images = images
        self.synthetic = synthetic
    }
}

/// OOD evaluation: scores, metrics and their conventions.
public struct EvaluateSection: Codable, Equatable, Sendable {
    public static let knownScores = ["msp", "maxlogit", "energy", "odin", "mahalanobis", "knn", "react"]
    /// Scores to compute (higher = more in-distribution for all of them).
    public var scores = ["msp", "maxlogit", "energy", "odin", "mahalanobis", "knn", "react"]
    /// The offline benchmark manifest (launch/prepare-data.sh); every set with role ood is used.
    public var oodManifest = "data/manifest.json"
    /// Extra (or, with an empty manifest path, the only) OOD sets.
    public var oodSets: [OODSetConfig] = [OODSetConfig()]
    /// FPR95 convention: strict (ID positive, first threshold with ID recall >= 95%),
    /// reference (closest recall, the UM/energy-OOD code), openood (OOD positive).
    public var fprMode = "strict"
    /// Drop non-finite scores (their count is reported) instead of failing.
    public var excludeNonFinite = false
    public var batchSize = 500
    public var energyTemperature = 1.0
    /// ODIN (Liang et al., ICLR 2018): temperature and input step in [0, 1] pixel units.
    public var odinTemperature = 1000.0
    public var odinEpsilon = 0.0014
    /// KNN (Sun et al., ICML 2022): k-th nearest normalised training feature.
    public var knnK = 50
    /// ReAct (Sun et al., NeurIPS 2021): clip at this percentile of ID training activations.
    public var reactPercentile = 90.0
    /// Ridge added to the Mahalanobis covariance diagonal (0 = none).
    public var mahalanobisRidge = 1e-6
    /// Tune detector hyperparameters (ODIN temperature/epsilon, KNN k, ReAct percentile) on the
    /// ID validation split (never the test sets) and `validation_ood_sets`, before scoring.
    public var tune = false
    /// OOD sets used only for tuning (must not be among the OOD test sets).
    public var validationOODSets: [OODSetConfig] = [OODSetConfig()]
    /// Set only by the UM reference's `msp`/`odin`/`energy`/`mahalanobis` switches
    /// ("true"/"false"; empty when not given).
    public var referenceSwitchMSP = ""
    public var referenceSwitchODIN = ""
    public var referenceSwitchEnergy = ""
    public var referenceSwitchMahalanobis = ""

    public init() {}

    enum CodingKeys: String, CodingKey {
        case scores
        case oodManifest = "ood_manifest", oodSets = "ood_sets", fprMode = "fpr_mode", excludeNonFinite = "exclude_non_finite",
             batchSize = "batch_size", energyTemperature = "energy_temperature", odinTemperature = "odin_temperature",
             odinEpsilon = "odin_epsilon", knnK = "knn_k", reactPercentile = "react_percentile",
             mahalanobisRidge = "mahalanobis_ridge", tune, validationOODSets = "validation_ood_sets", referenceSwitchMSP = "reference_switch_msp",
             referenceSwitchODIN = "reference_switch_odin", referenceSwitchEnergy = "reference_switch_energy",
             referenceSwitchMahalanobis = "reference_switch_mahalanobis"
    }

    /// The configured OOD sets without the schema placeholder.
    public var explicitSets: [OODSetConfig] { oodSets.filter { !$0.name.isEmpty } }
    /// The validation OOD sets without the schema placeholder.
    public var explicitValidationSets: [OODSetConfig] { validationOODSets.filter { !$0.name.isEmpty } }
}
