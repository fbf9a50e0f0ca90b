import TensorCore

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
