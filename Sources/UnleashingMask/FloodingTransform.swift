import NeuralNetwork

extension Flooding: LossTransform {
    public func gradientMultiplier(globalMeanLoss: Double) -> Double { sign(globalMeanLoss: globalMeanLoss) }

    public func perSampleMultipliers(globalMeanLoss: Double, sampleIDs: [Int64]) -> [Float]? {
        guard let atypical = atypicalIDs else { return nil }
        let s = sign(globalMeanLoss: globalMeanLoss)
        if s >= 0 { return [Float](repeating: Float(s), count: sampleIDs.count) }
        return sampleIDs.map { atypical.contains($0) ? -1 : 1 }
    }

    public var objectiveDescription: String {
        let b = String(format: "%.6f", level)
        var text = "flooding |CE_B - \(b)| + \(b) on the global batch mean (UM; xi \(String(format: "%.6f", xi))"
        if beta != 1 { text += ", beta \(beta)" }
        if atypicalIDs != nil { text += "; ascent restricted to \(atypicalIDs!.count) atypical samples" }
        return text + ")"
    }
}
