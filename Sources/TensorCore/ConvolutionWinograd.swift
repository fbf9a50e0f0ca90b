extension Kernels {
    /// The kernels of one Winograd variant, F(2x2, 3x3) or F(4x4, 3x3) (see `Kernels.winograd*`
    /// and `Kernels.winograd4*`; same argument order, unlabeled here).
    struct WinogradKernels {
        typealias WeightTransform = (UnsafePointer<Float>, Int, Int, UnsafeMutablePointer<Float>) -> Void
        typealias ToDomain = (UnsafePointer<Float>, Int, WinogradGeometry, UnsafeMutablePointer<Float>, Int, Int, Int) -> Void
        typealias FromDomain = (UnsafePointer<Float>, Int, Int, Int, Int, WinogradGeometry, UnsafeMutablePointer<Float>) -> Void
        /// Transform-domain positions (`(m + 2)^2`).
        let planes: Int
        let transformWeights: WeightTransform
        let accumulateWeightGradient: WeightTransform
        let transformInput: ToDomain
        let transformGradOutput: ToDomain
        let transformOutput: FromDomain
        let transformGradInput: FromDomain

        init(outputTile: Int) {
            if outputTile == 4 {
                planes = 36
                transformWeights = Kernels.winograd4TransformWeights
                accumulateWeightGradient = Kernels.winograd4AccumulateWeightGradient
                transformInput = Kernels.winograd4TransformInput
                transformGradOutput = Kernels.winograd4TransformGradOutput
                transformOutput = Kernels.winograd4TransformOutput
                transformGradInput = Kernels.winograd4TransformGradInput
            } else {
                planes = 16
                transformWeights = Kernels.winogradTransformWeights
                accumulateWeightGradient = Kernels.winogradAccumulateWeightGradient
                transformInput = Kernels.winogradTransformInput
                transformGradOutput = Kernels.winogradTransformGradOutput
                transformOutput = Kernels.winogradTransformOutput
                transformGradInput = Kernels.winogradTransformGradInput
            }
        }
    }

    /// Floats between consecutive transform-domain planes holding `floats` each: rounded up to
    /// a 64-byte line, plus one line, so the 16 (F(2x2)) or 36 (F(4x4)) planes written side by
    /// side by the transforms do not all map to the same cache sets (a power-of-two stride such
    /// as 32 x 256 floats would).
    public static func winogradPlaneStride(_ floats: Int) -> Int {
        (floats + 15) / 16 * 16 + 16
    }

    /// What every Winograd pass over a batch needs: geometry, kernels, sizes, and `U = G w G^T`
    /// in the workspace.
    private struct WinogradPlan {
        let geometry: WinogradGeometry
        let kernels: WinogradKernels
        let batch, inChannels, outChannels, tiles, sampleIn, sampleOut, chunk: Int
        let u: UnsafeMutablePointer<Float>

        init(geometry wg: WinogradGeometry, batch: Int, inChannels c: Int, outChannels o: Int, chunk: Int,
             weight: UnsafePointer<Float>, workspace: ConvolutionWorkspace) {
            geometry = wg
            kernels = WinogradKernels(outputTile: wg.outputTile)
            self.batch = batch
            inChannels = c
            outChannels = o
            tiles = wg.tiles
            sampleIn = c * wg.height * wg.width
            sampleOut = o * wg.outputHeight * wg.outputWidth
            self.chunk = chunk
            u = workspace.transformedWeights.reserve(kernels.planes * o * c)
            kernels.transformWeights(weight, o, c, u)
        }

        /// Calls `body(start, b, t, vs, ms)` for each chunk of `b` samples from `start`: `t = b * tiles`
        /// columns, transform-plane strides `vs` (input side) and `ms` (output side).
        func forEachChunk(_ body: (_ start: Int, _ b: Int, _ t: Int, _ vs: Int, _ ms: Int) -> Void) {
            var start = 0
            while start < batch {
                let b = Swift.min(chunk, batch - start), t = b * tiles
                body(start, b, t, Kernels.winogradPlaneStride(inChannels * t), Kernels.winogradPlaneStride(outChannels * t))
                start += b
            }
        }

        /// Input transform of samples `start ..< start + b` into `v` (plane stride `vs`, `b * tiles` columns).
        func transformInputs(_ xp: UnsafePointer<Float>, start: Int, count b: Int, into v: UnsafeMutablePointer<Float>, planeStride vs: Int) {
            for s in 0..<b {
                kernels.transformInput(xp + (start + s) * sampleIn, inChannels, geometry, v, s * tiles, b * tiles, vs)
            }
        }
    }

    /// Winograd F(m x m, 3x3) convolution forward (Lavin & Gray, CVPR 2016), stride 1, no bias:
    /// `x [N, Cin, H, W] => y [N, Cout, OH, OW]` with `weight [Cout, Cin, 3, 3]`, `m` =
    /// `geometry.outputTile`. Per chunk of samples: `V = B^T d B` per tile, then one GEMM per
    /// transform position `M[xi] [Cout, T] = U[xi] [Cout, Cin] x V[xi] [Cin, T]`, then
    /// `y = A^T M A`. Every element of `y` is written.
    public static func winogradConvolutionForward(input xp: UnsafePointer<Float>, batch: Int, inChannels c: Int,
                                                  geometry wg: WinogradGeometry, weight: UnsafePointer<Float>, outChannels o: Int,
                                                  chunk: Int, output yp: UnsafeMutablePointer<Float>, workspace: ConvolutionWorkspace) {
        let plan = WinogradPlan(geometry: wg, batch: batch, inChannels: c, outChannels: o, chunk: chunk, weight: weight,
                                workspace: workspace)
        let np = plan.kernels.planes, u = plan.u
        plan.forEachChunk { start, b, t, vs, ms in
            let v = workspace.columns.reserve(np * vs), m = workspace.product.reserve(np * ms)
            plan.transformInputs(xp, start: start, count: b, into: v, planeStride: vs)
            // M[xi] [Cout, T] = U[xi] [Cout, Cin] x V[xi] [Cin, T]
            for xi in 0..<np {
                sgemm(transposeA: false, transposeB: false, m: o, n: t, k: c, alpha: 1,
                      a: u + xi * o * c, lda: c, b: v + xi * vs, ldb: t, beta: 0, c: m + xi * ms, ldc: t)
            }
            for s in 0..<b {
                plan.kernels.transformOutput(m, s * plan.tiles, t, ms, o, plan.geometry, yp + (start + s) * plan.sampleOut)
            }
        }
    }

    /// Winograd F(m x m, 3x3) convolution backward with the exact adjoints of the forward:
    /// `dM = A dY A^T`; OVERWRITES `gradInput` with `B (U^T dM) B^T` (overlapping tiles summed);
    /// when `weightGradient` is given, ACCUMULATES `dL/dW [Cout, Cin, 3, 3] = G^T (dM V^T) G`
    /// into it (the input transform `V` is recomputed).
    public static func winogradConvolutionBackward(input xp: UnsafePointer<Float>, gradOutput gp: UnsafePointer<Float>, batch: Int,
                                                   inChannels c: Int, geometry wg: WinogradGeometry, weight: UnsafePointer<Float>,
                                                   outChannels o: Int, chunk: Int, gradInput gip: UnsafeMutablePointer<Float>,
                                                   weightGradient: UnsafeMutablePointer<Float>?, workspace: ConvolutionWorkspace) {
        let plan = WinogradPlan(geometry: wg, batch: batch, inChannels: c, outChannels: o, chunk: chunk, weight: weight,
                                workspace: workspace)
        let np = plan.kernels.planes, u = plan.u
        let du = weightGradient == nil ? nil : workspace.weightGradient.reserve(np * o * c)
        var touched = false
        plan.forEachChunk { start, b, t, vs, ms in
            let dm = workspace.product.reserve(np * ms), v = workspace.columns.reserve(np * vs)
            for s in 0..<b {
                plan.kernels.transformGradOutput(gp + (start + s) * plan.sampleOut, o, plan.geometry, dm, s * plan.tiles, t, ms)
            }
            if let du {
                plan.transformInputs(xp, start: start, count: b, into: v, planeStride: vs)
                // dU[xi] [Cout, Cin] (+)= dM[xi] [Cout, T] x V[xi]^T
                for xi in 0..<np {
                    sgemm(transposeA: false, transposeB: true, m: o, n: c, k: t, alpha: 1,
                          a: dm + xi * ms, lda: t, b: v + xi * vs, ldb: t,
                          beta: touched ? 1 : 0, c: du + xi * o * c, ldc: c)
                }
                touched = true
            }
            // dV[xi] [Cin, T] = U[xi]^T x dM[xi] (into the V buffer, no longer needed)
            for xi in 0..<np {
                sgemm(transposeA: true, transposeB: false, m: c, n: t, k: o, alpha: 1,
                      a: u + xi * o * c, lda: c, b: dm + xi * ms, ldb: t, beta: 0, c: v + xi * vs, ldc: t)
            }
            for s in 0..<b {
                plan.kernels.transformGradInput(v, s * plan.tiles, t, vs, c, plan.geometry, gip + (start + s) * plan.sampleIn)
            }
        }
        if let du, let dw = weightGradient, touched {
            plan.kernels.accumulateWeightGradient(du, o, c, dw)
        }
    }
}
