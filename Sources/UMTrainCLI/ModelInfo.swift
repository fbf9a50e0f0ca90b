import ArgumentParser
import Distributed
import Foundation
import NeuralNetwork
import TensorCore
import Training

/// Model options shared by `model-info` and `bench train` (the `model:` section of a run
/// config, on the command line).
struct ModelOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Architecture: \(ModelSection.architectures.joined(separator: ", ")).", valueName: "name"))
    var arch: String = "resnet20"

    @Option(help: "Input channels (1 grayscale, 3 RGB).")
    var inChannels: Int = 3

    @Option(help: ArgumentHelp("Input height = width, in pixels.", valueName: "pixels"))
    var imageSize: Int = 32

    @Option(help: "Number of classes (logits).")
    var numClasses: Int = 10

    @Option(help: "Base width of cnn5.")
    var width: Int = 32

    @Option(help: ArgumentHelp("BatchNorm kind where the architecture allows both (cnn5, densenet_bc100): affine or non_affine.",
                               valueName: "kind"))
    var batchNorm: String = "affine"

    @Option(help: "Dropout probability where the architecture has dropout (wrn40_2, densenet_bc100).")
    var dropout: Double = 0

    func validate() throws {
        guard ModelSection.architectures.contains(arch) else {
            throw ValidationError("--arch must be one of \(ModelSection.architectures.joined(separator: ", ")), got '\(arch)'.")
        }
        guard inChannels >= 1 else { throw ValidationError("--in-channels must be at least 1, got \(inChannels).") }
        guard imageSize >= 1 else { throw ValidationError("--image-size must be at least 1, got \(imageSize).") }
        guard numClasses >= 1 else { throw ValidationError("--num-classes must be at least 1, got \(numClasses).") }
        guard width >= 1 else { throw ValidationError("--width must be at least 1, got \(width).") }
        guard ["affine", "non_affine"].contains(batchNorm) else {
            throw ValidationError("--batch-norm must be affine or non_affine, got '\(batchNorm)'.")
        }
        guard dropout >= 0 && dropout < 1 else { throw ValidationError("--dropout must be in [0, 1), got \(dropout).") }
    }

    var section: ModelSection {
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
struct ConvGemmShape: Equatable {
    let layer: String
    let m, n, k: Int
    /// What the layer runs (`Conv2d.algorithmInUse`); the shape is the im2col GEMM either way.
    var algorithm = "im2col"
    /// `m * n * k` multiply-accumulates of one GEMM call.
    var macs: Int { m * n * k }
}

/// Size and cost of a model, measured by building it and running one forward pass.
struct ModelInfoReport {
    let section: ModelSection
    /// Trainable scalars (`requires_grad` parameters).
    let trainableParameters: Int
    /// Every Float scalar of the state dict (parameters and running statistics).
    let floatStateScalars: Int
    /// Int64 buffers (`num_batches_tracked`).
    let int64Buffers: Int
    /// Conv + linear multiply-accumulates of one forward pass per image.
    let forwardMACsPerImage: Int
    /// Number of Conv2d and Linear layers.
    let convLayers: Int, linearLayers: Int
    /// Every conv of the forward, as the GEMM it runs for a batch of `gemmBatch` images.
    let convGemms: [ConvGemmShape]

    /// Builds the model (seed 0) and runs one eval-mode forward of a zero batch of 1 image.
    ///
    /// - Throws: ``ConfigError`` from ``ModelFactory/make(_:seed:)`` (unknown architecture,
    ///   input too small).
    static func measure(_ section: ModelSection, gemmBatch: Int = 128) throws -> ModelInfoReport {
        let model = try ModelFactory.make(section, seed: 0)
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
    var algorithmCounts: String {
        var counts: [String: Int] = [:]
        for g in convGemms { counts[g.algorithm, default: 0] += 1 }
        return counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            .map { "\($0.value) \($0.key)" }.joined(separator: ", ")
    }

    /// The conv GEMM with the most multiply-accumulates per call (first one on ties).
    var largestConvGemm: ConvGemmShape? {
        convGemms.reduce(nil) { best, g in (best == nil || g.macs > best!.macs) ? g : best }
    }
}

/// `1234567` => `"1,234,567"`.
func grouped(_ n: Int) -> String {
    let digits = String(abs(n))
    var out = ""
    for (i, ch) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
        out.append(ch)
    }
    return (n < 0 ? "-" : "") + out
}

/// `umtrain model-info`: parameter count and forward multiply-accumulates of an architecture.
struct ModelInfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model-info",
        abstract: "Parameter count and forward multiply-accumulates (MACs) per image of an architecture.",
        discussion: """
        Builds the model and runs one forward pass of a single image in eval mode; each Conv2d \
        and Linear layer records the MACs it performed (conv: Cout x OH x OW x Cin x KH x KW; \
        linear: in x out, per image). Convention: conv + linear MACs only (as in the usual \
        CIFAR/ImageNet tables); BatchNorm, activations, pooling, residual additions and biases \
        are not counted. FLOPs = 2 x MACs; one training step costs about 3 x the forward. \
        Examples at 3x32x32, 10 classes: resnet20 40.6 M, wrn40_2 327.6 M, densenet_bc100 287.9 M, \
        resnet18 555.4 M; resnet50 at 3x224x224, 1000 classes: 4.09 G.
        """
    )

    @OptionGroup var model: ModelOptions

    @Option(help: "Batch size for the conv-GEMM shapes listed with --gemms (the chunk each Conv2d runs at once).")
    var gemmBatch: Int = 128

    @Flag(help: "Also list every conv as its im2col GEMM (M = Cout, N = images x OH x OW per chunk, K = Cin x KH x KW; the shape even for Winograd layers) and the algorithm it runs.")
    var gemms = false

    func validate() throws {
        guard gemmBatch >= 1 else { throw ValidationError("--gemm-batch must be at least 1, got \(gemmBatch).") }
    }

    func run() throws {
        _ = BLASKernel.configureThreads(requested: nil)
        let r: ModelInfoReport
        do {
            r = try ModelInfoReport.measure(model.section, gemmBatch: gemmBatch)
        } catch {
            writeToStandardError("error: \(error)\n")
            throw ExitCode(1)
        }
        let s = r.section
        let bn = ["cnn5", "densenet_bc100"].contains(s.arch) ? ", \(s.batchNorm) BatchNorm" : ""
        print("model \(s.arch): input \(s.inChannels)x\(s.imageSize)x\(s.imageSize), \(s.numClasses) classes\(bn)")
        print("  parameters (trainable):        \(grouped(r.trainableParameters))")
        print("  state (params + float buffers): \(grouped(r.floatStateScalars)) floats + \(r.int64Buffers) int64 counters "
              + "(\(fmt(Double(r.floatStateScalars * 4 + r.int64Buffers * 8) / 1e6, 2)) MB)")
        print("  forward MACs per image:        \(grouped(r.forwardMACsPerImage)) (\(fmt(Double(r.forwardMACsPerImage) / 1e6, 1)) M; "
              + "conv + linear only, \(r.convLayers) conv and \(r.linearLayers) linear layers)")
        print("  forward FLOPs per image:       \(fmt(2 * Double(r.forwardMACsPerImage) / 1e9, 3)) GFLOP (2 x MACs); "
              + "training about \(fmt(6 * Double(r.forwardMACsPerImage) / 1e9, 3)) GFLOP (3 x forward)")
        if let g = r.largestConvGemm {
            print("  largest conv GEMM at batch \(gemmBatch): \(g.layer) M=\(g.m) N=\(g.n) K=\(g.k) (im2col shape)")
        }
        print("  conv algorithms: \(r.algorithmCounts); default \(Conv2d.defaultAlgorithmDescription)")
        if gemms {
            print("  conv GEMMs at batch \(gemmBatch) (per chunk):")
            for g in r.convGemms {
                print("    \(g.layer.padding(toLength: 36, withPad: " ", startingAt: 0)) M=\(g.m) N=\(g.n) K=\(g.k)  \(g.algorithm)")
            }
        }
    }
}
