import Training
import XCTest
import Yams

/// Every numeric configuration key has a declared range (`ConfigRange`), and every value
/// outside it is refused at load time with an error naming the key: 0, -1, NaN and a huge value
/// are probed on every numeric key found in the defaults, so no key can reach code that traps on
/// it (a zero width, a zero batch, a negative padding) or silently misuses it (a negative decay
/// factor, a zero step size, negative warm-up).
final class ConfigRangeTests: XCTestCase {
    /// Dotted paths of the numeric leaves (numbers, and lists of numbers) of the default config.
    static func numericLeaves() throws -> [String] {
        let node = try XCTUnwrap(try Yams.compose(yaml: try RunConfig().yaml()))
        var out: [String] = []
        func isNumber(_ n: Node) -> Bool { n.scalar != nil && (n.int != nil || n.float != nil) && n.bool == nil }
        func walk(_ n: Node, _ path: [String]) {
            if let m = n.mapping {
                for (k, v) in m { walk(v, path + [k.string ?? ""]) }
            } else if let seq = n.sequence {
                if let first = seq.first, isNumber(first) { out.append(path.joined(separator: ".")) }
            } else if isNumber(n) {
                out.append(path.joined(separator: "."))
            }
        }
        walk(node, [])
        return out
    }

    func testEveryNumericKeyHasARange() throws {
        let ranged = Set(RunConfig.numericRanges.map(\.key))
        let leaves = try Self.numericLeaves()
        XCTAssertGreaterThan(leaves.count, 40, "the walk found the numeric keys: \(leaves)")
        for key in leaves { XCTAssertTrue(ranged.contains(key), "\(key) has no declared range") }
        XCTAssertTrue(ranged.contains("train.milestones"), "empty lists are covered too")
    }

    /// 0, -1, NaN and huge on every numeric key: refused (naming the key) exactly when outside
    /// the declared range, accepted otherwise.
    func testOutOfRangeProbesAreRefusedNamingTheKey() {
        for r in RunConfig.numericRanges {
            let probes: [(text: String, value: Double)] = [("0", 0), ("-1", -1), (".nan", .nan),
                                                           (r.isInteger ? "9223372036854775807" : "1.0e300", r.isInteger ? 9.2e18 : 1e300)]
            for p in probes {
                let text = r.isList ? "[\(p.text)]" : p.text
                let override = "\(r.key)=\(text)"
                let integerNaN = r.isInteger && p.value.isNaN
                if r.allows(p.value) && !integerNaN {
                    XCTAssertNoThrow(try RunConfig.load(file: nil, overrides: [override]), override)
                } else {
                    XCTAssertThrowsError(try RunConfig.load(file: nil, overrides: [override]), override) { error in
                        XCTAssertTrue(error is ConfigError, "\(override): \(error)")
                        XCTAssertTrue("\(error)".contains(r.key), "\(override): the error names the key: \(error)")
                    }
                }
            }
        }
    }

    /// The values that trapped or were silently misused before the ranges existed, each by name.
    func testFormerTrapsAndSilentValuesAreRefused() {
        let cases: [(String, String)] = [
            ("model.width=0", "model.width"),                                   // trapped in the model constructor
            ("evaluate.batch_size=0", "evaluate.batch_size"),                   // trapped in the evaluation schedule
            ("evaluate.energy_temperature=0", "evaluate.energy_temperature"),   // trapped after training, in evaluate
            ("train.gamma=-1", "train.gamma"),                                  // a negative learning rate after the first decay
            ("train.step_size=0", "train.step_size"),                           // silently a decay every epoch
            ("train.warmup_epochs=-1", "train.warmup_epochs"),                  // silently no warm-up, odd first rates
            ("seed=-1", "seed"),                                                // trapped converting to UInt64
            ("estimate.seed=-2", "estimate.seed"),
            ("data.validation_seed=-3", "data.validation_seed"),
        ]
        for (override, key) in cases {
            XCTAssertThrowsError(try RunConfig.load(file: nil, overrides: [override]), override) { error in
                XCTAssertTrue("\(error)".contains("key '\(key)'"), "\(error)")
            }
        }
        // A negative crop padding trapped in the augmentation; padding wider than the image too.
        XCTAssertThrowsError(try RunConfig.load(file: nil, overrides: ["data.random_crop=true", "data.padding=-1"])) {
            XCTAssertTrue("\($0)".contains("data.padding"), "\($0)")
        }
        XCTAssertThrowsError(try RunConfig.load(file: nil, overrides: ["data.random_crop=true", "data.padding=100"])) {
            XCTAssertTrue("\($0)".contains("data.padding"), "\($0)")
        }
        XCTAssertThrowsError(try RunConfig.load(file: nil, overrides: ["train.milestones=[150, 100]"])) {
            XCTAssertTrue("\($0)".contains("train.milestones"), "\($0)")
        }
        XCTAssertNoThrow(try RunConfig.load(file: nil, overrides: ["train.milestones=[100, 150]", "train.gamma=0.5"]))
    }
}
