import TensorCore

/// Fully connected layer with PyTorch `nn.Linear` semantics: `x [N, in] => x W^T + b [N, out]`,
/// `weight [out, in]`, optional `bias [out]`.
public final class Linear: Layer {
    public let inFeatures: Int
    public let outFeatures: Int
    public let weight: Parameter
    public let bias: Parameter?
    private var input: Tensor?
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
        let w = weight.value
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
        let w = weight.value
        let wantWeight = accumulate && weight.role == .trainable
        gradOutput.withUnsafeBufferPointer { gb in
            let gp = gb.baseAddress!
            if wantWeight {
                x.withUnsafeBufferPointer { xb in
                    weight.grad.withUnsafeMutableBufferPointer { dwb in
                        Kernels.sgemm(transposeA: true, transposeB: false, m: o, n: k, k: n, alpha: 1, a: gp, lda: o,
                                      b: xb.baseAddress!, ldb: k, beta: 1, c: dwb.baseAddress!, ldc: k)
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
        return gx
    }
}
