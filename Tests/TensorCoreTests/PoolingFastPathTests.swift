@testable import TensorCore
import XCTest

/// The unrolled 2x2 stride-2 max-pool equals the generic window scan, values and argmax, bit for
/// bit, including ties, NaN (the last NaN of a window wins, as in the scan), -infinity and odd
/// sizes (the last row/column dropped, floor mode).
final class PoolingFastPathTests: XCTestCase {
    func testMaxPool2x2EqualsTheGenericScan() {
        var rng = SplitMix64(seed: 41)
        for (h, w) in [(2, 2), (4, 6), (5, 7), (28, 28), (7, 3)] {
            let planes = 3
            var x = (0..<(planes * h * w)).map { _ in Float(Int.random(in: -3...3, using: &rng)) }  // many ties
            for i in stride(from: 0, to: x.count, by: 7) { x[i] = .nan }
            for i in stride(from: 3, to: x.count, by: 11) { x[i] = -.infinity }
            let g = WindowGeometry(channels: 1, height: h, width: w, kernelHeight: 2, kernelWidth: 2, strideHeight: 2, strideWidth: 2)
            let n = planes * g.outputPlane
            var fast = [Float](repeating: 1, count: n), generic = [Float](repeating: 2, count: n)
            var fastArg = [Int32](repeating: -1, count: n), genericArg = [Int32](repeating: -2, count: n)
            x.withUnsafeBufferPointer { xb in
                Kernels.maxPoolForward(xb.baseAddress!, planes: planes, geometry: g, output: &fast, argmax: &fastArg)
                Kernels.maxPoolForwardGeneric(xb.baseAddress!, planes: planes, geometry: g, output: &generic, argmax: &genericArg)
            }
            XCTAssertEqual(fast.map(\.bitPattern), generic.map(\.bitPattern), "\(h)x\(w)")
            XCTAssertEqual(fastArg, genericArg, "\(h)x\(w)")
            XCTAssertTrue(fast.contains { $0.isNaN }, "the case must exercise NaN windows")
        }
    }
}
