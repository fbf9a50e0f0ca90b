import Training
import XCTest

/// Every closed configuration key (a ``ConfigEnum``, found by walking `RunConfig()` with
/// `Mirror`, so a new closed key is covered without editing this test) refuses an unknown value
/// with an error that names the key and lists every valid value, taken from the enum itself.
final class ConfigVocabularyTests: XCTestCase {
    /// `camelCase` => `snake_case` (the config's key style).
    static func snake(_ s: String) -> String {
        var out = ""
        for ch in s {
            if ch.isUppercase { out += "_" + ch.lowercased() } else { out.append(ch) }
        }
        return out
    }

    static func rawValues<E: ConfigEnum>(_: E) -> [String] { E.allCases.map(\.rawValue) }

    /// (dotted key, valid values, whether the key is a list) of every enum-typed field of every section.
    static func closedKeys() -> [(key: String, values: [String], isList: Bool)] {
        var found: [(key: String, values: [String], isList: Bool)] = []
        for section in Mirror(reflecting: RunConfig()).children {
            guard let name = section.label else { continue }
            for field in Mirror(reflecting: section.value).children {
                guard let label = field.label else { continue }
                let key = snake(name) + "." + snake(label)
                if let e = field.value as? any ConfigEnum {
                    found.append((key, rawValues(e), false))
                } else if let list = field.value as? [any ConfigEnum], let first = list.first {
                    found.append((key, rawValues(first), true))
                }
            }
        }
        return found
    }

    func testEveryClosedKeyRefusesAnUnknownValueWithTheValidValues() {
        let keys = Self.closedKeys()
        let expected: Set = ["model.arch", "model.batch_norm", "data.format", "data.loading", "train.lr_scaling", "train.schedule",
                             "train.bn_mode", "estimate.rule", "finetune.schedule", "umap.selection", "evaluate.scores",
                             "evaluate.fpr_mode", "train.ood_validation_scores"]
        XCTAssertTrue(expected.isSubset(of: Set(keys.map(\.key))), "found \(keys.map(\.key))")
        for (key, values, isList) in keys {
            XCTAssertGreaterThan(values.count, 1, key)
            let bogus = isList ? "[\(values[0]), bogus_value]" : "bogus_value"
            XCTAssertThrowsError(try RunConfig.load(file: nil, overrides: ["\(key)=\(bogus)"]), key) { error in
                let m = "\(error)"
                XCTAssertTrue(m.contains(isList ? key + ".1" : key), "names the key: \(m)")
                XCTAssertTrue(m.contains("bogus_value"), "quotes the value: \(m)")
                for v in values { XCTAssertTrue(m.contains(v), "\(key): lists '\(v)': \(m)") }
            }
            // Every listed value is accepted (the list and the decoder agree).
            for v in values {
                let text = isList ? "[\(v)]" : v
                XCTAssertNoThrow(try RunConfig.load(file: nil, overrides: ["\(key)=\(text)"]), "\(key)=\(v)")
            }
        }
    }

    /// The same error from a YAML file names the file and the line's key.
    func testUnknownScheduleInAFileIsRefusedNotTurnedIntoConstant() throws {
        let p = NSTemporaryDirectory() + "vocab-\(UUID().uuidString).yaml"
        try "finetune:\n  schedule: cosin\n".write(toFile: p, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: p) }
        XCTAssertThrowsError(try RunConfig.load(file: p)) { error in
            let m = "\(error)"
            XCTAssertTrue(m.contains(p) && m.contains("finetune.schedule") && m.contains("'cosin'")
                          && m.contains("constant, step, multistep or cosine"), m)
        }
    }
}
