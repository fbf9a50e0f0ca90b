import TensorCore
import TestSupport
import XCTest

final class TensorTests: XCTestCase {
    func testInitialisersAndIndexing() {
        let t = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(t.count, 6)
        XCTAssertEqual(t[1, 2], 6)
        XCTAssertEqual(t[0, 1], 2)
        XCTAssertEqual(Tensor(shape: [2, 2], filledWith: 2.5).scalars, [2.5, 2.5, 2.5, 2.5])
        XCTAssertEqual(Tensor(zeros: [3, 0]).count, 0)
        XCTAssertEqual(Tensor(zeros: []).count, 1, "a scalar has one element")
    }

    func testCopyOnWrite() {
        let a = Tensor(shape: [4], values: [1, 2, 3, 4])
        var b = a
        XCTAssertTrue(a.sharesStorage(with: b), "a copy shares storage until written")
        b[0] = 10
        XCTAssertFalse(a.sharesStorage(with: b))
        XCTAssertEqual(a.scalars, [1, 2, 3, 4], "writing the copy must not change the original")
        XCTAssertEqual(b.scalars, [10, 2, 3, 4])
    }

    func testReshapeSharesStorageAndKeepsOrder() {
        let a = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        let r = a.reshaped([3, 2])
        XCTAssertTrue(r.sharesStorage(with: a))
        XCTAssertEqual(r.shape, [3, 2])
        XCTAssertEqual(r[2, 1], 6)
        XCTAssertEqual(r[1, 0], 3)
    }

    func testArenaViewsWriteInPlace() {
        let storage = TensorStorage(capacity: 10, isArena: true)
        var v1 = Tensor(storage: storage, offset: 2, shape: [2, 2])
        let v2 = Tensor(storage: storage, offset: 0, shape: [10])
        v1.withUnsafeMutableBufferPointer { $0[3] = 7 }
        XCTAssertEqual(v2[5], 7, "arena views alias: element 3 of the view at offset 2 is element 5")
        XCTAssertEqual(v1.offset, 2)
        let private1 = v1.copy()
        XCTAssertFalse(private1.sharesStorage(with: v1))
    }

    func testAddScaleAndReductions() {
        let a = Tensor(shape: [3], values: [1, 2, 3])
        let b = Tensor(shape: [3], values: [0.5, -1, 4])
        XCTAssertEqual((a + b).scalars, [1.5, 1, 7])
        XCTAssertEqual((a * 2).scalars, [2, 4, 6])
        var c = a
        c.addScaled(b, alpha: -2)
        XCTAssertEqual(c.scalars, [0, 4, -5])
        XCTAssertEqual(a.sum(), 6)
        XCTAssertEqual(a.mean(), 2)
        XCTAssertEqual(c.maxAbs(), 5)
        // Double accumulation: 1e8 + 1 (x 1000) is lost in Float32 but not in Double.
        var big = [Float](repeating: 1, count: 1001)
        big[0] = 1e8
        XCTAssertEqual(Tensor(shape: [1001], values: big).sum(), 1e8 + 1000)
    }

    func testChannelSums() {
        // x [N=2, C=2, P=3]
        let x: [Float] = [1, 2, 3, 4, 5, 6, /* n1 */ 7, 8, 9, -1, -2, -3]
        var s = [Double](repeating: 0, count: 2), q = [Double](repeating: 0, count: 2)
        x.withUnsafeBufferPointer { xb in
            s.withUnsafeMutableBufferPointer { sb in
                q.withUnsafeMutableBufferPointer { qb in
                    Kernels.channelSumAndSumOfSquares(xb.baseAddress!, batch: 2, channels: 2, plane: 3,
                                                      sum: sb.baseAddress!, sumOfSquares: qb.baseAddress!)
                }
            }
        }
        XCTAssertEqual(s, [30, 9] as [Double])  // 1+2+3+7+8+9, 4+5+6-1-2-3
        XCTAssertEqual(q, [208, 91] as [Double])  // 1+4+9+49+64+81, 16+25+36+1+4+9
    }
}

final class GEMMTests: XCTestCase {
    func testSgemmMatchesNaiveWithTransposesOnOddShapes() {
        let (m, n, k) = (7, 5, 11)
        let a = randomTensor([m, k], seed: 1), b = randomTensor([k, n], seed: 2)
        let expected = NaiveKernels.matmul(a.scalars, b.scalars, m: m, n: n, k: k)
        assertClose(Tensor.matmul(a, b).scalars, expected, absolute: 1e-5)
        // Stored transposes: A^T stored [k, m], B^T stored [n, k].
        let at = transpose(a), bt = transpose(b)
        assertClose(Tensor.matmul(at, b, transposeA: true).scalars, expected, absolute: 1e-5)
        assertClose(Tensor.matmul(a, bt, transposeB: true).scalars, expected, absolute: 1e-5)
        assertClose(Tensor.matmul(at, bt, transposeA: true, transposeB: true).scalars, expected, absolute: 1e-5)
    }

    func testSgemmBetaAccumulatesAndLeadingDimensions() {
        // C[2, 2] (inside a 2x3 buffer, ldc 3) = 2 * A B + 1 * C.
        let a: [Float] = [1, 2, 3, 4]          // [2, 2]
        let b: [Float] = [1, 0, 0, 1]          // identity
        var c: [Float] = [10, 10, -1, 10, 10, -1]
        a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
            Kernels.sgemm(transposeA: false, transposeB: false, m: 2, n: 2, k: 2, alpha: 2, a: ap.baseAddress!, lda: 2,
                          b: bp.baseAddress!, ldb: 2, beta: 1, c: cp.baseAddress!, ldc: 3)
        } } }
        XCTAssertEqual(c, [12, 14, -1, 16, 18, -1], "padding column (-1) must be untouched")
    }

    private func transpose(_ t: Tensor) -> Tensor {
        let (r, c) = (t.shape[0], t.shape[1])
        var out = Tensor(zeros: [c, r])
        for i in 0..<r { for j in 0..<c { out[j, i] = t[i, j] } }
        return out
    }
}
