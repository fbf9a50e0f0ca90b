import TensorCore
#if canImport(Glibc)
import Glibc
#endif

/// PyTorch default initialisation (`reset_parameters` of `nn.Conv2d` / `nn.Linear`):
/// weight ~ kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(fanIn), 1/sqrt(fanIn)) (gain sqrt(2/(1+a^2))
/// = sqrt(1/3) times sqrt(3/fanIn)), bias ~ U(-1/sqrt(fanIn), 1/sqrt(fanIn)). Draws come from
/// `rng` in order: all weights, then all biases.
public enum Initializers {
    public static func pytorchDefault(weight: Parameter, bias: Parameter?, fanIn: Int, rng: inout RandomStream) {
        let bound = fanIn > 0 ? 1 / Float(Double(fanIn).squareRoot()) : 0
        uniform(weight, bound: bound, rng: &rng)
        if let bias { uniform(bias, bound: bound, rng: &rng) }
    }

    /// kaiming_normal (fan_in mode, gain sqrt 2): N(0, sqrt(2 / fanIn)).
    public static func kaimingNormal(_ p: Parameter, fanIn: Int, rng: inout RandomStream) {
        normal(p, std: Float((2 / Double(fanIn)).squareRoot()), rng: &rng)
    }

    /// Fills `p.value` with N(0, std).
    public static func normal(_ p: Parameter, std: Float, rng: inout RandomStream) {
        p.value.withUnsafeMutableBufferPointer { v in for i in 0..<v.count { v[i] = std * rng.nextNormal() } }
    }

    /// Fills `p.value` with U(-bound, bound).
    public static func uniform(_ p: Parameter, bound: Float, rng: inout RandomStream) {
        let n = p.count
        p.value.withUnsafeMutableBufferPointer { rng.fillUniform($0.baseAddress!, count: n, low: -bound, high: bound) }
    }
}

/// 2-D convolution with PyTorch `nn.Conv2d` semantics (cross-correlation, zero padding, no
/// dilation, groups 1): `x [N, Cin, H, W] => [N, Cout, OH, OW]`, `OH = (H + 2*pH - KH)/sH + 1`.
/// Parameters `weight [Cout, Cin, KH, KW]` and optional `bias [Cout]`.
///
/// Implementation: im2col + one sgemm per chunk of samples laid side by side
/// (`W[Cout, Cin*KH*KW] x cols[Cin*KH*KW, B*OH*OW]`), so the GEMM N dimension is large while the
/// column buffer stays bounded (`maxColumnFloats`). 1x1 convolutions with stride 1 and no
/// padding skip im2col (a transpose copy, or none for one sample). Stride-1 convolutions whose
/// output width equals the input width (3x3 padding 1, ...) use the shifted-block
/// `Kernels.im2colShifted` / `col2imShifted`. Backward recomputes the columns:
/// `dW^T[rows, Cout] = cols x dY^T` (summed over chunks in a scratch, then added to `weight.grad`
/// once), `dcols = W^T x dY`, then col2im, which overwrites `gradInput` (no zero-fill).
/// `targetColumns` 1024 was the fastest of 256-131072 measured (2026-11-30, docs/performance.md).
///
/// 3x3 convolutions with stride 1 can instead run Winograd (Lavin & Gray 2016; see
/// `WinogradGeometry`), in forward and in both backward products: F(4x4, 3x3) (36 GEMMs over
/// the channels, 4x fewer multiplies) or F(2x2, 3x3) (16 GEMMs, 2.25x fewer). `algorithm`
/// chooses (`.automatic`: F(4x4, 3x3) when both channel counts are at least
/// `winogradMinimumChannels`); the environment variable
/// `UMTRAIN_CONV_ALGORITHM=auto|im2col|winograd2|winograd4` sets the default for every new layer.
/// The results agree with im2col up to float rounding (the naive-twin tests cover both), with
/// three differences: (1) the F(4x4) error is relative to the largest activation of each 6x6
/// input tile, so an outlier of size S perturbs the outputs next to it (outside its 3x3 reach)
/// by about 7-9e-8 * S (measured: S = 1e3 -> 9e-5, S = 1e4 -> 7e-4 on O(1) outputs); (2) a NaN or
/// infinite input or output gradient makes whole tiles NaN (up to 8x8 outputs for F(4x4)
/// instead of 3x3, and an infinity becomes NaN), never crossing into other samples; (3) the
/// F(4x4) input transform grows values up to 100x, so inputs above about 1e36 overflow to NaN
/// where im2col and F(2x2) stay finite (measured at 1e37).
public final class Conv2d: Layer {
    /// How a convolution is computed.
    public enum Algorithm: String, Sendable, CaseIterable {
        /// Winograd F(4x4, 3x3) (`automaticWinogradTile`) for 3x3 stride-1 layers whose input and
        /// output channels are both >= `winogradMinimumChannels` (8), else im2col.
        case automatic = "auto"
        /// im2col + sgemm for every geometry.
        case im2col
        /// Winograd F(2x2, 3x3) where the geometry allows (3x3, stride 1), else im2col.
        case winograd2
        /// Winograd F(4x4, 3x3) where the geometry allows (3x3, stride 1), else im2col.
        case winograd4
    }

    /// The default `algorithm` of new layers: `UMTRAIN_CONV_ALGORITHM` if set to a valid name,
    /// else `.automatic` (an invalid value is reported by `environmentProblem`).
    public static let defaultAlgorithm: Algorithm = {
        guard let raw = getenv("UMTRAIN_CONV_ALGORITHM") else { return .automatic }
        return Algorithm(rawValue: String(cString: raw)) ?? .automatic
    }()

    /// A message when `UMTRAIN_CONV_ALGORITHM` is set to something other than an algorithm
    /// name (the CLI refuses to start), else nil.
    public static var environmentProblem: String? {
        guard let raw = getenv("UMTRAIN_CONV_ALGORITHM") else { return nil }
        let value = String(cString: raw)
        if Algorithm(rawValue: value) != nil { return nil }
        return "UMTRAIN_CONV_ALGORITHM is '\(value)'; expected one of "
            + Algorithm.allCases.map(\.rawValue).joined(separator: ", ") + ". Hint: unset it for the automatic choice."
    }

    /// One line for run headers: the default algorithm and what it means.
    public static var defaultAlgorithmDescription: String {
        let source = getenv("UMTRAIN_CONV_ALGORITHM") == nil ? "" : " (UMTRAIN_CONV_ALGORITHM)"
        switch defaultAlgorithm {
        case .automatic:
            return "auto: Winograd F(\(automaticWinogradTile)x\(automaticWinogradTile),3x3) for 3x3 stride-1 layers with "
                + ">= \(winogradMinimumChannels) channels in and out, im2col + sgemm otherwise" + source
        case .im2col: return "im2col + sgemm for every layer" + source
        case .winograd2: return "Winograd F(2x2,3x3) for every 3x3 stride-1 layer, im2col + sgemm otherwise" + source
        case .winograd4: return "Winograd F(4x4,3x3) for every 3x3 stride-1 layer, im2col + sgemm otherwise" + source
        }
    }

    /// What this layer runs: `"winograd F(4x4,3x3)"`, `"winograd F(2x2,3x3)"` or `"im2col"`.
    public var algorithmInUse: String {
        winogradTile.map { "winograd F(\($0)x\($0),3x3)" } ?? "im2col"
    }

    /// `.automatic` uses Winograd only when input and output channels are both at least this.
    public static let winogradMinimumChannels = 8
    /// The Winograd variant `.automatic` picks: F(4x4, 3x3).
    public static let automaticWinogradTile = 4


    public let inChannels: Int
    public let outChannels: Int
    public let kernelSize: (height: Int, width: Int)
    public let stride: (height: Int, width: Int)
    public let padding: (height: Int, width: Int)
    public let weight: Parameter
    public let bias: Parameter?
    /// Target number of GEMM columns (B * OH * OW) per chunk.
    public var targetColumns = 1024
    /// Upper bound on the column buffer, in floats (default 4 Mi floats = 16 MiB).
    public var maxColumnFloats = 4 << 20
    /// Convolution algorithm (default `Conv2d.defaultAlgorithm`).
    public var algorithm: Algorithm = Conv2d.defaultAlgorithm
    /// Target number of Winograd tiles (m x m output blocks, samples side by side) per chunk
    /// (rounded to whole samples, at least one: a 32x32 plane is 64 F(4x4) tiles);
    /// nil: about 768 outputs (192 tiles of F(2x2), 48 of F(4x4)), the fastest of 64-2048 tiles
    /// (F(2x2)) and 32-256 (F(4x4)) measured on wrn40_2: the transform buffers stay in L2.
    public var targetTiles: Int?

    /// Optional elementwise mask `[Cout, Cin, KH, KW]`: the layer computes with `weight * mask`
    /// (see `WeightMasking`; UMAP score-masked layers).
    public var weightMask: Tensor?
    /// When set (with `weightMask`), backward ACCUMULATES `dL/d(weight * mask) * weight` here.
    public var weightMaskGradient: Tensor?

    /// Multiply-accumulates of the last forward, whole batch:
    /// `N * Cout * OH * OW * Cin * KH * KW` (bias additions not counted).
    public private(set) var lastForwardMACs = 0
    /// Input shape `[N, Cin, H, W]` of the last forward (nil before the first).
    public private(set) var lastInputShape: [Int]?

    private var input: Tensor?
    private var usedWeight: Tensor?
    private var accumulate = true
    private let columns = Scratch()
    private let product = Scratch()
    private let weightGradScratch = Scratch()
    private let winogradWeights = Scratch()

    /// Square-kernel convenience; `rng` draws the PyTorch default initialisation.
    public convenience init(inChannels: Int, outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                            bias: Bool = true, rng: inout RandomStream) {
        self.init(inChannels: inChannels, outChannels: outChannels, kernelSize: (kernelSize, kernelSize),
                  stride: (stride, stride), padding: (padding, padding), bias: bias, rng: &rng)
    }

    public init(inChannels: Int, outChannels: Int, kernelSize: (Int, Int), stride: (Int, Int) = (1, 1),
                padding: (Int, Int) = (0, 0), bias: Bool = true, rng: inout RandomStream) {
        precondition(inChannels > 0 && outChannels > 0, "Conv2d: channels \(inChannels) -> \(outChannels) must be positive")
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernelSize = (kernelSize.0, kernelSize.1)
        self.stride = (stride.0, stride.1)
        self.padding = (padding.0, padding.1)
        weight = Parameter(localName: "weight", shape: [outChannels, inChannels, kernelSize.0, kernelSize.1])
        self.bias = bias ? Parameter(localName: "bias", shape: [outChannels]) : nil
        Initializers.pytorchDefault(weight: weight, bias: self.bias, fanIn: inChannels * kernelSize.0 * kernelSize.1,
                                    rng: &rng)
    }

    public var localParameters: [Parameter] { [weight] + (bias.map { [$0] } ?? []) }

    func geometry(_ h: Int, _ w: Int) -> WindowGeometry {
        WindowGeometry(channels: inChannels, height: h, width: w, kernelHeight: kernelSize.height,
                       kernelWidth: kernelSize.width, strideHeight: stride.height, strideWidth: stride.width,
                       paddingHeight: padding.height, paddingWidth: padding.width)
    }

    /// The Winograd output tile `m` of F(m x m, 3x3) that forward and backward run, or nil for
    /// im2col (see `algorithm`).
    public var winogradTile: Int? {
        guard kernelSize == (3, 3) && stride == (1, 1) else { return nil }
        switch algorithm {
        case .im2col: return nil
        case .winograd2: return 2
        case .winograd4: return 4
        case .automatic: return Swift.min(inChannels, outChannels) >= Conv2d.winogradMinimumChannels ? Conv2d.automaticWinogradTile : nil
        }
    }

    /// Whether forward and backward run Winograd (see `winogradTile`).
    public var usesWinograd: Bool { winogradTile != nil }

    var isPointwise: Bool {
        kernelSize == (1, 1) && stride == (1, 1) && padding == (0, 0)
    }

    func chunkSize(batch: Int, plane: Int, rows: Int) -> Int {
        let byTarget = Swift.max(1, targetColumns / Swift.max(plane, 1))
        let byMemory = Swift.max(1, maxColumnFloats / Swift.max(rows * plane, 1))
        return Swift.max(1, Swift.min(batch, byTarget, byMemory))
    }

    func im2colSample(_ x: UnsafePointer<Float>, _ g: WindowGeometry, _ dst: UnsafeMutablePointer<Float>, ld: Int) {
        if Kernels.isShiftedBlockGeometry(g) {
            Kernels.im2colShifted(x, geometry: g, columns: dst, ldColumns: ld)
        } else {
            Kernels.im2col(x, geometry: g, columns: dst, ldColumns: ld)
        }
    }

    /// col2im of one sample, OVERWRITING `gin` (clobbers padding entries of `cols`).
    func col2imSample(_ cols: UnsafeMutablePointer<Float>, ld: Int, _ g: WindowGeometry, _ gin: UnsafeMutablePointer<Float>) {
        if Kernels.isShiftedBlockGeometry(g) {
            Kernels.col2imShifted(cols, ldColumns: ld, geometry: g, gradInput: gin, accumulate: false)
        } else {
            gin.update(repeating: 0, count: g.channels * g.inputPlane)
            Kernels.col2im(cols, ldColumns: ld, geometry: g, gradInput: gin)
        }
    }

    /// `x [N, Cin, H, W] => [N, Cout, OH, OW]`.
    public func forward(_ x: Tensor, context: ForwardContext) -> Tensor {
        let (n, c, h, w) = expectRank4(x, "Conv2d")
        precondition(c == inChannels, "Conv2d: expected \(inChannels) input channels, got input \(x.shape)")
        input = x
        lastInputShape = x.shape
        accumulate = context.computeParameterGradients
        let g = geometry(h, w)
        let p = g.outputPlane, rows = g.columnRows, o = outChannels
        var y = Tensor(uninitialized: [n, o, g.outputHeight, g.outputWidth])  // every element written below
        lastForwardMACs = n * o * p * rows
        usedWeight = nil
        if n == 0 { return y }
        let chunk = chunkSize(batch: n, plane: p, rows: rows)
        let pointwise = isPointwise
        let effectiveWeight = WeightMasking.effective(weight.value, weightMask)
        usedWeight = weightMask == nil ? nil : effectiveWeight  // no extra reference to weight.value (would force copy-on-write on the next optimizer step)
        if usesWinograd {
            winogradForward(x, weight: effectiveWeight, into: &y)
            addBias(&y)
            return y
        }
        x.withUnsafeBufferPointer { xb in
            effectiveWeight.withUnsafeBufferPointer { wb in
                y.withUnsafeMutableBufferPointer { yb in
                    let xp = xb.baseAddress!, wp = wb.baseAddress!, yp = yb.baseAddress!
                    var start = 0
                    while start < n {
                        let b = Swift.min(chunk, n - start)
                        let out = yp + start * o * p
                        if pointwise && b == 1 {
                            // The sample's [Cin, P] block is its own column matrix.
                            Kernels.sgemm(transposeA: false, transposeB: false, m: o, n: p, k: rows, alpha: 1,
                                          a: wp, lda: rows, b: xp + start * c * h * w, ldb: p, beta: 0, c: out, ldc: p)
                            start += b
                            continue
                        }
                        let buf = columns.reserve(rows * b * p)
                        if pointwise {
                            Kernels.batchToChannelMajor(xp + start * c * h * w, batch: b, channels: c, plane: p, dst: buf)
                        } else {
                            for s in 0..<b {
                                im2colSample(xp + (start + s) * c * h * w, g, buf + s * p, ld: b * p)
                            }
                        }
                        let cols = UnsafePointer(buf)
                        if b == 1 {
                            Kernels.sgemm(transposeA: false, transposeB: false, m: o, n: p, k: rows, alpha: 1,
                                          a: wp, lda: rows, b: cols, ldb: p, beta: 0, c: out, ldc: p)
                        } else {
                            let tmp = product.reserve(o * b * p)
                            Kernels.sgemm(transposeA: false, transposeB: false, m: o, n: b * p, k: rows, alpha: 1,
                                          a: wp, lda: rows, b: cols, ldb: b * p, beta: 0, c: tmp, ldc: b * p)
                            Kernels.channelMajorToBatch(tmp, batch: b, channels: o, plane: p, dst: out, accumulate: false)
                        }
                        start += b
                    }
                }
            }
        }
        addBias(&y)
        return y
    }

    /// `y[n, o, :, :] += bias[o]` when the layer has a bias.
    func addBias(_ y: inout Tensor) {
        guard let bias else { return }
        let n = y.shape[0], o = outChannels, p = y.shape[2] * y.shape[3]
        bias.value.withUnsafeBufferPointer { bb in
            y.withUnsafeMutableBufferPointer { yb in
                let yp = yb.baseAddress!
                for s in 0..<n {
                    for oc in 0..<o {
                        let row = yp + (s * o + oc) * p
                        let v = bb[oc]
                        for i in 0..<p { row[i] += v }
                    }
                }
            }
        }
    }

    func winogradGeometry(_ h: Int, _ w: Int) -> WinogradGeometry {
        WinogradGeometry(height: h, width: w, paddingHeight: padding.height, paddingWidth: padding.width,
                         outputTile: winogradTile ?? 2)
    }

    /// Samples per Winograd chunk (whole samples, at least one): about `targetTiles` tiles, each
    /// transform buffer within about `maxColumnFloats`.
    func winogradChunk(batch: Int, tiles: Int) -> Int {
        let m = winogradTile ?? 2, planes = m + 2
        let byTarget = Swift.max(1, (targetTiles ?? 768 / (m * m)) / Swift.max(tiles, 1))
        let byMemory = Swift.max(1, maxColumnFloats / Swift.max(planes * planes * Swift.max(inChannels, outChannels) * tiles, 1))
        return Swift.max(1, Swift.min(batch, byTarget, byMemory))
    }

    /// Floats between consecutive transform-domain planes holding `floats` each: rounded up to
    /// a 64-byte line, plus one line, so the 16 (F(2x2)) or 36 (F(4x4)) planes written side by side by the transforms do
    /// not all map to the same cache sets (a power-of-two stride such as 32 x 256 floats would).
    static func winogradPlaneStride(_ floats: Int) -> Int {
        (floats + 15) / 16 * 16 + 16
    }

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

    /// What every Winograd pass over `x` needs: geometry, kernels, chunking, and `U = G w G^T`
    /// in the `winogradWeights` scratch.
    private struct WinogradPlan {
        let geometry: WinogradGeometry
        let kernels: WinogradKernels
        let batch, inChannels, outChannels, tiles, sampleIn, sampleOut, chunk: Int
        let u: UnsafeMutablePointer<Float>
    }

    private func winogradPlan(_ x: Tensor, weight: Tensor) -> WinogradPlan {
        let wg = winogradGeometry(x.shape[2], x.shape[3])
        let kernels = WinogradKernels(outputTile: wg.outputTile)
        let c = x.shape[1], o = outChannels
        let u = winogradWeights.reserve(kernels.planes * o * c)
        weight.withUnsafeBufferPointer { kernels.transformWeights($0.baseAddress!, o, c, u) }
        return WinogradPlan(geometry: wg, kernels: kernels, batch: x.shape[0], inChannels: c, outChannels: o, tiles: wg.tiles,
                            sampleIn: c * wg.height * wg.width, sampleOut: o * wg.outputHeight * wg.outputWidth,
                            chunk: winogradChunk(batch: x.shape[0], tiles: wg.tiles), u: u)
    }

    /// Input transform of samples `start ..< start + b` into `v` (plane stride `vs`, `t = b * tiles` columns).
    private func winogradTransformInputs(_ plan: WinogradPlan, _ xp: UnsafePointer<Float>, start: Int, count b: Int,
                                         into v: UnsafeMutablePointer<Float>, planeStride vs: Int) {
        for s in 0..<b {
            plan.kernels.transformInput(xp + (start + s) * plan.sampleIn, plan.inChannels, plan.geometry, v,
                                        s * plan.tiles, b * plan.tiles, vs)
        }
    }

    /// Winograd F(m x m, 3x3) forward (m = `winogradTile`): `y [N, Cout, OH, OW] = conv(x, weight)` (bias not added).
    func winogradForward(_ x: Tensor, weight: Tensor, into y: inout Tensor) {
        let plan = winogradPlan(x, weight: weight)
        let c = plan.inChannels, o = plan.outChannels, np = plan.kernels.planes, u = plan.u
        x.withUnsafeBufferPointer { xb in
            y.withUnsafeMutableBufferPointer { yb in
                let xp = xb.baseAddress!, yp = yb.baseAddress!
                var start = 0
                while start < plan.batch {
                    let b = Swift.min(plan.chunk, plan.batch - start), t = b * plan.tiles
                    let vs = Conv2d.winogradPlaneStride(c * t), ms = Conv2d.winogradPlaneStride(o * t)
                    let v = columns.reserve(np * vs), m = product.reserve(np * ms)
                    winogradTransformInputs(plan, xp, start: start, count: b, into: v, planeStride: vs)
                    // M[xi] [Cout, T] = U[xi] [Cout, Cin] x V[xi] [Cin, T]
                    for xi in 0..<np {
                        Kernels.sgemm(transposeA: false, transposeB: false, m: o, n: t, k: c, alpha: 1,
                                      a: u + xi * o * c, lda: c, b: v + xi * vs, ldb: t, beta: 0, c: m + xi * ms, ldc: t)
                    }
                    for s in 0..<b {
                        plan.kernels.transformOutput(m, s * plan.tiles, t, ms, o, plan.geometry, yp + (start + s) * plan.sampleOut)
                    }
                    start += b
                }
            }
        }
    }

    /// Winograd F(m x m, 3x3) backward: OVERWRITES `gradInput`; with `wantWeight`, ACCUMULATES
    /// `dL/dweight` through `weightGrad` (called with a pointer to the `[Cout, Cin, 3, 3]` gradient).
    func winogradBackward(_ x: Tensor, gradOutput: Tensor, weight: Tensor, gradInput: inout Tensor,
                          weightGrad: ((UnsafeMutablePointer<Float>) -> Void) -> Void, wantWeight: Bool) {
        let plan = winogradPlan(x, weight: weight)
        let c = plan.inChannels, o = plan.outChannels, np = plan.kernels.planes, u = plan.u
        let du = wantWeight ? weightGradScratch.reserve(np * o * c) : nil
        var touched = false
        x.withUnsafeBufferPointer { xb in
            gradOutput.withUnsafeBufferPointer { gb in
                gradInput.withUnsafeMutableBufferPointer { gib in
                    let xp = xb.baseAddress!, gp = gb.baseAddress!, gip = gib.baseAddress!
                    var start = 0
                    while start < plan.batch {
                        let b = Swift.min(plan.chunk, plan.batch - start), t = b * plan.tiles
                        let vs = Conv2d.winogradPlaneStride(c * t), ms = Conv2d.winogradPlaneStride(o * t)
                        let dm = product.reserve(np * ms), v = columns.reserve(np * vs)
                        for s in 0..<b {
                            plan.kernels.transformGradOutput(gp + (start + s) * plan.sampleOut, o, plan.geometry, dm, s * plan.tiles, t, ms)
                        }
                        if let du {
                            winogradTransformInputs(plan, xp, start: start, count: b, into: v, planeStride: vs)
                            // dU[xi] [Cout, Cin] (+)= dM[xi] [Cout, T] x V[xi]^T
                            for xi in 0..<np {
                                Kernels.sgemm(transposeA: false, transposeB: true, m: o, n: c, k: t, alpha: 1,
                                              a: dm + xi * ms, lda: t, b: v + xi * vs, ldb: t,
                                              beta: touched ? 1 : 0, c: du + xi * o * c, ldc: c)
                            }
                            touched = true
                        }
                        // dV[xi] [Cin, T] = U[xi]^T x dM[xi] (into the V buffer, no longer needed)
                        for xi in 0..<np {
                            Kernels.sgemm(transposeA: true, transposeB: false, m: c, n: t, k: o, alpha: 1,
                                          a: u + xi * o * c, lda: c, b: dm + xi * ms, ldb: t, beta: 0, c: v + xi * vs, ldc: t)
                        }
                        for s in 0..<b {
                            plan.kernels.transformGradInput(v, s * plan.tiles, t, vs, c, plan.geometry, gip + (start + s) * plan.sampleIn)
                        }
                        start += b
                    }
                }
            }
        }
        if let du, touched {
            weightGrad { plan.kernels.accumulateWeightGradient(du, o, c, $0) }
        }
    }

    /// `gradOutput [N, Cout, OH, OW] => gradInput [N, Cin, H, W]`; accumulates `weight.grad`
    /// (unless frozen) and `bias.grad`.
    public func backward(_ gradOutput: Tensor) -> Tensor {
        guard let x = input else { preconditionFailure("Conv2d.backward called without a forward") }
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let g = geometry(h, w)
        let p = g.outputPlane, rows = g.columnRows, o = outChannels
        precondition(gradOutput.shape == [n, o, g.outputHeight, g.outputWidth],
                     "Conv2d.backward: gradOutput \(gradOutput.shape) != output [\(n), \(o), \(g.outputHeight), \(g.outputWidth)]")
        var gradInput = Tensor(uninitialized: x.shape)  // every sample's block is overwritten below
        if n == 0 { return gradInput }
        let effectiveWeight = usedWeight ?? WeightMasking.effective(weight.value, weightMask)
        let masked = weightMask != nil
        let wantWeight = accumulate && (weight.role == .trainable || (masked && weightMaskGradient != nil))
        // With a mask, dL/d(weight * mask) is formed here first and distributed after the loop.
        var rawWeightGrad: Tensor? = masked && wantWeight ? Tensor(zeros: weight.shape) : nil
        let wantBias = accumulate && (bias?.role == .trainable)
        let chunk = chunkSize(batch: n, plane: p, rows: rows)
        let pointwise = isPointwise
        if wantBias, let bias {
            var sums = [Double](repeating: 0, count: o)
            gradOutput.withUnsafeBufferPointer { gb in
                sums.withUnsafeMutableBufferPointer {
                    Kernels.channelSum(gb.baseAddress!, batch: n, channels: o, plane: p, out: $0.baseAddress!)
                }
            }
            bias.grad.withUnsafeMutableBufferPointer { for i in 0..<o { $0[i] += Float(sums[i]) } }
        }
        let sampleIn = c * h * w
        if usesWinograd {
            winogradBackward(x, gradOutput: gradOutput, weight: effectiveWeight, gradInput: &gradInput, weightGrad: { body in
                if rawWeightGrad != nil {
                    rawWeightGrad!.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
                } else {
                    weight.grad.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
                }
            }, wantWeight: wantWeight)
        } else {
        x.withUnsafeBufferPointer { xb in
            effectiveWeight.withUnsafeBufferPointer { wb in
                gradOutput.withUnsafeBufferPointer { gb in
                    gradInput.withUnsafeMutableBufferPointer { gib in
                        let xp = xb.baseAddress!, wp = wb.baseAddress!, gp = gb.baseAddress!, gip = gib.baseAddress!
                        func withWeightGrad(_ body: (UnsafeMutablePointer<Float>) -> Void) {
                            if rawWeightGrad != nil {
                                rawWeightGrad!.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
                            } else {
                                weight.grad.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
                            }
                        }
                        // dW^T [rows, Cout] = cols [rows, K] x dY^T, summed over chunks here and added to
                        // the [Cout, rows] gradient once at the end: OpenBLAS runs this orientation
                        // faster when Cout is small (16 x 144 x 1024: 51 vs 67 GFLOP/s measured).
                        let weightGradT = wantWeight ? weightGradScratch.reserve(rows * o) : nil
                        var weightGradTouched = false
                        func accumulateWeightGradient(dy: UnsafePointer<Float>, cols: UnsafePointer<Float>, k: Int) {
                            // dy [Cout, k] and cols [rows, k], both with leading dimension k.
                            Kernels.sgemm(transposeA: false, transposeB: true, m: rows, n: o, k: k, alpha: 1,
                                          a: cols, lda: k, b: dy, ldb: k,
                                          beta: weightGradTouched ? 1 : 0, c: weightGradT!, ldc: o)
                            weightGradTouched = true
                        }
                        var start = 0
                        while start < n {
                            let b = Swift.min(chunk, n - start)
                            // One sample per chunk: its NCHW blocks are the GEMM operands (no copies).
                            let single = b == 1
                            // dY of the chunk as [Cout, B*P], when a batched GEMM needs it.
                            var dyBatched: UnsafePointer<Float>? = nil
                            if !single {
                                let buf = product.reserve(o * b * p)
                                Kernels.batchToChannelMajor(gp + start * o * p, batch: b, channels: o, plane: p, dst: buf)
                                dyBatched = UnsafePointer(buf)
                            }
                            if wantWeight {
                                if single {
                                    for s in 0..<b {
                                        let cols: UnsafePointer<Float>
                                        if pointwise {
                                            cols = xp + (start + s) * sampleIn
                                        } else {
                                            let buf = columns.reserve(rows * p)
                                            im2colSample(xp + (start + s) * sampleIn, g, buf, ld: p)
                                            cols = UnsafePointer(buf)
                                        }
                                        accumulateWeightGradient(dy: gp + (start + s) * o * p, cols: cols, k: p)
                                    }
                                } else {
                                    let buf = columns.reserve(rows * b * p)
                                    if pointwise {
                                        Kernels.batchToChannelMajor(xp + start * sampleIn, batch: b, channels: c, plane: p, dst: buf)
                                    } else {
                                        for s in 0..<b {
                                            im2colSample(xp + (start + s) * sampleIn, g, buf + s * p, ld: b * p)
                                        }
                                    }
                                    accumulateWeightGradient(dy: dyBatched!, cols: buf, k: b * p)
                                }
                            }
                            let gin = gip + start * sampleIn
                            if single {
                                for s in 0..<b {
                                    let dy = gp + (start + s) * o * p
                                    if pointwise {
                                        Kernels.sgemm(transposeA: true, transposeB: false, m: rows, n: p, k: o, alpha: 1,
                                                      a: wp, lda: rows, b: dy, ldb: p, beta: 0, c: gin + s * sampleIn, ldc: p)
                                    } else {
                                        let dcols = columns.reserve(rows * p)
                                        Kernels.sgemm(transposeA: true, transposeB: false, m: rows, n: p, k: o, alpha: 1,
                                                      a: wp, lda: rows, b: dy, ldb: p, beta: 0, c: dcols, ldc: p)
                                        col2imSample(dcols, ld: p, g, gin + s * sampleIn)
                                    }
                                }
                            } else {
                                let dcols = columns.reserve(rows * b * p)
                                Kernels.sgemm(transposeA: true, transposeB: false, m: rows, n: b * p, k: o, alpha: 1,
                                              a: wp, lda: rows, b: dyBatched!, ldb: b * p, beta: 0, c: dcols, ldc: b * p)
                                if pointwise {
                                    Kernels.channelMajorToBatch(dcols, batch: b, channels: c, plane: p, dst: gin, accumulate: false)
                                } else {
                                    for s in 0..<b {
                                        col2imSample(dcols + s * p, ld: b * p, g, gin + s * sampleIn)
                                    }
                                }
                            }
                            start += b
                        }
                        if weightGradTouched {
                            withWeightGrad { dw in
                                for oc in 0..<o {
                                    let dst = dw + oc * rows
                                    for r in 0..<rows { dst[r] += weightGradT![r * o + oc] }
                                }
                            }
                        }
                    }
                }
            }
        }
        }
        if let raw = rawWeightGrad, let mask = weightMask {
            WeightMasking.distribute(raw, weight: weight, mask: mask, maskGradient: &weightMaskGradient)
        }
        return gradInput
    }
}

/// Fully connected layer with PyTorch `nn.Linear` semantics: `x [N, in] => x W^T + b [N, out]`,
/// `weight [out, in]`, optional `bias [out]`.
public final class Linear: Layer {
    public let inFeatures: Int
    public let outFeatures: Int
    public let weight: Parameter
    public let bias: Parameter?
    /// Optional elementwise mask `[out, in]`: the layer computes with `weight * mask`
    /// (see `WeightMasking`; UMAP score-masked layers).
    public var weightMask: Tensor?
    /// When set (with `weightMask`), backward ACCUMULATES `dL/d(weight * mask) * weight` here.
    public var weightMaskGradient: Tensor?
    private var input: Tensor?
    private var usedWeight: Tensor?
    private var accumulate = true

    public init(inFeatures: Int, outFeatures: Int, bias: Bool = true, rng: inout RandomStream) {
        precondition(inFeatures > 0 && outFeatures > 0, "Linear: features \(inFeatures) -> \(outFeatures) must be positive")
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        weight = Parameter(localName: "weight", shape: [outFeatures, inFeatures])
        self.bias = bias ? Parameter(localName: "bias", shape: [outFeatures]) : nil
        Initializers.pytorchDefault(weight: weight, bias: self.bias, fanIn: inFeatures, rng: &rng)
    }

    /// Multiply-accumulates of the last forward, whole batch: `N * in * out` (bias not counted).
    public private(set) var lastForwardMACs = 0

    public var localParameters: [Parameter] { [weight] + (bias.map { [$0] } ?? []) }

    /// `x [N, in] => [N, out]`.
    public func forward(_ x: Tensor, context: ForwardContext) -> Tensor {
        precondition(x.rank == 2 && x.shape[1] == inFeatures, "Linear: expected input [N, \(inFeatures)], got \(x.shape)")
        input = x
        accumulate = context.computeParameterGradients
        let n = x.shape[0], o = outFeatures, k = inFeatures
        var y = Tensor(uninitialized: [n, o])
        lastForwardMACs = n * o * k  // bias copy or beta-0 GEMM writes all
        let w = WeightMasking.effective(weight.value, weightMask)
        usedWeight = weightMask == nil ? nil : w
        if n == 0 { return y }
        x.withUnsafeBufferPointer { xb in
            w.withUnsafeBufferPointer { wb in
                y.withUnsafeMutableBufferPointer { yb in
                    if let bias {
                        bias.value.withUnsafeBufferPointer { bb in
                            for i in 0..<n { (yb.baseAddress! + i * o).update(from: bb.baseAddress!, count: o) }
                        }
                    }
                    Kernels.sgemm(transposeA: false, transposeB: true, m: n, n: o, k: k, alpha: 1, a: xb.baseAddress!,
                                  lda: k, b: wb.baseAddress!, ldb: k, beta: bias == nil ? 0 : 1, c: yb.baseAddress!, ldc: o)
                }
            }
        }
        return y
    }

    /// `gradOutput [N, out] => gradInput [N, in]`; accumulates `weight.grad += gy^T x`,
    /// `bias.grad += sum_n gy`.
    public func backward(_ gradOutput: Tensor) -> Tensor {
        guard let x = input else { preconditionFailure("Linear.backward called without a forward") }
        let n = x.shape[0], o = outFeatures, k = inFeatures
        precondition(gradOutput.shape == [n, o], "Linear.backward: gradOutput \(gradOutput.shape) != [\(n), \(o)]")
        var gx = Tensor(uninitialized: [n, k])  // beta-0 GEMM writes all
        if n == 0 { return gx }
        let w = usedWeight ?? WeightMasking.effective(weight.value, weightMask)
        let masked = weightMask != nil
        let wantWeight = accumulate && (weight.role == .trainable || (masked && weightMaskGradient != nil))
        var rawWeightGrad: Tensor? = masked && wantWeight ? Tensor(zeros: weight.shape) : nil
        gradOutput.withUnsafeBufferPointer { gb in
            let gp = gb.baseAddress!
            if wantWeight {
                x.withUnsafeBufferPointer { xb in
                    let accumulateInto = { (dwb: UnsafeMutableBufferPointer<Float>) in
                        Kernels.sgemm(transposeA: true, transposeB: false, m: o, n: k, k: n, alpha: 1, a: gp, lda: o,
                                      b: xb.baseAddress!, ldb: k, beta: 1, c: dwb.baseAddress!, ldc: k)
                    }
                    if rawWeightGrad != nil {
                        rawWeightGrad!.withUnsafeMutableBufferPointer(accumulateInto)
                    } else {
                        weight.grad.withUnsafeMutableBufferPointer(accumulateInto)
                    }
                }
            }
            if accumulate, let bias, bias.role == .trainable {
                bias.grad.withUnsafeMutableBufferPointer { db in
                    for j in 0..<o {
                        var s = 0.0
                        for i in 0..<n { s += Double(gp[i * o + j]) }
                        db[j] += Float(s)
                    }
                }
            }
            w.withUnsafeBufferPointer { wb in
                gx.withUnsafeMutableBufferPointer { gxb in
                    Kernels.sgemm(transposeA: false, transposeB: false, m: n, n: k, k: o, alpha: 1, a: gp, lda: o,
                                  b: wb.baseAddress!, ldb: k, beta: 0, c: gxb.baseAddress!, ldc: k)
                }
            }
        }
        if let raw = rawWeightGrad, let mask = weightMask {
            WeightMasking.distribute(raw, weight: weight, mask: mask, maskGradient: &weightMaskGradient)
        }
        return gx
    }
}

/// Elementwise weight masks for Conv2d and Linear (UMAP / edge-popup, Ramanujan et al. 2020):
/// the layer computes with `weight * mask`; backward forms `G = dL/d(weight * mask)` and
/// ACCUMULATES `G * mask` into `weight.grad` (if trainable) and `G * weight` into
/// `weightMaskGradient` (if set): the straight-through gradient for the scores that chose the
/// mask, and the exact gradient with respect to a continuous mask.
enum WeightMasking {
    /// `weight * mask` (or `weight` without a mask). Precondition: equal shapes.
    static func effective(_ weight: Tensor, _ mask: Tensor?) -> Tensor {
        guard let mask else { return weight }
        precondition(mask.shape == weight.shape, "weightMask \(mask.shape) must match weight \(weight.shape)")
        var out = Tensor(uninitialized: weight.shape)
        let n = weight.count
        weight.withUnsafeBufferPointer { w in
            mask.withUnsafeBufferPointer { m in
                out.withUnsafeMutableBufferPointer { o in for i in 0..<n { o[i] = w[i] * m[i] } }
            }
        }
        return out
    }

    /// Distributes `raw = dL/d(weight * mask)` as described above.
    static func distribute(_ raw: Tensor, weight: Parameter, mask: Tensor, maskGradient: inout Tensor?) {
        let n = raw.count
        raw.withUnsafeBufferPointer { r in
            if weight.role == .trainable {
                mask.withUnsafeBufferPointer { m in
                    weight.grad.withUnsafeMutableBufferPointer { g in for i in 0..<n { g[i] += r[i] * m[i] } }
                }
            }
            if maskGradient != nil {
                precondition(maskGradient!.count == n, "weightMaskGradient \(maskGradient!.shape) must match weight \(weight.shape)")
                weight.value.withUnsafeBufferPointer { w in
                    maskGradient!.withUnsafeMutableBufferPointer { g in for i in 0..<n { g[i] += r[i] * w[i] } }
                }
            }
        }
    }
}
