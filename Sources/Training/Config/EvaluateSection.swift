import OODDetection

/// One OOD test set.
public struct OODSetConfig: Codable, Equatable, Sendable {
    public var name = ""
    /// IDX image file (gzip or raw).
    public var images = ""
    /// Synthetic sets (noise) are reported apart and never averaged with real sets.
    public var synthetic = false
    /// A group name (for example near or far, as OpenOOD reports near- and far-OOD): the reports
    /// add an average per group beside the average over all real sets. An entry with a name and a
    /// group but no images puts the manifest's set of that name into the group.
    public var group = ""

    public init() {}
    public init(name: String, images: String, synthetic: Bool, group: String = "") {
        self.name = name
        self.images = images
        self.synthetic = synthetic
        self.group = group
    }

    enum CodingKeys: String, CodingKey { case name, images, synthetic, group }
}

/// OOD evaluation: scores, metrics and their conventions.
public struct EvaluateSection: Codable, Equatable, Sendable {
    /// Scores to compute (higher = more in-distribution for all of them).
    public var scores: [ScoreKind] = ScoreKind.defaults
    /// The offline benchmark manifest (launch/prepare-data.sh); every set with role ood is used.
    public var oodManifest = "data/manifest.json"
    /// Extra (or, with an empty manifest path, the only) OOD sets.
    public var oodSets: [OODSetConfig] = [OODSetConfig()]
    /// FPR95 convention: strict (ID positive, first threshold with ID recall >= 95%),
    /// reference (closest recall, the UM/energy-OOD code), openood (OOD positive).
    public var fprMode = FPRMode.strict
    /// AUPR convention: average_precision (scikit-learn's average_precision_score, the UM paper's)
    /// or trapezoid (auc(recall, precision), what OpenOOD and pytorch-ood print).
    public var aupr = AUPRMode.averagePrecision
    /// Drop non-finite scores (their count is reported) instead of failing.
    public var excludeNonFinite = false
    /// Bootstrap replicates behind the 95% intervals of every metric (percentile bootstrap,
    /// ID and OOD resampled separately); 0 turns the intervals off.
    public var bootstrap = 2000
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
    /// GEN (Liu et al., CVPR 2023): exponent gamma and the number M of top classes (OpenOOD: 0.1, 100).
    public var genGamma = 0.1
    public var genM = 100
    /// ASH (Djurisic et al., ICLR 2023): `s` (rescale), `b` (binarise) or `p` (prune only), and
    /// the percentile of each sample's activations pruned (OpenOOD searches 65-95).
    public var ashVariant = AshVariant.s
    public var ashPercentile = 90.0
    /// SCALE (Xu et al., ICLR 2024): the percentile defining the kept mass (OpenOOD: 85).
    public var scalePercentile = 85.0
    /// ViM's principal-subspace dimension; 0 = the paper's rule (1000 for D >= 2048, 512 for
    /// D = 768, D / 2 otherwise).
    public var vimDim = 0
    /// NNGuide's k nearest bank entries (capped at the bank size); the bank is every training feature.
    public var nnguideK = 100
    /// Tune detector hyperparameters (ODIN temperature/epsilon, KNN k, ReAct percentile, GEN
    /// gamma and M, ASH and SCALE percentiles; OpenOOD v1.5's grids) on the ID validation split
    /// (never the test sets) and `validation_ood_sets`, before scoring.
    public var tune = false
    /// OOD sets used only for tuning (must not be among the OOD test sets).
    public var validationOODSets: [OODSetConfig] = [OODSetConfig()]
    /// Set only by the UM reference's `msp`/`odin`/`energy`/`mahalanobis` switches
    /// ("true"/"false"; empty when not given).
    public var referenceSwitchMSP = ""
    public var referenceSwitchODIN = ""
    public var referenceSwitchEnergy = ""
    public var referenceSwitchMahalanobis = ""

    /// The ranges of this section's numeric keys (see ``ConfigRange``).
    static var ranges: [ConfigRange<EvaluateSection>] {
        [.int(\.batchSize, "evaluate.batch_size", 1...1_000_000, hint: "e.g. 500"),
         .int(\.bootstrap, "evaluate.bootstrap", 0...1_000_000, hint: "2000 replicates by default; 0 turns the intervals off"),
         .number(\.energyTemperature, "evaluate.energy_temperature", 0, 1e6, lowerOpen: true, hint: "1 is the energy score as published"),
         .number(\.odinTemperature, "evaluate.odin_temperature", 0, 1e9, lowerOpen: true, hint: "1000 in ODIN"),
         .number(\.odinEpsilon, "evaluate.odin_epsilon", 0, 1, hint: "the input step in [0, 1] pixel units; 0.0014 in ODIN"),
         .int(\.knnK, "evaluate.knn_k", 1...1_000_000, hint: "50 is the KNN paper's CIFAR setting"),
         .number(\.reactPercentile, "evaluate.react_percentile", 0, 100, lowerOpen: true, hint: "90 is ReAct's default"),
         .number(\.mahalanobisRidge, "evaluate.mahalanobis_ridge", 0, 1e6, hint: "1e-6 by default; 0 = none"),
         .number(\.genGamma, "evaluate.gen_gamma", 0, 1e3, lowerOpen: true, hint: "0.1 is GEN's default"),
         .int(\.genM, "evaluate.gen_m", 1...1_000_000, hint: "100 (capped at the class count)"),
         .number(\.ashPercentile, "evaluate.ash_percentile", 0, 100, upperOpen: true, hint: "90 prunes 90% of each sample's activations"),
         .number(\.scalePercentile, "evaluate.scale_percentile", 0, 100, upperOpen: true, hint: "85 is SCALE's default"),
         .int(\.vimDim, "evaluate.vim_dim", 0...1_000_000, hint: "0 = the paper's rule (D / 2 for small features)"),
         .int(\.nnguideK, "evaluate.nnguide_k", 1...1_000_000, hint: "100 is NNGuide's default")]
    }

    public init() {}

    enum CodingKeys: String, CodingKey {
        case scores
        case bootstrap
        case oodManifest = "ood_manifest", oodSets = "ood_sets", fprMode = "fpr_mode", aupr, excludeNonFinite = "exclude_non_finite",
             batchSize = "batch_size", energyTemperature = "energy_temperature", odinTemperature = "odin_temperature",
             odinEpsilon = "odin_epsilon", knnK = "knn_k", reactPercentile = "react_percentile",
             mahalanobisRidge = "mahalanobis_ridge", tune, genGamma = "gen_gamma", genM = "gen_m", ashVariant = "ash_variant",
             ashPercentile = "ash_percentile", scalePercentile = "scale_percentile", vimDim = "vim_dim", nnguideK = "nnguide_k", validationOODSets = "validation_ood_sets", referenceSwitchMSP = "reference_switch_msp",
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
        for r in Self.ranges { try r.check(self, file: file) }
    }

    /// The ASH variant as a shaping rule.
    public var ashShaping: ActivationShaping {
        switch ashVariant {
        case .s: return .ashS
        case .b: return .ashB
        case .p: return .ashP
        }
    }
}
