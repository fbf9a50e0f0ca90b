import TensorCore
import XCTest

/// Asserts `|actual - expected| <= absolute + relative * |expected|` elementwise, reporting the
/// worst element with its flat index. Precondition-free: a shape mismatch is a test failure.
public func assertClose(_ actual: Tensor, _ expected: Tensor, absolute: Float = 1e-5, relative: Float = 1e-4,
                        _ message: String = "", file: StaticString = #filePath, line: UInt = #line) {
    guard actual.shape == expected.shape else {
        XCTFail("shape \(actual.shape) != expected \(expected.shape) \(message)", file: file, line: line)
        return
    }
    assertClose(actual.scalars, expected.scalars, absolute: absolute, relative: relative, message,
                file: file, line: line)
}

/// Array version of `assertClose(_:_:)`.
public func assertClose(_ actual: [Float], _ expected: [Float], absolute: Float = 1e-5, relative: Float = 1e-4,
                        _ message: String = "", file: StaticString = #filePath, line: UInt = #line) {
    guard actual.count == expected.count else {
        XCTFail("count \(actual.count) != expected \(expected.count) \(message)", file: file, line: line)
        return
    }
    var worst = -1
    var worstExcess: Float = 0
    var failures = 0
    for i in 0..<actual.count {
        let err = abs(actual[i] - expected[i])
        let allowed = absolute + relative * abs(expected[i])
        if !(err <= allowed) {
            failures += 1
            let excess = err.isNaN ? .infinity : err - allowed
            if worst < 0 || excess > worstExcess { worst = i; worstExcess = excess }
        }
    }
    if worst >= 0 {
        XCTFail("\(failures)/\(actual.count) elements differ; worst at \(worst): actual \(actual[worst]) expected \(expected[worst]) (abs \(absolute), rel \(relative)) \(message)",
                file: file, line: line)
    }
}

/// Scalar version.
public func assertClose(_ actual: Double, _ expected: Double, absolute: Double = 1e-6, relative: Double = 1e-6,
                        _ message: String = "", file: StaticString = #filePath, line: UInt = #line) {
    let err = abs(actual - expected)
    if !(err <= absolute + relative * abs(expected)) {
        XCTFail("actual \(actual) expected \(expected) (abs \(absolute), rel \(relative)) \(message)", file: file, line: line)
    }
}

/// Central-difference gradient of a scalar function of a tensor:
/// `grad[i] = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)`, with the difference formed in Double.
/// `f` must evaluate the model in Float32; with `eps = 1e-2` and outputs of order 1 the
/// truncation error is O(eps^2 * f''') and the rounding error about `1e-7 * |f| / eps`.
public func numericalGradient(of f: (Tensor) -> Double, at x: Tensor, epsilon: Float = 1e-2) -> Tensor {
    var probe = x.copy()
    var grad = Tensor(zeros: x.shape)
    for i in 0..<x.count {
        let original = probe.withUnsafeBufferPointer { $0[i] }
        probe.withUnsafeMutableBufferPointer { $0[i] = original + epsilon }
        let plus = f(probe)
        probe.withUnsafeMutableBufferPointer { $0[i] = original - epsilon }
        let minus = f(probe)
        probe.withUnsafeMutableBufferPointer { $0[i] = original }
        let g = Float((plus - minus) / (2 * Double(epsilon)))
        grad.withUnsafeMutableBufferPointer { $0[i] = g }
    }
    return grad
}

/// Central-difference gradient with respect to a tensor mutated in place through `set`
/// (e.g. a parameter value living in an arena): `set(i, v)` writes element i, `f()` evaluates.
public func numericalGradient(count: Int, get: (Int) -> Float, set: (Int, Float) -> Void,
                              of f: () -> Double, epsilon: Float = 1e-2) -> [Float] {
    var grad = [Float](repeating: 0, count: count)
    for i in 0..<count {
        let original = get(i)
        set(i, original + epsilon)
        let plus = f()
        set(i, original - epsilon)
        let minus = f()
        set(i, original)
        grad[i] = Float((plus - minus) / (2 * Double(epsilon)))
    }
    return grad
}

/// A tensor of uniforms in [low, high) from a seeded counter-based stream (deterministic).
public func randomTensor(_ shape: [Int], seed: UInt64, low: Float = -1, high: Float = 1) -> Tensor {
    var t = Tensor(zeros: shape)
    var rng = RandomStream(seed: seed, stream: [0x7465_7374])
    let n = t.count
    t.withUnsafeMutableBufferPointer { rng.fillUniform($0.baseAddress!, count: n, low: low, high: high) }
    return t
}

/// `sum_i a[i] * b[i]` in Double: the scalar "loss" used by gradient checks (its gradient
/// with respect to `a` is `b`).
public func dot(_ a: Tensor, _ b: Tensor) -> Double {
    precondition(a.count == b.count, "dot: \(a.shape) vs \(b.shape)")
    let x = a.scalars, y = b.scalars
    var s = 0.0
    for i in 0..<x.count { s += Double(x[i]) * Double(y[i]) }
    return s
}
