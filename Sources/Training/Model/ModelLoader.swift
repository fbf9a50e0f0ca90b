import Distributed
import Foundation
import NeuralNetwork
import SafeTensors

/// Loading model weights given by `--checkpoint`.
public enum ModelLoader {
    /// Builds the model of `config.model` and loads `path` into it (strict). Rank 0 reads the
    /// file and broadcasts it, so only rank 0 needs the path. Collective.
    ///
    /// - Throws: ``ConfigError`` when the file is missing or was written for a different
    ///   architecture (naming both), `SafeTensorsError` listing every mismatched key.
    public static func load(config: RunConfig, checkpoint path: String, comm: Communicator,
                            convolution: Conv2d.Algorithm = .automatic) throws -> Classifier {
        var bytes: [UInt8] = []
        var problem = ""
        if comm.rank == 0 {
            if let d = FileManager.default.contents(atPath: path) { bytes = [UInt8](d) } else { problem = "missing" }
        }
        problem = try comm.broadcast(string: problem, root: 0)
        if !problem.isEmpty {
            throw ConfigError.invalidValue(file: path, key: "--checkpoint", expected: "a .safetensors file written by umtrain (or converted)",
                                           actual: "no such file", hint: "train first (runs/<name>/train/model.safetensors) or fix the path.")
        }
        try comm.broadcastResizing(&bytes, root: 0)
        let file = try SafeTensorsFile.decode(bytes, source: path)
        if let wrapped = file.records.first(where: { $0.name.hasPrefix("module.") || $0.name.hasPrefix("_orig_mod.") }) {
            throw ConfigError.invalidValue(file: path, key: "tensor names", expected: "this tool's names (e.g. conv1.weight)",
                                           actual: "'\(wrapped.name)': the prefix that nn.DataParallel/DDP ('module.') or torch.compile ('_orig_mod.') adds",
                                           hint: "convert the PyTorch checkpoint with launch/convert-torch-checkpoint.py, which strips the prefix (docs/import.md).")
        }
        if let arch = file.metadata[ModelFactory.archKey], arch != config.model.arch.rawValue {
            throw ConfigError.invalidValue(file: path, key: "model.arch", expected: "'\(config.model.arch)' (from the config)",
                                           actual: "a checkpoint of '\(arch)'", hint: "use the config the checkpoint was trained with, or --set model.arch=\(arch).")
        }
        if let section = ModelFactory.modelSection(fromMetadata: file.metadata), section != config.model {
            var diffs: [String] = []
            if section.width != config.model.width { diffs.append("width \(section.width) vs \(config.model.width)") }
            if section.inChannels != config.model.inChannels { diffs.append("in_channels \(section.inChannels) vs \(config.model.inChannels)") }
            if section.numClasses != config.model.numClasses { diffs.append("num_classes \(section.numClasses) vs \(config.model.numClasses)") }
            if section.batchNorm != config.model.batchNorm { diffs.append("batch_norm \(section.batchNorm) vs \(config.model.batchNorm)") }
            if !diffs.isEmpty {
                throw ConfigError.invalidValue(file: path, key: "model", expected: "the model the config describes",
                                               actual: "a checkpoint with " + diffs.joined(separator: ", ") + " (checkpoint vs config)",
                                               hint: "use the config the checkpoint was trained with.")
            }
        }
        let model = try ModelFactory.make(config.model, seed: UInt64(config.seed), convolution: convolution)
        try StateDict.load(file, into: model, strict: true, source: path)
        return model
    }
}
