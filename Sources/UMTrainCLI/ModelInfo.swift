import ArgumentParser
import CommandSupport
import Distributed
import Foundation
import TensorCore
import Training

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
        let convolution: ConvolutionSetting
        do {
            convolution = try ConvolutionSetting.from(environment: ProcessInfo.processInfo.environment)
            r = try ModelInfoReport.measure(model.section, gemmBatch: gemmBatch, convolution: convolution.algorithm)
        } catch {
            writeToStandardError("error: \(error)\n")
            throw ExitCode(1)
        }
        let s = r.section
        let bn = [.cnn5, .densenetBC100].contains(s.arch) ? ", \(s.batchNorm) BatchNorm" : ""
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
        print("  conv algorithms: \(r.algorithmCounts); default \(convolution.description)")
        if gemms {
            print("  conv GEMMs at batch \(gemmBatch) (per chunk):")
            for g in r.convGemms {
                print("    \(g.layer.padding(toLength: 36, withPad: " ", startingAt: 0)) M=\(g.m) N=\(g.n) K=\(g.k)  \(g.algorithm)")
            }
        }
    }
}
