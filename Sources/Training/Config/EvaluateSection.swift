import OODDetection

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
    /// Scores to compute (higher = more in-distribution for all of them).
    public var scores: [ScoreKind] = ScoreKind.allCases
    /// The offline benchmark manifest (launch/prepare-data.sh); every set with role ood is used.
    public var oodManifest = "data/manifest.json"
    /// Extra (or, with an empty manifest path, the only) OOD sets.
    public var oodSets: [OODSetConfig] = [OODSetConfig()]
    /// FPR95 convention: strict (ID positive, first threshold with ID recall >= 95%),
    /// reference (closest recall, the UM/energy-OOD code), openood (OOD positive).
    public var fprMode = FPRMode.strict
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

    /// Range checks of this section.
    /// - Throws: ``ConfigError/invalidValue(file:key:expected:actual:hint:)`` naming the key.
    public func validate(file: String) throws {
        let bad = ConfigError.invalid(file: file)
        if knnK < 1 { throw bad("evaluate.knn_k", "at least 1", knnK, "50 is the KNN paper's CIFAR setting") }
        if !(reactPercentile > 0 && reactPercentile <= 100) {
            throw bad("evaluate.react_percentile", "a percentile in (0, 100]", reactPercentile, "90 is ReAct's default")
        }
        if !(odinTemperature > 0) { throw bad("evaluate.odin_temperature", "positive", odinTemperature, "1000 in ODIN") }
        if !(odinEpsilon >= 0) { throw bad("evaluate.odin_epsilon", "a step >= 0 in [0,1] pixel units", odinEpsilon, "0.0014 in ODIN") }
    }
}
