import ArgumentParser
import Foundation
import NeuralNetwork
import TensorCore
import Training

extension ModelArchitecture: ExpressibleByArgument {}
extension BatchNormKind: ExpressibleByArgument {}
extension BatchNormMode: ExpressibleByArgument {}

/// Model options shared by `model-info` and `bench train` (the `model:` section of a run
/// config, on the command line).
package struct ModelOptions: ParsableArguments {
    package init() {}

    @Option(help: ArgumentHelp("Architecture: \(ModelArchitecture.validValues).", valueName: "name"))
    package var arch: ModelArchitecture = .resnet20

    @Option(help: "Input channels (1 grayscale, 3 RGB).")
    package var inChannels: Int = 3

    @Option(help: ArgumentHelp("Input height = width, in pixels.", valueName: "pixels"))
    package var imageSize: Int = 32

    @Option(help: "Number of classes (logits).")
    package var numClasses: Int = 10

    @Option(help: "Base width of cnn5.")
    package var width: Int = 32

    @Option(help: ArgumentHelp("BatchNorm kind where the architecture allows both (cnn5, densenet_bc100): affine or non_affine.",
                               valueName: "kind"))
    package var batchNorm: BatchNormKind = .affine

    @Option(help: "Dropout probability where the architecture has dropout (wrn40_2, densenet_bc100).")
    package var dropout: Double = 0

    package func validate() throws {
        guard inChannels >= 1 else { throw ValidationError("--in-channels must be at least 1, got \(inChannels).") }
        guard imageSize >= 1 else { throw ValidationError("--image-size must be at least 1, got \(imageSize).") }
        guard numClasses >= 1 else { throw ValidationError("--num-classes must be at least 1, got \(numClasses).") }
        guard width >= 1 else { throw ValidationError("--width must be at least 1, got \(width).") }
        guard dropout >= 0 && dropout < 1 else { throw ValidationError("--dropout must be in [0, 1), got \(dropout).") }
    }

    package var section: ModelSection {
        var m = ModelSection()
        m.arch = arch
        m.inChannels = inChannels
        m.imageSize = imageSize
        m.numClasses = numClasses
        m.width = width
        m.batchNorm = batchNorm
        m.dropout = dropout
        return m
    }
}

/// One convolution as the im2col GEMM our `Conv2d` runs for a batch: `W[M = Cout, K =
/// Cin*KH*KW] x cols[K, N = chunk * OH * OW]` (`chunk` samples side by side, bounded by
/// `Conv2d.targetColumns` and `maxColumnFloats`).
package struct ConvGemmShape: Equatable {
    package let layer: String
    package let m, n, k: Int
    /// What the layer runs (`Conv2d.algorithmInUse`); the shape is the im2col GEMM either way.
    package var algorithm = "im2col"
    /// `m * n * k` multiply-accumulates of one GEMM call.
    package var macs: Int { m * n * k }
}

/// Size and cost of a model, measured by building it and running one forward pass.
package struct ModelInfoReport {
    package let section: ModelSection
    /// Trainable scalars (`requires_grad` parameters).
    package let trainableParameters: Int
    /// Every Float scalar of the state dict (parameters and running statistics).
    package let floatStateScalars: Int
    /// Int64 buffers (`num_batches_tracked`).
    package let int64Buffers: Int
    /// Conv + linear multiply-accumulates of one forward pass per image.
    package let forwardMACsPerImage: Int
    /// Number of Conv2d and Linear layers.
    package let convLayers: Int, linearLayers: Int
    /// Every conv of the forward, as the GEMM it runs for a batch of `gemmBatch` images.
    package let convGemms: [ConvGemmShape]

    /// Builds the model (seed 0) and runs one eval-mode forward of a zero batch of 1 image.
    ///
    /// - Throws: ``ConfigError`` from `ModelFactory.make` (input too small).
    package static func measure(_ section: ModelSection, gemmBatch: Int = 128,
                                convolution: Conv2d.Algorithm = .automatic) throws -> ModelInfoReport {
        let model = try ModelFactory.make(section, seed: 0, convolution: convolution)
        let x = Tensor(zeros: [1, section.inChannels, section.imageSize, section.imageSize])
        _ = model.forward(x, context: .eval)
        let macs = model.lastForwardMACsInTree
        let layers = model.namedDescendants()
        let convs = layers.compactMap { entry in (entry.layer as? Conv2d).map { (entry.path, $0) } }
        let linears = layers.filter { $0.layer is Linear }.count
        let gemms = convs.map { name, c -> ConvGemmShape in
            let rows = c.inChannels * c.kernelSize.height * c.kernelSize.width
            let plane = c.lastForwardMACs / max(c.outChannels * rows, 1)  // batch 1: OH * OW
            let byTarget = max(1, c.targetColumns / max(plane, 1))
            let byMemory = max(1, c.maxColumnFloats / max(rows * plane, 1))
            let chunk = max(1, min(gemmBatch, byTarget, byMemory))
            return ConvGemmShape(layer: name, m: c.outChannels, n: chunk * plane, k: rows, algorithm: c.algorithmInUse)
        }
        let floats = model.stateEntries().reduce(0) { acc, e in
            if case .float(let p) = e.entry { return acc + p.count } else { return acc }
        }
        return ModelInfoReport(section: section, trainableParameters: model.trainableParameterCount, floatStateScalars: floats,
                               int64Buffers: model.int64Buffers.count, forwardMACsPerImage: macs, convLayers: convs.count,
                               linearLayers: linears, convGemms: gemms)
    }

    /// `"12 winograd F(4x4,3x3), 3 im2col"`: conv layers per algorithm, most used first.
    package var algorithmCounts: String {
        var counts: [String: Int] = [:]
        for g in convGemms { counts[g.algorithm, default: 0] += 1 }
        return counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            .map { "\($0.value) \($0.key)" }.joined(separator: ", ")
    }

    /// The conv GEMM with the most multiply-accumulates per call (first one on ties).
    package var largestConvGemm: ConvGemmShape? {
        convGemms.reduce(nil) { best, g in (best == nil || g.macs > best!.macs) ? g : best }
    }
}

/// `1234567` => `"1,234,567"`.
package func grouped(_ n: Int) -> String {
    let digits = String(abs(n))
    var out = ""
    for (i, ch) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
        out.append(ch)
    }
    return (n < 0 ? "-" : "") + out
}

