import Foundation
import NeuralNetwork
import TensorCore
import SafeTensors

/// Builds models from a ``ModelSection`` and records what was built in checkpoint metadata,
/// so a checkpoint file alone says which model it holds.
public enum ModelFactory {
    /// Metadata key naming the architecture in our safetensors files.
    public static let archKey = "umtrain.arch"
    /// Metadata key holding the model section as JSON (in_channels, image_size, ...).
    public static let argsKey = "umtrain.model"

    /// Builds the model with parameters initialised from `seed` (identical on every rank).
    ///
    /// - Throws: ``ConfigError/invalidValue(file:key:expected:actual:hint:)`` for an
    ///   architecture that is not built yet or an unsupported input size.
    /// - Parameter convolution: the algorithm of every Conv2d (`UMTRAIN_CONV_ALGORITHM`).
    public static func make(_ m: ModelSection, seed: UInt64, convolution: Conv2d.Algorithm = .automatic) throws -> Classifier {
        // Architectures whose spatial pipeline needs a minimum input size.
        let minimumSize: [ModelArchitecture: Int] = [.lenet: 28, .resnet20: 8, .resnet18: 8, .wrn40_2: 4, .densenetBC100: 4, .resnet50: 32]
        if let minimum = minimumSize[m.arch], m.imageSize < minimum {
            throw ConfigError.invalidValue(file: "model", key: "model.image_size", expected: ">= \(minimum) for \(m.arch)",
                                           actual: "\(m.imageSize)", hint: "its stride-2 stages need at least that many pixels.")
        }
        let model: Classifier
        switch m.arch {
        case .cnn5:
            model = Models.cnn5(inChannels: m.inChannels, numClasses: m.numClasses, width: m.width,
                                affineBatchNorm: m.batchNorm == .affine, seed: seed)
        case .lenet:
            guard m.imageSize == 28 || m.imageSize == 32 else {
                throw ConfigError.invalidValue(file: "model", key: "model.image_size", expected: "28 or 32 for lenet",
                                               actual: "\(m.imageSize)", hint: "LeNet-5 is defined for 28x28 and 32x32 inputs.")
            }
            model = Models.lenet(inChannels: m.inChannels, inputSize: m.imageSize, numClasses: m.numClasses, seed: seed)
        case .resnet20:
            model = Models.resnet20(inChannels: m.inChannels, numClasses: m.numClasses, seed: seed)
        case .resnet18:
            model = Models.resnet18(inChannels: m.inChannels, numClasses: m.numClasses, seed: seed)
        case .wrn40_2:
            model = Models.wrn40_2(inChannels: m.inChannels, numClasses: m.numClasses, dropRate: Float(m.dropout), seed: seed)
        case .densenetBC100:
            model = Models.densenetBC100(inChannels: m.inChannels, numClasses: m.numClasses,
                                         dropRate: Float(m.dropout), affineBatchNorm: m.batchNorm == .affine, seed: seed)
        case .resnet50:
            model = Models.resnet50(inChannels: m.inChannels, numClasses: m.numClasses, seed: seed)
        }
        model.setConvolutionAlgorithm(convolution)
        return model
    }

    /// The metadata stored with weights of a model built from `m`.
    public static func metadata(_ m: ModelSection) -> [String: String] {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let args = (try? enc.encode(m)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return [archKey: m.arch.rawValue, argsKey: args, "format": "pt"]
    }

    /// The model section recorded in a checkpoint's metadata, if any.
    public static func modelSection(fromMetadata md: [String: String]) -> ModelSection? {
        guard let args = md[argsKey], let data = args.data(using: .utf8) else { return nil }
        return try? JSONDecoder().decode(ModelSection.self, from: data)
    }
}

/// Model weights <-> safetensors, with PyTorch `state_dict` names.
public enum StateDict {
    /// Every state entry of `model` (parameters, buffers, int64 buffers) as records.
    public static func records(of model: any Layer) -> [SafeTensorsRecord] {
        model.stateEntries().map { name, entry in
            switch entry {
            case .float(let p): return SafeTensorsRecord(name: name, shape: p.shape, floats: p.value.scalars)
            case .int64(let b): return SafeTensorsRecord(name: name, shape: [], int64s: [b.value])
            }
        }
    }

    /// The expected specs of `model` (for strict matching).
    public static func specs(of model: any Layer) -> [SafeTensorsSpec] {
        model.stateEntries().map { name, entry in
            switch entry {
            case .float(let p): return SafeTensorsSpec(name: name, dtype: .f32, shape: p.shape)
            case .int64: return SafeTensorsSpec(name: name, dtype: .i64, shape: [])
            }
        }
    }

    /// Loads matching records into `model`. Weights holding NaN or infinity are refused before
    /// anything is loaded: a diverged or corrupted checkpoint must not evaluate to plausible
    /// numbers.
    ///
    /// - Parameters:
    ///   - strict: every key must match by name, dtype and shape (one error lists all offenders).
    /// - Returns: the report (non-empty only in non-strict mode).
    /// - Throws: `SafeTensorsError` listing every missing, unexpected and wrongly-shaped key;
    ///   ``ConfigError`` naming the file and each tensor with non-finite values and their count.
    @discardableResult
    public static func load(_ file: SafeTensorsFile, into model: any Layer, strict: Bool = true,
                            source: String) throws -> StateDictReport {
        let match = try file.matchStateDict(expected: specs(of: model), strict: strict, source: source)
        var byName: [String: SafeTensorsRecord] = [:]
        for r in match.matched { byName[r.name] = r }
        var floats: [String: [Float]] = [:]
        var nonFinite: [String] = []
        for (name, entry) in model.stateEntries() {
            guard case .float = entry, let r = byName[name] else { continue }
            let values = try r.floats()
            let bad = values.reduce(0) { $1.isFinite ? $0 : $0 + 1 }
            if bad > 0 { nonFinite.append("\(name) (\(bad) of \(values.count))") }
            floats[name] = values
        }
        if !nonFinite.isEmpty {
            throw ConfigError.invalidValue(file: source, key: "weights", expected: "finite values (no NaN or infinity)",
                                           actual: "non-finite values in \(nonFinite.count) tensor(s): "
                                               + nonFinite.prefix(5).joined(separator: ", ") + (nonFinite.count > 5 ? ", ..." : ""),
                                           hint: "the file comes from a diverged run or is corrupt; use an earlier checkpoint "
                                               + "(checkpoints/step-*) or retrain with a lower learning rate.")
        }
        for (name, entry) in model.stateEntries() {
            guard let r = byName[name] else { continue }
            switch entry {
            case .float(let p):
                p.value.assign(Tensor(shape: p.shape, values: floats[name]!))
            case .int64(let b):
                b.value = try r.int64s().first ?? 0
            }
        }
        return match.report
    }
}

/// Writes a model's weights with our metadata.
public enum SafeTensorsFileWriter {
    public static func model(_ model: any Layer, config: RunConfig) -> SafeTensorsFile {
        SafeTensorsFile(records: StateDict.records(of: model), metadata: ModelFactory.metadata(config.model))
    }
}
