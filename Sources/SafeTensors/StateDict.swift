/// What a model expects for one state-dict entry: PyTorch name, dtype and shape.
/// Parameters and running statistics are `F32`; `num_batches_tracked` is `I64` with shape `[]`.
public struct SafeTensorsSpec: Sendable, Equatable, Hashable {
    public var name: String
    public var dtype: SafeTensorsDType
    public var shape: [Int]

    public init(name: String, dtype: SafeTensorsDType = .f32, shape: [Int]) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
    }
}

/// A key present in both the model and the file whose shape or dtype differs.
public struct StateDictMismatch: Sendable, Equatable {
    public var name: String
    public var expectedDType: SafeTensorsDType
    public var expectedShape: [Int]
    public var actualDType: SafeTensorsDType
    public var actualShape: [Int]
}

/// Everything that differs between a model's expected state dict and a file.
public struct StateDictReport: Sendable, Equatable {
    /// Keys the model expects that the file lacks, in the model's order.
    public var missing: [String] = []
    /// Keys in the file that the model does not have, in file order.
    public var unexpected: [String] = []
    /// Keys present in both with a different shape or dtype, in the model's order.
    public var mismatched: [StateDictMismatch] = []

    public init(missing: [String] = [], unexpected: [String] = [], mismatched: [StateDictMismatch] = []) {
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched
    }

    /// `true` when every expected key is present with the right shape and dtype and nothing else is.
    public var isClean: Bool { missing.isEmpty && unexpected.isEmpty && mismatched.isEmpty }

    /// One-line human-readable listing of every offending key (nothing is elided).
    public var summary: String {
        var parts: [String] = []
        func plural(_ count: Int, _ word: String) -> String { "\(count) \(word)\(count == 1 ? "" : "s")" }
        if !missing.isEmpty {
            parts.append("\(plural(missing.count, "missing key")) [\(missing.joined(separator: ", "))]")
        }
        if !unexpected.isEmpty {
            parts.append("\(plural(unexpected.count, "unexpected key")) [\(unexpected.joined(separator: ", "))]")
        }
        if !mismatched.isEmpty {
            let items = mismatched.map { item in
                "\(item.name): expected \(item.expectedDType) \(item.expectedShape), got \(item.actualDType) \(item.actualShape)"
            }
            parts.append("\(plural(mismatched.count, "shape/dtype mismatch")) [\(items.joined(separator: "; "))]")
        }
        return parts.isEmpty ? "no differences" : parts.joined(separator: "; ")
    }
}

/// The result of matching a file against a model's expected state dict.
public struct StateDictMatch: Sendable, Equatable {
    /// The records that match an expected key exactly (name, shape, dtype), in the model's order.
    public var matched: [SafeTensorsRecord]
    /// What was skipped (empty after a successful strict match).
    public var report: StateDictReport
}

extension SafeTensorsFile {
    /// Matches this file's records against the state dict a model expects, like PyTorch
    /// `Module.load_state_dict(state_dict, strict=...)`.
    ///
    /// - strict `true`: any missing key, unexpected key or shape/dtype mismatch throws ONE
    ///   ``SafeTensorsError/stateDictMismatch(source:report:)`` listing all of them.
    /// - strict `false`: returns the exactly-matching subset and a report of what was skipped.
    ///   Unlike PyTorch (which raises on size mismatch even when `strict=False`), mismatched keys
    ///   are skipped and reported; check `report.mismatched` to reproduce PyTorch's behaviour.
    ///
    /// - Parameters:
    ///   - expected: the model's entries in its order; names must be unique.
    ///   - source: names the checkpoint in the error (usually its path).
    /// - Precondition: `expected` has no duplicate names (programmer error).
    public func matchStateDict(expected: [SafeTensorsSpec], strict: Bool,
                               source: String = "<memory>") throws(SafeTensorsError) -> StateDictMatch {
        var expectedNames = Set<String>()
        for spec in expected {
            precondition(expectedNames.insert(spec.name).inserted,
                         "matchStateDict: expected specs list '\(spec.name)' twice")
        }
        var byName: [String: SafeTensorsRecord] = [:]
        for record in records where byName[record.name] == nil { byName[record.name] = record }

        var report = StateDictReport()
        var matched: [SafeTensorsRecord] = []
        for spec in expected {
            guard let record = byName[spec.name] else {
                report.missing.append(spec.name)
                continue
            }
            if record.shape == spec.shape && record.dtype == spec.dtype {
                matched.append(record)
            } else {
                report.mismatched.append(StateDictMismatch(
                    name: spec.name, expectedDType: spec.dtype, expectedShape: spec.shape,
                    actualDType: record.dtype, actualShape: record.shape))
            }
        }
        report.unexpected = records.map(\.name).filter { !expectedNames.contains($0) }
        if strict && !report.isClean {
            throw .stateDictMismatch(source: source, report: report)
        }
        return StateDictMatch(matched: matched, report: report)
    }
}
