import NeuralNetwork

extension Flooding: LossTransform {
    /// beta * sign(beta * CE_B - xi): the derivative of |beta * CE_B - xi| + xi in CE_B.
    public func gradientMultiplier(globalMeanLoss: Double) -> Double { beta * sign(globalMeanLoss: globalMeanLoss) }

    public func perSampleMultipliers(globalMeanLoss: Double, sampleIDs: [Int64]) -> [Float]? {
        guard let atypical = atypicalIDs else { return nil }
        let s = sign(globalMeanLoss: globalMeanLoss)
        if s >= 0 { return [Float](repeating: Float(beta * s), count: sampleIDs.count) }
        return sampleIDs.map { Float(atypical.contains($0) ? -beta : beta) }
    }

    public var hasPerSampleMultipliers: Bool { atypicalIDs != nil }

    public var objectiveDescription: String {
        let x = String(format: "%.6f", xi)
        var text = beta == 1
            ? "flooding |CE_B - \(x)| + \(x) on the global batch mean (UM; xi \(x)"
            : "flooding |\(beta) * CE_B - \(x)| + \(x) on the global batch mean (UM; xi \(x), beta \(beta), level xi/beta "
                + String(format: "%.6f", level)
        if atypicalIDs != nil { text += "; ascent restricted to \(atypicalIDs!.count) atypical samples" }
        return text + ")"
    }
}
