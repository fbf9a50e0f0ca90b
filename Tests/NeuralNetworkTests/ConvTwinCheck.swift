import NeuralNetwork
import TensorCore
import TestSupport
import XCTest

/// Runs `conv` forward (train mode) and backward on `x` and checks, against the Double naive twin
/// (`NaiveKernels`), the output, the input gradient, the weight gradient (accumulated onto a
/// starting value of 0.5, since parameter gradients accumulate) and the bias gradient. The output
/// gradient is `randomTensor(outputShape, seed: gradOutputSeed)`. `dataAbsolute` is the absolute
/// tolerance of the output and input gradient (the weight and bias gradients use 1e-4).
func assertConvMatchesNaiveTwin(_ conv: Conv2d, input x: Tensor, gradOutputSeed: UInt64, dataAbsolute: Float = 1e-5,
                                _ label: String, file: StaticString = #filePath, line: UInt = #line) {
    let stride = (conv.stride.height, conv.stride.width), padding = (conv.padding.height, conv.padding.width)
    let y = conv.forward(x, context: ForwardContext(mode: .train))
    let ref = NaiveKernels.conv2d(x, weight: conv.weight.value, bias: conv.bias?.value, stride: stride, padding: padding)
    assertClose(y, ref, absolute: dataAbsolute, relative: 1e-4, "forward \(label)", file: file, line: line)
    let gy = randomTensor(ref.shape, seed: gradOutputSeed)
    conv.weight.grad = Tensor(shape: conv.weight.shape, filledWith: 0.5)
    let gx = conv.backward(gy)
    let refGrads = NaiveKernels.conv2dBackward(x, weight: conv.weight.value, gradOutput: gy, stride: stride, padding: padding)
    assertClose(gx, refGrads.gradInput, absolute: dataAbsolute, relative: 1e-4, "input gradient \(label)", file: file, line: line)
    assertClose(conv.weight.grad, refGrads.gradWeight + Tensor(shape: conv.weight.shape, filledWith: 0.5),
                absolute: 1e-4, relative: 1e-4, "weight gradient \(label)", file: file, line: line)
    if let bias = conv.bias {
        assertClose(bias.grad, refGrads.gradBias, absolute: 1e-4, relative: 1e-4, "bias gradient \(label)", file: file, line: line)
    }
}
