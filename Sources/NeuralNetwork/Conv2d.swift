import TensorCore

/// 2-D convolution with PyTorch `nn.Conv2d` semantics (cross-correlation, zero padding, no
/// dilation, groups 1): `x [N, Cin, H, W] => [N, Cout, OH, OW]`, `OH = (H + 2*pH - KH)/sH + 1`.
/// Parameters `weight [Cout, Cin, KH, KW]` and optional `bias [Cout]`.
///
/// The layer owns its parameters, chooses the algorithm and adds the bias; the arithmetic runs
/// in TensorCore's drivers:
/// - im2col + one sgemm per chunk of samples laid side by side
///   (`Kernels.im2colConvolutionForward/Backward`), so the GEMM N dimension is large while the
///   column buffer stays bounded (`maxColumnFloats`). 1x1 convolutions with stride 1 and no
///   padding skip im2col; stride-1 convolutions whose output width equals the input width use
///   the shifted-block im2col. Backward recomputes the columns. `targetColumns` 1024 was the
///   fastest of 256-131072 measured (2026-11-30, docs/performance.md).
/// - Winograd (Lavin & Gray 2016; `Kernels.winogradConvolutionForward/Backward`) for 3x3
///   stride-1 convolutions, in forward and in both backward products: F(4x4, 3x3) (36 GEMMs over
///   the channels, 4x fewer multiplies) or F(2x2, 3x3) (16 GEMMs, 2.25x fewer).
///
/// `algorithm` chooses (`.automatic`: F(4x4, 3x3) when both channel counts are at least
/// `winogradMinimumChannels`). The command line reads `UMTRAIN_CONV_ALGORITHM` once at start-up
/// and passes it to the models it builds (`Layer.setConvolutionAlgorithm(_:)`).
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

        /// One line for run headers: what the algorithm does.
        public var summary: String {
            switch self {
            case .automatic:
                return "auto: Winograd F(\(Conv2d.automaticWinogradTile)x\(Conv2d.automaticWinogradTile),3x3) for 3x3 stride-1 layers with "
                    + ">= \(Conv2d.winogradMinimumChannels) channels in and out, im2col + sgemm otherwise"
            case .im2col: return "im2col + sgemm for every layer"
            case .winograd2: return "Winograd F(2x2,3x3) for every 3x3 stride-1 layer, im2col + sgemm otherwise"
            case .winograd4: return "Winograd F(4x4,3x3) for every 3x3 stride-1 layer, im2col + sgemm otherwise"
            }
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
    /// Convolution algorithm (default `.automatic`).
    public var algorithm: Algorithm = .automatic
    /// Target number of Winograd tiles (m x m output blocks, samples side by side) per chunk
    /// (rounded to whole samples, at least one: a 32x32 plane is 64 F(4x4) tiles);
    /// nil: about 768 outputs (192 tiles of F(2x2), 48 of F(4x4)), the fastest of 64-2048 tiles
    /// (F(2x2)) and 32-256 (F(4x4)) measured on wrn40_2: the transform buffers stay in L2.
    public var targetTiles: Int?

    /// Multiply-accumulates of the last forward, whole batch:
    /// `N * Cout * OH * OW * Cin * KH * KW` (bias additions not counted).
    public private(set) var lastForwardMACs = 0
    /// Input shape `[N, Cin, H, W]` of the last forward (nil before the first).
    public private(set) var lastInputShape: [Int]?

    private var input: Tensor?
    private var accumulate = true
    private let workspace = ConvolutionWorkspace()

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

    /// Samples per im2col chunk: about `targetColumns` GEMM columns, the column buffer within
    /// `maxColumnFloats`, at least one.
    func chunkSize(batch: Int, plane: Int, rows: Int) -> Int {
        let byTarget = Swift.max(1, targetColumns / Swift.max(plane, 1))
        let byMemory = Swift.max(1, maxColumnFloats / Swift.max(rows * plane, 1))
        return Swift.max(1, Swift.min(batch, byTarget, byMemory))
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
        if n == 0 { return y }
        x.withUnsafeBufferPointer { xb in
            weight.value.withUnsafeBufferPointer { wb in
                y.withUnsafeMutableBufferPointer { yb in
                    if usesWinograd {
                        let wg = winogradGeometry(h, w)
                        Kernels.winogradConvolutionForward(input: xb.baseAddress!, batch: n, inChannels: c, geometry: wg,
                                                           weight: wb.baseAddress!, outChannels: o,
                                                           chunk: winogradChunk(batch: n, tiles: wg.tiles),
                                                           output: yb.baseAddress!, workspace: workspace)
                    } else {
                        Kernels.im2colConvolutionForward(input: xb.baseAddress!, batch: n, geometry: g, weight: wb.baseAddress!,
                                                         outChannels: o, chunk: chunkSize(batch: n, plane: p, rows: rows),
                                                         output: yb.baseAddress!, workspace: workspace)
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
        let wantWeight = accumulate && weight.role == .trainable
        if accumulate, let bias, bias.role == .trainable {
            var sums = [Double](repeating: 0, count: o)
            gradOutput.withUnsafeBufferPointer { gb in
                sums.withUnsafeMutableBufferPointer {
                    Kernels.channelSum(gb.baseAddress!, batch: n, channels: o, plane: p, out: $0.baseAddress!)
                }
            }
            bias.grad.withUnsafeMutableBufferPointer { for i in 0..<o { $0[i] += Float(sums[i]) } }
        }
        x.withUnsafeBufferPointer { xb in
            weight.value.withUnsafeBufferPointer { wb in
                gradOutput.withUnsafeBufferPointer { gb in
                    gradInput.withUnsafeMutableBufferPointer { gib in
                        func run(_ weightGradient: UnsafeMutablePointer<Float>?) {
                            if usesWinograd {
                                let wg = winogradGeometry(h, w)
                                Kernels.winogradConvolutionBackward(input: xb.baseAddress!, gradOutput: gb.baseAddress!, batch: n,
                                                                    inChannels: c, geometry: wg, weight: wb.baseAddress!,
                                                                    outChannels: o, chunk: winogradChunk(batch: n, tiles: wg.tiles),
                                                                    gradInput: gib.baseAddress!, weightGradient: weightGradient,
                                                                    workspace: workspace)
                            } else {
                                Kernels.im2colConvolutionBackward(input: xb.baseAddress!, gradOutput: gb.baseAddress!, batch: n,
                                                                  geometry: g, weight: wb.baseAddress!, outChannels: o,
                                                                  chunk: chunkSize(batch: n, plane: p, rows: rows),
                                                                  gradInput: gib.baseAddress!, weightGradient: weightGradient,
                                                                  workspace: workspace)
                            }
                        }
                        if wantWeight {
                            weight.grad.withUnsafeMutableBufferPointer { run($0.baseAddress!) }
                        } else {
                            run(nil)
                        }
                    }
                }
            }
        }
        return gradInput
    }
}

extension Layer {
    /// Sets `algorithm` of every Conv2d in this layer tree (the command line's
    /// `UMTRAIN_CONV_ALGORITHM`, read once at start-up).
    public func setConvolutionAlgorithm(_ algorithm: Conv2d.Algorithm) {
        for (_, layer) in namedDescendants() {
            if let conv = layer as? Conv2d { conv.algorithm = algorithm }
        }
    }
}
