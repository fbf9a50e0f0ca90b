import OODDetection

/// A closed vocabulary of a configuration key: a `String`-raw enum whose raw values are the
/// words written in YAML and on the command line. Decoding an unknown word throws an error that
/// lists `allCases`, so the list of valid values can never drift from the code that uses them.
/// `description` is the raw value, so logs and reports print the YAML word.
public protocol ConfigEnum: RawRepresentable, CaseIterable, Codable, Hashable, Sendable, CustomStringConvertible
where RawValue == String {
    /// Shown after "Hint:" when an unknown value is refused.
    static var configHint: String { get }
}

extension ConfigEnum {
    public var description: String { rawValue }

    /// "a, b or c": the valid values in declaration order.
    public static var validValues: String {
        let words = allCases.map(\.rawValue)
        guard words.count > 1 else { return words.first ?? "" }
        return words.dropLast().joined(separator: ", ") + " or " + words.last!
    }

    public init(from decoder: Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        guard let value = Self(rawValue: raw) else {
            throw ConfigValueError(codingPath: decoder.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue },
                                   expected: "one of \(Self.validValues)", actual: "'\(raw)'", hint: Self.configHint)
        }
        self = value
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
}

/// An unknown word for a closed vocabulary, thrown while decoding; `ConfigLoader` turns it into
/// ``ConfigError/invalidValue(file:key:expected:actual:hint:)`` naming the file and dotted key.
public struct ConfigValueError: Error, CustomStringConvertible {
    public let codingPath: [String]
    public let expected: String
    public let actual: String
    public let hint: String
    public var key: String { codingPath.joined(separator: ".") }
    public var description: String { "key '\(key)' must be \(expected), got \(actual). Hint: \(hint)" }
}

/// `model.arch`: the model zoo (`umtrain model-info`).
public enum ModelArchitecture: String, ConfigEnum {
    case cnn5, lenet, resnet20, resnet18, wrn40_2
    case densenetBC100 = "densenet_bc100"
    case resnet50
    public static let configHint = "run `umtrain model-info --help` for the model zoo."
}

/// `model.batch_norm`: BatchNorm with learned scale and shift, or without (the UM reference's
/// `NonAffineBatchNorm`).
public enum BatchNormKind: String, ConfigEnum {
    case affine
    case nonAffine = "non_affine"
    public static let configHint = "the UM reference uses non_affine."
}

/// `data.format`: MNIST-style IDX files (raw or gzip), CIFAR binary folders, or a class-folder
/// tree of JPEG/PNG images.
public enum DataFormat: String, ConfigEnum {
    case idx, cifar10, cifar100, folder
    public static let configHint = "Fashion-MNIST is idx."
}

extension SampleSet.Loading: ConfigEnum {
    public static let configHint = "auto keeps sets up to 4 GiB decoded in memory."
}

/// `train.lr_scaling`: `none` uses `train.lr` as given; `linear` multiplies it by
/// `batch_size / reference_batch_size` (Goyal et al. 2017).
public enum LearningRateScaling: String, ConfigEnum {
    case unscaled = "none"
    case linear
    public static let configHint = "linear multiplies lr by batch_size / reference_batch_size."
}

/// `train.schedule` and `finetune.schedule` (see `LearningRateSchedule`).
public enum ScheduleKind: String, ConfigEnum {
    case constant, step
    case multiStep = "multistep"
    case cosine
    public static let configHint = "the UM reference uses cosine."
}

/// `train.bn_mode`: BatchNorm statistics of the global batch (summed over ranks) or of each
/// rank's share (PyTorch DDP's default).
public enum BatchNormMode: String, ConfigEnum {
    case sync, local
    public static let configHint = "sync makes N ranks equal one process with the same global batch."
}

/// `estimate.rule`: how the atypical-sample mask is chosen (see `AtypicalRule`).
/// `evaluate.ash_variant`: how ASH reshapes the kept activations.
public enum AshVariant: String, ConfigEnum {
    /// Rescale by exp(sum before / sum kept) (ASH-S, the paper's best).
    case s
    /// Binarise to (sum before) / k (ASH-B).
    case b
    /// Prune only (ASH-P).
    case p
    public static let configHint = "s rescales the kept activations (ASH-S), b binarises, p only prunes."
}

/// `estimate.xi_rule`: how the estimate stage recommends xi (written to estimate.json, used by
/// `um.xi: 0`).
public enum XiRule: String, ConfigEnum {
    /// The paper's estimator: the median over masks of the mean masked loss at `estimate.keep_ratio`.
    case mask
    /// `estimate.xi_position` of the way from the training loss to the held-out loss.
    case position
    public static let configHint = "mask is the paper's estimator; position places xi between the training and held-out loss."
}

public enum AtypicalRuleName: String, ConfigEnum {
    case flip, quantile, increase
    public static let configHint = "flip is the default."
}

/// `umap.selection`: top-k of the scores per layer, or one threshold over the whole model.
public enum MaskSelection: String, ConfigEnum {
    case layer, model
    public static let configHint = "layer-wise top-k is the default."
}

extension FPRMode: ConfigEnum {
    public static let configHint = "strict is the default (ID positive)."
}
