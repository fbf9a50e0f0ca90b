/// The OOD scores `umtrain evaluate` computes (`evaluate.scores`). Every score is oriented so that
/// higher = more in-distribution; docs/metrics.md gives each one's definition and source.
public enum ScoreKind: String, ConfigEnum {
    /// Maximum softmax probability (Hendrycks & Gimpel, ICLR 2017).
    case msp
    /// Maximum logit (Hendrycks et al., ICML 2022).
    case maxLogit = "maxlogit"
    /// Energy, `T * logsumexp(z / T)` (Liu et al., NeurIPS 2020).
    case energy
    /// ODIN: temperature-scaled MSP after an input perturbation (Liang et al., ICLR 2018).
    case odin
    /// Negative minimum Mahalanobis distance to the class means (Lee et al., NeurIPS 2018).
    case mahalanobis
    /// Negative distance to the k-th nearest normalised training feature (Sun et al., ICML 2022).
    case knn
    /// Energy of the logits recomputed from clipped penultimate features (Sun et al., NeurIPS 2021).
    case react
    /// Generalised entropy of the softmax (Liu et al., CVPR 2023): `evaluate.gen_gamma`, `gen_m`.
    case gen
    /// Mean distance to the decision boundaries over the distance to the training mean (Liu & Qin, ICML 2024).
    case fdbd
    /// Energy after ASH pruning of the penultimate features (Djurisic et al., ICLR 2023):
    /// `evaluate.ash_variant` (s, b, p) at `evaluate.ash_percentile`.
    case ash
    /// Energy after SCALE rescaling of the penultimate features (Xu et al., ICLR 2024): `evaluate.scale_percentile`.
    case scale
    /// Relative Mahalanobis distance: class Gaussians minus a background Gaussian (Ren et al., 2021).
    case rmds
    /// Virtual-logit matching: energy minus alpha times the residual outside the principal subspace (Wang et al., CVPR 2022).
    case vim
    /// Energy times the nearest-neighbour guidance of an energy-scaled training-feature bank (Park et al., ICCV 2023).
    case nnguide

    public static let configHint = "e.g. scores: [msp, energy, odin]"

    /// `evaluate.scores` when a config gives none: the scores every report has carried so far
    /// (new detectors are opt-in, so an existing config's evaluation does not change).
    public static let defaults: [ScoreKind] = [.msp, .maxLogit, .energy, .odin, .mahalanobis, .knn, .react]

    /// Scores that need detectors fitted on the training ids' penultimate features.
    public var needsTrainingFeatures: Bool { [.mahalanobis, .knn, .react, .fdbd, .rmds, .vim, .nnguide].contains(self) }
}
