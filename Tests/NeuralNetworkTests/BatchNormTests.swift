import NeuralNetwork
import TensorCore
import TestSupport
import XCTest

/// A reducer that plays "the other replica": it adds a fixed contribution to every call, in
/// order (forward statistics, then backward sums).
final class AddingReducer: BatchNormStatisticsReducer {
    var contributions: [[Double]]
    var calls = 0
    init(_ contributions: [[Double]]) { self.contributions = contributions }
    func sumAcrossReplicas(_ values: UnsafeMutableBufferPointer<Double>) {
        let add = contributions[calls]
        precondition(add.count == values.count, "reducer call \(calls): \(values.count) values, test supplied \(add.count)")
        for i in 0..<values.count { values[i] += add[i] }
        calls += 1
    }
}

final class BatchNormTests: XCTestCase {
    /// Batch [1, 2, 3, 10] in one channel: mean 4, biased variance 12.5 (normalises),
    /// unbiased variance 50/3 = 16.6667 (running_var).
    func testWorkedValues() {
        let bn = BatchNorm2d(numFeatures: 1)
        let x = Tensor(shape: [4, 1, 1, 1], values: [1, 2, 3, 10])
        let y = bn.forward(x, context: ForwardContext(mode: .train))
        let s: Double = (12.5 + 1e-5).squareRoot()
        let expected: [Float] = [-3, -2, -1, 6].map { Float($0 / s) }  // (x - 4) / sqrt(12.5 + eps)
        assertClose(y.scalars, expected, absolute: 1e-6)
        assertClose(bn.runningMean.value.scalars, [0.4], absolute: 1e-7)                 // 0.9*0 + 0.1*4
        assertClose(bn.runningVar.value.scalars, [Float(0.9 + 0.1 * 50.0 / 3)], absolute: 1e-6)  // 2.56667
        XCTAssertEqual(bn.numBatchesTracked.value, 1)
        // Eval uses the running statistics.
        let e = bn.forward(Tensor(shape: [1, 1, 1, 1], values: [2]), context: .eval)
        let runningVar: Double = 0.9 + 0.1 * 50.0 / 3
        let expectedEval = Float(1.6 / (runningVar + 1e-5).squareRoot())  // (2 - 0.4) / sqrt(rv + eps)
        assertClose(e.scalars, [expectedEval], absolute: 1e-6)
        XCTAssertEqual(bn.numBatchesTracked.value, 1, "eval does not count")
    }

    /// A large offset must not cancel the variance: [1001, 1002, 1003, 1010] has the same
    /// biased variance 12.5 and normalised values as [1, 2, 3, 10].
    func testLargeOffsetKeepsVarianceAccurate() {
        let values: [Float] = (0..<64).map { [1, 2, 3, 10][$0 % 4] + 1000 }
        let bn = BatchNorm2d(numFeatures: 1)
        let y = bn.forward(Tensor(shape: [2, 1, 4, 8], values: values), context: ForwardContext(mode: .train))
        let s: Double = (12.5 + 1e-5).squareRoot()
        let expected: [Float] = (0..<64).map { Float(([-3, -2, -1, 6] as [Double])[$0 % 4] / s) }
        assertClose(y.scalars, expected, absolute: 2e-4)
        assertClose(bn.runningVar.value.scalars, [Float(0.9 + 0.1 * 12.5 * 64 / 63)], absolute: 1e-4)
        // Synchronised path with an empty other replica is accurate too.
        let synced = BatchNorm2d(numFeatures: 1)
        let ys = synced.forward(Tensor(shape: [2, 1, 4, 8], values: values),
                                context: ForwardContext(mode: .train, batchNormReducer: AddingReducer([[0, 0, 0, 0]])))
        assertClose(ys.scalars, expected, absolute: 2e-4)
    }

    /// pitfalls.md F3: replica A holds [1, 2, 3], replica B [10] -> mean 4 and biased variance
    /// 12.5 of the whole batch (unbiased 50/3 in running_var), not the mean of the replicas'
    /// means (2 and 10 -> 6). B contributes sum 10, M2 0, n mean^2 100, count 1.
    func testUnevenReplicasCombineByCount() {
        let bn = BatchNorm2d(numFeatures: 1)
        let y = bn.forward(Tensor(shape: [3, 1, 1, 1], values: [1, 2, 3]),
                           context: ForwardContext(mode: .train, batchNormReducer: AddingReducer([[10, 0, 100, 1]])))
        let s: Double = (12.5 + 1e-5).squareRoot()
        assertClose(y.scalars, [Float(-3 / s), Float(-2 / s), Float(-1 / s)], absolute: 1e-6)
        assertClose(bn.runningMean.value.scalars, [0.4], absolute: 1e-7)
        assertClose(bn.runningVar.value.scalars, [Float(0.9 + 0.1 * 50.0 / 3)], absolute: 1e-6)
    }

    /// Worked example of the synchronised moments with a large offset and different replica
    /// means: replica A holds [1001, 1002], replica B [1003, 1010] (the full batch [1001, 1002,
    /// 1003, 1010]: mean 1004, biased variance 12.5). B contributes sum 2013, M2 about its mean
    /// 1006.5 = 3.5^2 + 3.5^2 = 24.5, n mean^2 = 2 * 1006.5^2 = 2026084.5, count 2; A's output
    /// must be (x - 1004) / sqrt(12.5 + eps) = [-3, -2] / 3.5355 and its running statistics
    /// those of the full batch (running_var with the unbiased 50/3).
    func testSynchronisedMomentsWithLargeOffsetWorkedValues() {
        let bn = BatchNorm2d(numFeatures: 1)
        let reducer = AddingReducer([[2013, 24.5, 2026084.5, 2]])
        let y = bn.forward(Tensor(shape: [2, 1, 1, 1], values: [1001, 1002]),
                           context: ForwardContext(mode: .train, batchNormReducer: reducer))
        let s: Double = (12.5 + 1e-5).squareRoot()
        assertClose(y.scalars, [Float(-3 / s), Float(-2 / s)], absolute: 1e-5)
        assertClose(bn.runningMean.value.scalars, [100.4], absolute: 1e-4)                       // 0.1 * 1004
        assertClose(bn.runningVar.value.scalars, [Float(0.9 + 0.1 * 50.0 / 3)], absolute: 1e-5)  // unbiased 16.667
    }

    func testNonAffineHasNoParametersButBuffers() {
        let bn = BatchNorm2d(numFeatures: 4, affine: false)
        XCTAssertTrue(bn.parameters.isEmpty)
        XCTAssertEqual(bn.buffers.map(\.localName), ["running_mean", "running_var"])
        XCTAssertEqual(bn.int64Buffers.map(\.localName), ["num_batches_tracked"])
        let affine = BatchNorm2d(numFeatures: 4)
        XCTAssertEqual(affine.stateEntries().map(\.name),
                       ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"])
        XCTAssertEqual(affine.weight!.value.scalars, [1, 1, 1, 1])
        XCTAssertEqual(affine.bias!.value.scalars, [0, 0, 0, 0])
    }

    /// Synchronised BN: replica A (first 2 samples) with a reducer supplying replica B's
    /// (last 3 samples) contributions must reproduce the single-process full batch rows of A:
    /// output, input gradient and running statistics. Parameter gradients stay local.
    func testSynchronisedStatisticsMatchFullBatch() {
        let c = 2
        let full = randomTensor([5, c, 2, 3], seed: 31)
        let gyFull = randomTensor([5, c, 2, 3], seed: 32)
        let p = 6
        let reference = BatchNorm2d(numFeatures: c)
        reference.weight!.value = Tensor(shape: [c], values: [1.3, 0.6])
        let yFull = reference.forward(full, context: ForwardContext(mode: .train))
        let gxFull = reference.backward(gyFull)

        let xs = full.scalars, gs = gyFull.scalars
        let split = 2 * c * p
        let xA = Tensor(shape: [2, c, 2, 3], values: Array(xs[..<split]))
        let gyA = Tensor(shape: [2, c, 2, 3], values: Array(gs[..<split]))
        // B's forward contribution: per-channel sum, M2 about B's own mean, n_B * mean_B^2, count.
        var forwardB = [Double](repeating: 0, count: 3 * c + 1)
        var mean = [Double](repeating: 0, count: c), invStd = [Double](repeating: 0, count: c)
        var sumAll = [Double](repeating: 0, count: c), sqAll = [Double](repeating: 0, count: c)
        for n in 0..<5 { for ch in 0..<c { for i in 0..<p {
            let v = Double(xs[(n * c + ch) * p + i])
            sumAll[ch] += v; sqAll[ch] += v * v
            if n >= 2 { forwardB[ch] += v }
        } } }
        let countB = Double(3 * p)
        for ch in 0..<c {
            let meanB = forwardB[ch] / countB
            for n in 2..<5 { for i in 0..<p {
                let d = Double(xs[(n * c + ch) * p + i]) - meanB
                forwardB[c + ch] += d * d
            } }
            forwardB[2 * c + ch] = countB * meanB * meanB
        }
        forwardB[3 * c] = countB
        for ch in 0..<c {
            mean[ch] = sumAll[ch] / Double(5 * p)
            invStd[ch] = 1 / (sqAll[ch] / Double(5 * p) - mean[ch] * mean[ch] + 1e-5).squareRoot()
        }
        // B's backward contribution: sum dy and sum dy * xhat with global statistics.
        var backwardB = [Double](repeating: 0, count: 2 * c)
        for n in 2..<5 { for ch in 0..<c { for i in 0..<p {
            let k = (n * c + ch) * p + i
            let g = Double(gs[k])
            backwardB[ch] += g
            backwardB[c + ch] += g * (Double(xs[k]) - mean[ch]) * invStd[ch]
        } } }
        let replicaA = BatchNorm2d(numFeatures: c)
        replicaA.weight!.value = Tensor(shape: [c], values: [1.3, 0.6])
        let reducer = AddingReducer([forwardB, backwardB])
        let yA = replicaA.forward(xA, context: ForwardContext(mode: .train, batchNormReducer: reducer))
        let gxA = replicaA.backward(gyA)
        XCTAssertEqual(reducer.calls, 2)
        assertClose(yA.scalars, Array(yFull.scalars[..<split]), absolute: 1e-5)
        assertClose(gxA.scalars, Array(gxFull.scalars[..<split]), absolute: 1e-5)
        assertClose(replicaA.runningMean.value, reference.runningMean.value, absolute: 1e-6)
        assertClose(replicaA.runningVar.value, reference.runningVar.value, absolute: 1e-6)
        // Local bias gradient = sum of A's dy only.
        var localSum: Float = 0
        for i in 0..<p { localSum += gs[i] + gs[c * p + i] }
        assertClose(Double(replicaA.bias!.grad.scalars[0]), Double(localSum), absolute: 1e-5)
    }

    /// A replica with 0 samples contributes count 0 and still takes part in both reductions;
    /// its running statistics follow the global batch.
    func testEmptyReplicaContributesCountZero() {
        let bn = BatchNorm2d(numFeatures: 1)
        // Other replica holds [1, 2, 3, 10]: sum 16, M2 about its mean 4 = 9 + 4 + 1 + 36 = 50,
        // n mean^2 = 4 * 16 = 64, count 4.
        let reducer = AddingReducer([[16, 50, 64, 4], [0, 0]])
        let y = bn.forward(Tensor(zeros: [0, 1, 2, 2]), context: ForwardContext(mode: .train, batchNormReducer: reducer))
        XCTAssertEqual(y.shape, [0, 1, 2, 2])
        XCTAssertEqual(bn.backward(y).shape, [0, 1, 2, 2])
        XCTAssertEqual(reducer.calls, 2)
        assertClose(bn.runningMean.value.scalars, [0.4], absolute: 1e-7)
        assertClose(bn.runningVar.value.scalars, [Float(0.9 + 0.1 * 50.0 / 3)], absolute: 1e-6)
        // Without any samples anywhere, nothing is updated.
        let lonely = BatchNorm2d(numFeatures: 1)
        XCTAssertEqual(lonely.forward(Tensor(zeros: [0, 1, 1, 1]), context: ForwardContext(mode: .train)).count, 0)
        XCTAssertEqual(lonely.runningVar.value.scalars, [1])
        XCTAssertEqual(lonely.numBatchesTracked.value, 0)
    }
}

final class CrossEntropyTests: XCTestCase {
    /// logits [1, 2, 3], label 2: loss = log(e + e^2 + e^3) - 3 = 0.4076059644;
    /// softmax = [0.0900305732, 0.2447284711, 0.6652409558].
    func testWorkedValues() {
        let r = softmaxCrossEntropy(logits: Tensor(shape: [1, 3], values: [1, 2, 3]), labels: [2])
        assertClose(r.meanLoss, 0.4076059644, absolute: 1e-7)
        assertClose(r.logitsGradient.scalars, [0.0900305732, 0.2447284711, 0.6652409558 - 1], absolute: 1e-7)
    }

    /// PyTorch label smoothing s = 0.1, K = 3: target = 0.9 onehot + 0.1/3, so
    /// loss = lse - (0.9 * 3 + (0.1/3) * (1 + 2 + 3)) = 3.4076059644 - 2.9 = 0.5076059644.
    func testLabelSmoothingMatchesHandComputation() {
        let r = softmaxCrossEntropy(logits: Tensor(shape: [1, 3], values: [1, 2, 3]), labels: [2], labelSmoothing: 0.1)
        assertClose(r.meanLoss, 0.5076059644, absolute: 1e-7)
        let t: [Double] = [0.1 / 3, 0.1 / 3, 0.9 + 0.1 / 3]
        let sm: [Double] = [0.0900305732, 0.2447284711, 0.6652409558]
        assertClose(r.logitsGradient.scalars, (0..<3).map { Float(sm[$0] - t[$0]) }, absolute: 1e-7)
    }

    func testPerSampleLossesMeanSumAndGradientScale() {
        let logits = Tensor(shape: [2, 2], values: [1000, 0, 0, 0])
        let r = softmaxCrossEntropy(logits: logits, labels: [1, 0], gradientScale: 0.25)
        // Sample 0: stable log-sum-exp gives exactly 1000 nats; sample 1: log 2.
        assertClose(r.perSampleLoss, [1000, Float(0.6931471806)], absolute: 1e-5)
        assertClose(r.lossSum, 1000 + 0.6931471806, absolute: 1e-6)
        assertClose(r.meanLoss, (1000 + 0.6931471806) / 2, absolute: 1e-6)
        assertClose(r.logitsGradient.scalars, [0.25, -0.25, -0.125, 0.125], absolute: 1e-7)
        XCTAssertFalse(r.logitsGradient.scalars.contains { !$0.isFinite })
        // Default scale 1/N.
        let d = softmaxCrossEntropy(logits: logits, labels: [1, 0])
        assertClose(d.logitsGradient.scalars, [0.5, -0.5, -0.25, 0.25], absolute: 1e-7)
    }
}
