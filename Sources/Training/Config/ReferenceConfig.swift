import Yams

/// A value of a UM-reference config key that cannot be translated.
public struct ReferenceKeyError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// The UM reference code's configuration keys, read as ours (docs/configuration.md).
extension RunConfig {
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


    /// The reference's per-score switches (`msp`/`odin`/`energy`/`mahalanobis: true|false`):
    /// each is read into `evaluate.reference_switch_<score>`, then `evaluate.scores` is set to the
    /// switched-on scores by ``applyReferenceScoreSwitches(notes:)``.
    static let referenceScoreSwitches: [ScoreKind] = [.msp, .odin, .energy, .mahalanobis]

    static func referenceSwitchTranslator(_ score: ScoreKind) -> @Sendable (Node) throws -> [(String, Node)] {
        { v in
            guard let b = v.bool else { throw ReferenceKeyError("\(score): expected true or false") }
            return [("evaluate.reference_switch_\(score.rawValue)", Node(b ? "true" : "false"))]
        }
    }

    mutating func applyReferenceScoreSwitches(notes: inout [String]) {
        let switches: [(ScoreKind, String)] = [(.msp, evaluate.referenceSwitchMSP), (.odin, evaluate.referenceSwitchODIN),
                                               (.energy, evaluate.referenceSwitchEnergy),
                                               (.mahalanobis, evaluate.referenceSwitchMahalanobis)]
        if switches.contains(where: { !$0.1.isEmpty }) {
            evaluate.scores = switches.filter { $0.1 == "true" }.map(\.0)
            notes.append("reference score switches give evaluate.scores = \(evaluate.scores.map(\.rawValue))")
        }
    }
}
