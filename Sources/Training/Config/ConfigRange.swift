import Foundation

/// The valid values of one numeric configuration key. Every section declares the range of each
/// of its numeric keys in a `ranges` table right after the keys themselves, and checks them in
/// its `validate(file:)`; `ConfigRangeTests` probes every numeric key of the defaults with 0, -1,
/// NaN and a huge value and requires a clear error naming the key for each one outside its
/// range, so no value reaches code that would trap on it or silently misuse it.
public struct ConfigRange<Section> {
    /// The dotted key (`train.epochs`).
    public let key: String
    /// What is expected, e.g. "an integer in [1, 100000]".
    public let expected: String
    public let hint: String
    /// Whether integers are expected (NaN and fractions are then type errors).
    public let isInteger: Bool
    /// Whether a value lies in the range.
    public let allows: @Sendable (Double) -> Bool
    /// The key's current value(s) (one per list element), as a number and as written.
    let values: (Section) -> [(value: Double, text: String)]

    /// Throws for the first value outside the range, naming the key (and the list index).
    /// - Throws: ``ConfigError/invalidValue(file:key:expected:actual:hint:)``.
    public func check(_ section: Section, file: String) throws {
        let vs = values(section)
        for (i, v) in vs.enumerated() where !allows(v.value) {
            let name = isList ? "\(key)[\(i)]" : key
            throw ConfigError.invalidValue(file: file, key: name, expected: expected, actual: v.text, hint: hint)
        }
    }

    let isList: Bool

    /// An integer key in `range`.
    public static func int(_ path: KeyPath<Section, Int>, _ key: String, _ range: ClosedRange<Int>, hint: String) -> ConfigRange {
        let lo = Double(range.lowerBound), hi = Double(range.upperBound)
        return ConfigRange(key: key, expected: "an integer in [\(range.lowerBound), \(range.upperBound)]", hint: hint, isInteger: true,
                           allows: { $0 >= lo && $0 <= hi }, values: { s in let v = s[keyPath: path]; return [(Double(v), String(v))] },
                           isList: false)
    }

    /// A list of integers, each in `range`.
    public static func ints(_ path: KeyPath<Section, [Int]>, _ key: String, _ range: ClosedRange<Int>, hint: String) -> ConfigRange {
        let lo = Double(range.lowerBound), hi = Double(range.upperBound)
        return ConfigRange(key: key, expected: "integers in [\(range.lowerBound), \(range.upperBound)]", hint: hint, isInteger: true,
                           allows: { $0 >= lo && $0 <= hi }, values: { $0[keyPath: path].map { (Double($0), String($0)) } }, isList: true)
    }

    /// A finite number between `lower` and `upper` (each bound inclusive unless marked open).
    public static func number(_ path: KeyPath<Section, Double>, _ key: String, _ lower: Double, _ upper: Double,
                              lowerOpen: Bool = false, upperOpen: Bool = false, hint: String) -> ConfigRange {
        ConfigRange(key: key, expected: "a number in " + interval(lower, upper, lowerOpen, upperOpen), hint: hint, isInteger: false,
                    allows: inside(lower, upper, lowerOpen, upperOpen), values: { [($0[keyPath: path], "\($0[keyPath: path])")] },
                    isList: false)
    }

    /// A list of finite numbers, each between `lower` and `upper`.
    public static func numbers(_ path: KeyPath<Section, [Double]>, _ key: String, _ lower: Double, _ upper: Double,
                               lowerOpen: Bool = false, upperOpen: Bool = false, hint: String) -> ConfigRange {
        ConfigRange(key: key, expected: "numbers in " + interval(lower, upper, lowerOpen, upperOpen), hint: hint, isInteger: false,
                    allows: inside(lower, upper, lowerOpen, upperOpen), values: { $0[keyPath: path].map { ($0, "\($0)") } }, isList: true)
    }

    static func interval(_ lo: Double, _ hi: Double, _ lowerOpen: Bool, _ upperOpen: Bool) -> String {
        func f(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : "\(x)" }
        return (lowerOpen ? "(" : "[") + f(lo) + ", " + f(hi) + (upperOpen ? ")" : "]")
    }

    static func inside(_ lo: Double, _ hi: Double, _ lowerOpen: Bool, _ upperOpen: Bool) -> @Sendable (Double) -> Bool {
        { v in v.isFinite && (lowerOpen ? v > lo : v >= lo) && (upperOpen ? v < hi : v <= hi) }
    }
}

/// A numeric key's range without its section type (for tests and documentation).
public struct ConfigRangeInfo: Sendable {
    public let key: String
    public let expected: String
    public let isInteger: Bool
    public let isList: Bool
    public let allows: @Sendable (Double) -> Bool
}

extension ConfigRange {
    var info: ConfigRangeInfo { ConfigRangeInfo(key: key, expected: expected, isInteger: isInteger, isList: isList, allows: allows) }
}

extension RunConfig {
    /// The range of every numeric key of every section.
    public static var numericRanges: [ConfigRangeInfo] {
        RunConfig.ranges.map(\.info) + ModelSection.ranges.map(\.info) + DataSection.ranges.map(\.info) + TrainSection.ranges.map(\.info)
            + EstimateSection.ranges.map(\.info) + FinetuneSection.ranges.map(\.info) + UMSection.ranges.map(\.info)
            + UMAPSection.ranges.map(\.info) + EvaluateSection.ranges.map(\.info)
    }
}
