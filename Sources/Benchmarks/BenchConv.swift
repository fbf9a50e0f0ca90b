import ArgumentParser
import CommandSupport
import Foundation
import NeuralNetwork
import TensorCore
import Training

/// `umtrain bench conv`: every conv layer of a model (forward + backward) against OpenBLAS
/// sgemm on the im2col GEMMs of the same shapes.
struct BenchConv: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conv",
        abstract: "Each conv layer's training rate (forward + input and weight gradients) against OpenBLAS sgemm on the same GEMM shapes.",
        discussion: """
        For every distinct conv layer of the model (same channels, input size, kernel, stride and \
        padding counted once, with its multiplicity), a fresh Conv2d of that shape runs forward \
        (train mode) and backward on --batch random images; its rate is 3 x 2 x MACs / time, \
        with MACs = N x Cout x OH x OW x Cin x KH x KW (direct convolution). The sgemm rate \
        is OpenBLAS on the three im2col GEMMs of the same layer, each as one call over the \
        whole batch: forward W[Cout, K] x cols[K, N*OH*OW], input gradient W^T x dY, weight \
        gradient dY x cols^T (K = Cin x KH x KW). ratio = conv rate / sgemm rate. Winograd \
        layers do fewer multiplies than the MACs counted, so their ratio can exceed 1. Times \
        are medians over --repeats after one warm-up, with --blas-threads threads; run it as one
        process (under mpirun every rank times the same layers and rank 0 reports).
        Example: umtrain bench conv --arch wrn40_2
        """
    )

    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var model: ModelOptions

    @Option(help: "Images per timed call.")
    var batch: Int = 128

    @Option(help: "Timed repeats per layer (median reported).")
    var repeats: Int = 5

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1, got \(batch).") }
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1, got \(repeats).") }
    }

    private struct Shape: Hashable {
        let cin, cout, h, w, kh, kw, sh, sw, ph, pw: Int
        let bias: Bool
    }

    func run() throws {
        runOnRanks(runtime) { rt in
            rt.log(try rt.header(command: "bench conv"))
            let section = model.section
            let net = try ModelFactory.make(section, seed: 0, convolution: rt.convolution.algorithm)
            _ = net.forward(Tensor(zeros: [1, section.inChannels, section.imageSize, section.imageSize]), context: .eval)
            var order: [Shape] = []
            var count: [Shape: Int] = [:]
            var firstName: [Shape: String] = [:]
            for (path, layer) in net.namedDescendants() {
                guard let c = layer as? Conv2d, let s = c.lastInputShape else { continue }
                let key = Shape(cin: c.inChannels, cout: c.outChannels, h: s[2], w: s[3], kh: c.kernelSize.height,
                                kw: c.kernelSize.width, sh: c.stride.height, sw: c.stride.width,
                                ph: c.padding.height, pw: c.padding.width, bias: c.bias != nil)
                if count[key] == nil { order.append(key); firstName[key] = path }
                count[key, default: 0] += 1
            }
            rt.log("model \(section.arch) \(section.inChannels)x\(section.imageSize)x\(section.imageSize): "
                   + "\(order.count) distinct conv shapes, batch \(batch), \(repeats) repeats")
            rt.log("  layer (first of its shape)          x n  Cin->Cout  HxW    k s p  algorithm             conv GF/s  sgemm GF/s  ratio")
            var totalConvSeconds = 0.0, totalGemmSeconds = 0.0, totalFlops = 0.0
            for key in order {
                var rng = RandomStream(seed: 1)
                let conv = Conv2d(inChannels: key.cin, outChannels: key.cout, kernelSize: (key.kh, key.kw),
                                  stride: (key.sh, key.sw), padding: (key.ph, key.pw), bias: key.bias, rng: &rng)
                var x = Tensor(uninitialized: [batch, key.cin, key.h, key.w])
                x.withUnsafeMutableBufferPointer { rng.fillUniform($0.baseAddress!, count: $0.count, low: -1, high: 1) }
                var convTimes: [Double] = []
                var gy: Tensor? = nil
                for i in 0...repeats {
                    let t0 = now()
                    let y = conv.forward(x, context: ForwardContext(mode: .train))
                    if gy == nil {
                        var g = Tensor(uninitialized: y.shape)
                        g.withUnsafeMutableBufferPointer { rng.fillUniform($0.baseAddress!, count: $0.count, low: -1, high: 1) }
                        gy = g
                    }
                    _ = conv.backward(gy!)
                    if i > 0 { convTimes.append(now() - t0) }
                }
                let oh = gy!.shape[2], ow = gy!.shape[3]
                let m = key.cout, k = key.cin * key.kh * key.kw, n = batch * oh * ow
                let macs = Double(m) * Double(k) * Double(n)
                let gemmSeconds = Self.im2colGemmSeconds(m: m, n: n, k: k, repeats: repeats)
                let convSeconds = median(convTimes)
                let convGF = 6 * macs / convSeconds / 1e9, gemmGF = 6 * macs / gemmSeconds / 1e9
                let times = Double(count[key]!)
                totalConvSeconds += times * convSeconds
                totalGemmSeconds += times * gemmSeconds
                totalFlops += times * 6 * macs
                let name = firstName[key]!.isEmpty ? "(model)" : firstName[key]!
                rt.log("  " + name.padding(toLength: 36, withPad: " ", startingAt: 0)
                       + String(format: " %3d  %4d->%-4d %3dx%-3d %dx%d %d %d  ", count[key]!, key.cin, key.cout, key.h, key.w,
                                key.kh, key.kw, key.sh, key.ph)
                       + conv.algorithmInUse.padding(toLength: 20, withPad: " ", startingAt: 0)
                       + String(format: " %9.1f  %10.1f  %5.2f", convGF, gemmGF, convGF / gemmGF))
            }
            if totalConvSeconds > 0 {
                rt.log(String(format: "all conv layers (weighted by count): conv %.1f GFLOP/s, sgemm on the same shapes %.1f GFLOP/s, ratio %.2f; "
                              + "conv time per step %.1f ms", totalFlops / totalConvSeconds / 1e9, totalFlops / totalGemmSeconds / 1e9,
                              totalGemmSeconds / totalConvSeconds, totalConvSeconds * 1e3))
            }
        }
    }

    /// Median seconds of the three im2col GEMMs of a conv (forward `[m, k] x [k, n]`, input
    /// gradient `[k, m]^T x [m, n]`, weight gradient `[m, n] x [k, n]^T`), each one sgemm call.
    static func im2colGemmSeconds(m: Int, n: Int, k: Int, repeats: Int) -> Double {
        let w = [Float](repeating: 0.01, count: m * k)
        let cols = [Float](repeating: 0.5, count: k * n)
        let dy = [Float](repeating: 0.25, count: m * n)
        var out = [Float](repeating: 0, count: Swift.max(m * n, k * n, m * k))
        var times: [Double] = []
        w.withUnsafeBufferPointer { wp in
            cols.withUnsafeBufferPointer { cp in
                dy.withUnsafeBufferPointer { dp in
                    out.withUnsafeMutableBufferPointer { op in
                        let w = wp.baseAddress!, c = cp.baseAddress!, d = dp.baseAddress!, o = op.baseAddress!
                        for i in 0...repeats {
                            let t0 = now()
                            Kernels.sgemm(transposeA: false, transposeB: false, m: m, n: n, k: k, alpha: 1, a: w, lda: k,
                                          b: c, ldb: n, beta: 0, c: o, ldc: n)
                            Kernels.sgemm(transposeA: true, transposeB: false, m: k, n: n, k: m, alpha: 1, a: w, lda: k,
                                          b: d, ldb: n, beta: 0, c: o, ldc: n)
                            Kernels.sgemm(transposeA: false, transposeB: true, m: m, n: k, k: n, alpha: 1, a: d, lda: n,
                                          b: c, ldb: n, beta: 0, c: o, ldc: k)
                            if i > 0 { times.append(now() - t0) }
                        }
                    }
                }
            }
        }
        return median(times)
    }
}
