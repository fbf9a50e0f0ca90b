import NeuralNetwork

/// The convolution algorithm a run uses (`UMTRAIN_CONV_ALGORITHM`, read once when a command
/// starts) and where it came from; models are built with it (`ModelFactory.make`) and run
/// headers and `provenance.json` print it.
public struct ConvolutionSetting: Equatable, Sendable {
    public var algorithm: Conv2d.Algorithm
    /// Whether the environment variable set it (else the automatic default).
    public var fromEnvironment: Bool

    public init(algorithm: Conv2d.Algorithm = .automatic, fromEnvironment: Bool = false) {
        self.algorithm = algorithm
        self.fromEnvironment = fromEnvironment
    }

    /// The environment variable that sets the algorithm for every rank.
    public static let environmentVariable = "UMTRAIN_CONV_ALGORITHM"

    /// The setting of `environment`.
    /// - Throws: ``ConfigError`` naming the variable when its value is not an algorithm name.
    public static func from(environment: [String: String]) throws -> ConvolutionSetting {
        guard let raw = environment[environmentVariable] else { return ConvolutionSetting() }
        guard let algorithm = Conv2d.Algorithm(rawValue: raw) else {
            throw ConfigError.invalidValue(file: "environment", key: environmentVariable,
                                           expected: "one of " + Conv2d.Algorithm.allCases.map(\.rawValue).joined(separator: ", "),
                                           actual: "'\(raw)'", hint: "unset it for the automatic choice.")
        }
        return ConvolutionSetting(algorithm: algorithm, fromEnvironment: true)
    }

    /// One line for run headers and provenance.
    public var description: String {
        algorithm.summary + (fromEnvironment ? " (\(Self.environmentVariable))" : "")
    }
}
