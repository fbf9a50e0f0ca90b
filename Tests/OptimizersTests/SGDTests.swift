import Optimizers
import XCTest

/// Worked SGD values, hand-computed from torch.optim.SGD's update rule (and checked
/// against PyTorch 2.13 CPU): p = 1.0, grad = 0.5 on both steps, lr 0.1, weight decay 0.01.
final class SGDTests: XCTestCase {
    func run(_ hp: SGDHyperparameters, steps: Int) -> Float {
        var p: [Float] = [1.0]
        let g: [Float] = [0.5]
        var buf: [Float] = [0]
        for s in 0..<steps {
            p.withUnsafeMutableBufferPointer { pp in
                g.withUnsafeBufferPointer { gg in
                    buf.withUnsafeMutableBufferPointer { bb in
                        sgdUpdate(parameters: pp, gradients: gg, momentumBuffer: bb, momentumInitialized: s > 0, hp: hp)
                    }
                }
            }
        }
        return p[0]
    }

    func testPlainSGDWithWeightDecay() {
        // g = 0.5 + 0.01 * 1 = 0.51; p = 1 - 0.1 * 0.51 = 0.949
        XCTAssertEqual(run(.init(learningRate: 0.1, weightDecay: 0.01), steps: 1), 0.949, accuracy: 1e-7)
    }

    func testMomentumTwoSteps() {
        // step 1: buf = g = 0.51, p = 0.949
        // step 2: g = 0.5 + 0.01 * 0.949 = 0.50949; buf = 0.9 * 0.51 + 0.50949 = 0.96849
        //         p = 0.949 - 0.1 * 0.96849 = 0.852151
        let hp = SGDHyperparameters(learningRate: 0.1, momentum: 0.9, weightDecay: 0.01)
        XCTAssertEqual(run(hp, steps: 1), 0.949, accuracy: 1e-7)
        XCTAssertEqual(run(hp, steps: 2), 0.852151, accuracy: 1e-6)
    }

    func testNesterovTwoSteps() {
        // step 1: g = 0.51, buf = 0.51, step = 0.51 + 0.9 * 0.51 = 0.969, p = 0.9031
        // step 2: g = 0.509031, buf = 0.9 * 0.51 + 0.509031 = 0.968031,
        //         step = 0.509031 + 0.9 * 0.968031 = 1.3802589, p = 0.9031 - 0.13802589 = 0.76507411
        let hp = SGDHyperparameters(learningRate: 0.1, momentum: 0.9, weightDecay: 0.01, nesterov: true)
        XCTAssertEqual(run(hp, steps: 1), 0.9031, accuracy: 1e-6)
        XCTAssertEqual(run(hp, steps: 2), 0.76507411, accuracy: 1e-6)
    }

    func testDampeningIsNotAppliedOnTheFirstStep() {
        // step 1: buf = g = 0.51 (no dampening), p = 0.949
        // step 2: g = 0.50949; buf = 0.9 * 0.51 + (1 - 0.1) * 0.50949 = 0.917541; p = 0.8572459
        let hp = SGDHyperparameters(learningRate: 0.1, momentum: 0.9, dampening: 0.1, weightDecay: 0.01)
        XCTAssertEqual(run(hp, steps: 1), 0.949, accuracy: 1e-7)
        XCTAssertEqual(run(hp, steps: 2), 0.8572459, accuracy: 1e-6)
    }

    func testValidationNamesTheField() {
        XCTAssertThrowsError(try SGDHyperparameters(learningRate: 0.1, momentum: 1.0).validate()) {
            XCTAssertTrue("\($0)".contains("momentum must be in [0, 1), got 1.0"), "\($0)")
        }
        XCTAssertThrowsError(try SGDHyperparameters(learningRate: 0.1, momentum: 0.9, dampening: 0.5, nesterov: true).validate()) {
            XCTAssertTrue("\($0)".contains("Nesterov"), "\($0)")
        }
        XCTAssertThrowsError(try SGDHyperparameters(learningRate: -1).validate())
        XCTAssertNoThrow(try SGDHyperparameters(learningRate: 0.1, momentum: 0.9, weightDecay: 5e-4, nesterov: true).validate())
    }
}

final class LearningRateScheduleTests: XCTestCase {
    func testStepAndMultiStep() {
        let s = LearningRateSchedule(base: 0.1, kind: .step(stepSize: 30, gamma: 0.1))
        XCTAssertEqual(s.learningRate(epoch: 29), 0.1, accuracy: 1e-12)
        XCTAssertEqual(s.learningRate(epoch: 30), 0.01, accuracy: 1e-12)
        XCTAssertEqual(s.learningRate(epoch: 65), 0.001, accuracy: 1e-12)
        let m = LearningRateSchedule(base: 0.1, kind: .multiStep(milestones: [50, 75], gamma: 0.1))
        XCTAssertEqual(m.learningRate(epoch: 49), 0.1, accuracy: 1e-12)
        XCTAssertEqual(m.learningRate(epoch: 50), 0.01, accuracy: 1e-12)
        XCTAssertEqual(m.learningRate(epoch: 99), 0.001, accuracy: 1e-12)
    }

    func testCosinePerEpochAsInTheReference() {
        // 0.5 * (1 + cos(pi * e / 100)) * 0.1
        let c = LearningRateSchedule(base: 0.1, kind: .cosine(totalEpochs: 100))
        XCTAssertEqual(c.learningRate(epoch: 0), 0.1, accuracy: 1e-12)
        XCTAssertEqual(c.learningRate(epoch: 50), 0.05, accuracy: 1e-12)
        XCTAssertEqual(c.learningRate(epoch: 25, step: 99, stepsPerEpoch: 100), 0.5 * (1 + cos(Double.pi / 4)) * 0.1,
                       accuracy: 1e-12, "per-epoch cosine ignores the step")
    }

    func testCosinePerStepAndWarmup() {
        let c = LearningRateSchedule(base: 0.1, kind: .cosine(totalEpochs: 10), warmupEpochs: 2, perStep: true)
        // warm-up: base * (e * S + s + 1) / (W * S), S = 4
        XCTAssertEqual(c.learningRate(epoch: 0, step: 0, stepsPerEpoch: 4), 0.1 / 8, accuracy: 1e-12)
        XCTAssertEqual(c.learningRate(epoch: 1, step: 3, stepsPerEpoch: 4), 0.1, accuracy: 1e-12)
        // after warm-up: e = 2 - 2 + 2/4 = 0.5 of 8 epochs
        XCTAssertEqual(c.learningRate(epoch: 2, step: 2, stepsPerEpoch: 4), 0.5 * (1 + cos(Double.pi * 0.5 / 8)) * 0.1,
                       accuracy: 1e-12)
        let w = LearningRateSchedule(base: 0.2, kind: .constant, warmupEpochs: 4)
        XCTAssertEqual(w.learningRate(epoch: 0), 0.05, accuracy: 1e-12)
        XCTAssertEqual(w.learningRate(epoch: 3), 0.2, accuracy: 1e-12)
        XCTAssertEqual(w.learningRate(epoch: 7), 0.2, accuracy: 1e-12)
    }
}
