import COpenBLAS

/// Namespace for the numeric kernels. Every kernel works on raw pointers (hot code takes the
/// pointer once per call) and documents its transform with shapes.
public enum Kernels {}

extension Kernels {
    /// Single-precision GEMM, row-major: `C[M, N] = alpha * op(A)[M, K] * op(B)[K, N] + beta * C`.
    ///
    /// `op(A)` is `A` (`[M, K]`, leading dimension `lda >= K`) or, with `transposeA`, `A^T` where
    /// `A` is stored `[K, M]` (`lda >= M`); likewise for `B` (`[K, N]` or stored `[N, K]`).
    /// `ldc >= N`. Thin wrapper over `cblas_sgemm` (OpenBLAS; thread count is set elsewhere).
    /// With `k == 0` this scales `C` by `beta`. Matches BLAS semantics: with `beta == 0`, `C` is
    /// not read.
    @inlinable
    public static func sgemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        if k == 0 {
            for i in 0..<m {
                let row = c + i * ldc
                if beta == 0 { row.update(repeating: 0, count: n) } else {
                    for j in 0..<n { row[j] *= beta }
                }
            }
            return
        }
        precondition(lda >= (transposeA ? m : k) && ldb >= (transposeB ? k : n) && ldc >= n,
                     "sgemm: leading dimensions lda \(lda) ldb \(ldb) ldc \(ldc) too small for M \(m) N \(n) K \(k)")
        cblas_sgemm(CblasRowMajor,
                    transposeA ? CblasTrans : CblasNoTrans,
                    transposeB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb),
                    beta, c, Int32(ldc))
    }
}

extension Kernels {
    /// Double-precision GEMM, row-major, `C[M, N] = alpha * A[M, K] * B[N, K]^T + beta * C`
    /// (B stored `[N, K]`, as rows of feature vectors): a thin wrapper over `cblas_dgemm`.
    /// Leading dimensions are K for A and B and N for C.
    public static func dgemmABt(m: Int, n: Int, k: Int, alpha: Double, a: UnsafePointer<Double>, b: UnsafePointer<Double>,
                                beta: Double, c: UnsafeMutablePointer<Double>) {
        if m == 0 || n == 0 { return }
        precondition(k > 0, "dgemmABt: K must be > 0")
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), alpha, a, Int32(k), b, Int32(k),
                    beta, c, Int32(n))
    }
}

extension Tensor {
    /// Matrix product of rank-2 tensors: `[M, K] x [K, N] => [M, N]` (with optional transposes
    /// of the stored operands, as in `Kernels.sgemm`). Precondition: inner dimensions agree.
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false,
                              transposeB: Bool = false) -> Tensor {
        precondition(a.rank == 2 && b.rank == 2, "matmul needs rank-2 tensors, got \(a.shape) and \(b.shape)")
        let m = transposeA ? a.shape[1] : a.shape[0]
        let k = transposeA ? a.shape[0] : a.shape[1]
        let kb = transposeB ? b.shape[1] : b.shape[0]
        let n = transposeB ? b.shape[0] : b.shape[1]
        precondition(k == kb, "matmul: op(A) \(m)x\(k) and op(B) \(kb)x\(n) do not agree (A \(a.shape), B \(b.shape))")
        var c = Tensor(zeros: [m, n])
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    Kernels.sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                                  alpha: 1, a: pa.baseAddress!, lda: a.shape[1],
                                  b: pb.baseAddress!, ldb: b.shape[1],
                                  beta: 0, c: pc.baseAddress!, ldc: n)
                }
            }
        }
        return c
    }
}
