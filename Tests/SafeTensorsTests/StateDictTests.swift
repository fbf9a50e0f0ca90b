import XCTest
@testable import SafeTensors

final class StateDictTests: XCTestCase {
    /// A tiny model: conv (no bias) + BatchNorm (with I64 num_batches_tracked) + linear.
    let model: [SafeTensorsSpec] = [
        SafeTensorsSpec(name: "conv1.weight", shape: [4, 3, 3, 3]),
        SafeTensorsSpec(name: "bn1.weight", shape: [4]),
        SafeTensorsSpec(name: "bn1.bias", shape: [4]),
        SafeTensorsSpec(name: "bn1.running_mean", shape: [4]),
        SafeTensorsSpec(name: "bn1.running_var", shape: [4]),
        SafeTensorsSpec(name: "bn1.num_batches_tracked", dtype: .i64, shape: []),
        SafeTensorsSpec(name: "fc.weight", shape: [10, 4]),
        SafeTensorsSpec(name: "fc.bias", shape: [10]),
    ]

    func record(_ spec: SafeTensorsSpec, shape: [Int]? = nil, dtype: SafeTensorsDType? = nil) -> SafeTensorsRecord {
        let shape = shape ?? spec.shape
        let count = safeTensorsElementCount(shape: shape) ?? 0
        if (dtype ?? spec.dtype) == .i64 {
            return SafeTensorsRecord(name: spec.name, shape: shape, int64s: Array(repeating: 7, count: count))
        }
        return SafeTensorsRecord(name: spec.name, shape: shape, floats: (0..<count).map(Float.init))
    }

    func testStrictMatchReturnsRecordsInModelOrder() throws {
        let file = SafeTensorsFile(records: model.reversed().map { record($0) })
        let match = try file.matchStateDict(expected: model, strict: true)
        XCTAssertEqual(match.matched.map(\.name), model.map(\.name))
        XCTAssertTrue(match.report.isClean)
        XCTAssertEqual(match.report.summary, "no differences")
        XCTAssertEqual(try match.matched[5].int64s(), [7])
    }

    /// Two missing, two unexpected, one shape mismatch and one dtype mismatch: ONE error lists all.
    func testStrictMismatchListsEveryOffendingKey() {
        var records = model.filter { $0.name != "bn1.running_var" && $0.name != "fc.bias" }.map { record($0) }
        records[0] = record(model[0], shape: [4, 1, 3, 3])                 // conv1.weight wrong shape
        records[4] = record(model[5], dtype: .f32)                         // num_batches_tracked as F32
        records.append(SafeTensorsRecord(name: "fc2.weight", shape: [1], floats: [0]))
        records.append(SafeTensorsRecord(name: "module.fc.bias", shape: [10], floats: Array(repeating: 0, count: 10)))
        let file = SafeTensorsFile(records: records)
        XCTAssertThrowsError(try file.matchStateDict(expected: model, strict: true, source: "ckpt/model.safetensors")) { error in
            guard case let .stateDictMismatch(source, report)? = error as? SafeTensorsError else { return XCTFail("\(error)") }
            XCTAssertEqual(source, "ckpt/model.safetensors")
            XCTAssertEqual(report.missing, ["bn1.running_var", "fc.bias"])
            XCTAssertEqual(report.unexpected, ["fc2.weight", "module.fc.bias"])
            XCTAssertEqual(report.mismatched, [
                StateDictMismatch(name: "conv1.weight", expectedDType: .f32, expectedShape: [4, 3, 3, 3],
                                  actualDType: .f32, actualShape: [4, 1, 3, 3]),
                StateDictMismatch(name: "bn1.num_batches_tracked", expectedDType: .i64, expectedShape: [],
                                  actualDType: .f32, actualShape: []),
            ])
            assertMessage(error as? SafeTensorsError, contains: [
                "ckpt/model.safetensors", "strict",
                "2 missing keys [bn1.running_var, fc.bias]",
                "2 unexpected keys [fc2.weight, module.fc.bias]",
                "conv1.weight: expected F32 [4, 3, 3, 3], got F32 [4, 1, 3, 3]",
                "bn1.num_batches_tracked: expected I64 [], got F32 []",
                "__metadata__",
            ])
        }
    }

    func testNonStrictReturnsMatchedSubsetAndReport() throws {
        var records = model.dropLast().map { record($0) }                 // fc.bias missing
        records[1] = record(model[1], shape: [5])                          // bn1.weight wrong shape
        records.append(SafeTensorsRecord(name: "extra", shape: [], floats: [1]))
        let match = try SafeTensorsFile(records: records).matchStateDict(expected: model, strict: false)
        XCTAssertEqual(match.matched.map(\.name), ["conv1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                                                   "bn1.num_batches_tracked", "fc.weight"])
        XCTAssertEqual(match.report.missing, ["fc.bias"])
        XCTAssertEqual(match.report.unexpected, ["extra"])
        XCTAssertEqual(match.report.mismatched.map(\.name), ["bn1.weight"])
        XCTAssertEqual(match.report.mismatched.first?.actualShape, [5])
        XCTAssertFalse(match.report.isClean)
        XCTAssertEqual(match.report.summary, "1 missing key [fc.bias]; 1 unexpected key [extra]; "
                       + "1 shape/dtype mismatch [bn1.weight: expected F32 [4], got F32 [5]]")
    }

    func testRoundTripOfStateDictThroughTheFormat() throws {
        let file = SafeTensorsFile(records: model.map { record($0) }, metadata: ["architecture": "tiny"])
        let decoded = try SafeTensorsFile.decode(try file.encode())
        let match = try decoded.matchStateDict(expected: model, strict: true)
        XCTAssertEqual(match.matched, file.records)
        XCTAssertEqual(decoded.metadata["architecture"], "tiny")
    }
}
