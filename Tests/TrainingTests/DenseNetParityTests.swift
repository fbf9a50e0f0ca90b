import Distributed
import Foundation
import NeuralNetwork
import SafeTensors
import TensorCore
import Training
import XCTest

/// Logits parity of our DenseNet-BC-100 with the UM reference's pretrained PyTorch model.
///
/// Fixture: `Tests/Fixtures/densenet-parity/parity.safetensors`, written by `make_fixture.py`
/// next to it (PyTorch 2.x, CPU): 16 seeded inputs already normalised the way our model takes
/// them (`(x01 - mean) / std`, CIFAR mean/std), `[16, 3, 32, 32]`, the reference logits
/// `[16, 10]` for the same images (the reference normalises inside), and the reference state-dict
/// names and shapes in the metadata. The weights themselves (3 MB) are not committed: the
/// parity test needs them converted by `launch/convert-torch-checkpoint.py` (no PyTorch needed;
/// `launch/test.sh` converts them through `launch/test-import.sh`) and skips, saying why, otherwise.
final class DenseNetParityTests: XCTestCase {
    static let fixtureDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/densenet-parity")
    static let fixturePath = fixtureDirectory.appendingPathComponent("parity.safetensors").path
    /// Where the UM reference checkpoint may be: `$UMTRAIN_REFERENCE_DIR` when set, else the
    /// project's `shared/reference` beside the checkout (as CI lays it out), then
    /// `/work/shared/reference` (the same order as launch/test-import.sh).
    static var referenceCandidates: [String] {
        let repo = fixtureDirectory.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        var dirs = [repo.deletingLastPathComponent().appendingPathComponent("shared/reference").path,
                    "/work/shared/reference"]
        if let d = ProcessInfo.processInfo.environment["UMTRAIN_REFERENCE_DIR"], !d.isEmpty { dirs = [d] }
        return dirs.map { URL(fileURLWithPath: $0).appendingPathComponent("um-densenet-bc100-cifar10.state").path }
    }
    static let cifarMean: [Double] = [125.3 / 255, 123.0 / 255, 113.9 / 255]
    static let cifarStd: [Double] = [63.0 / 255, 62.1 / 255, 66.7 / 255]

    /// The converted checkpoint: `$UMTRAIN_DENSENET_SAFETENSORS` (launch/test.sh sets it and converts
    /// the reference there with launch/test-import.sh) or `/tmp/um-densenet.safetensors`.
    static var checkpointPath: String {
        ProcessInfo.processInfo.environment["UMTRAIN_DENSENET_SAFETENSORS"] ?? "/tmp/um-densenet.safetensors"
    }

    /// Why the parity test cannot run here, and how to make it run.
    static var skipReason: String {
        let candidates = referenceCandidates
        guard let reference = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            return "no converted checkpoint at \(checkpointPath), and the UM reference checkpoint is not on this "
                + "machine (looked for \(candidates.joined(separator: ", ")); set UMTRAIN_REFERENCE_DIR to its folder)"
        }
        return "no converted checkpoint at \(checkpointPath); create it with: python3 launch/convert-torch-checkpoint.py "
            + "\(reference) \(checkpointPath) --arch densenet_bc100 (needs numpy only; see docs/import.md)"
    }

    /// The reference model section: CIFAR-10 DenseNet-BC-100 with non-affine BatchNorm.
    static var referenceSection: ModelSection {
        var m = ModelSection()
        m.arch = .densenetBC100
        m.inChannels = 3
        m.imageSize = 32
        m.numClasses = 10
        m.batchNorm = .nonAffine
        return m
    }

    func readFixture() throws -> (file: SafeTensorsFile, inputs: SafeTensorsRecord, logits: SafeTensorsRecord) {
        let file = try SafeTensorsFile.read(path: Self.fixturePath)
        let inputs = try XCTUnwrap(file.record(named: "inputs"), "fixture has no 'inputs'")
        let logits = try XCTUnwrap(file.record(named: "logits"), "fixture has no 'logits'")
        return (file, inputs, logits)
    }

    /// The fixture parses, has the documented shapes and dtypes, and its inputs are CIFAR-normalised
    /// images of pixels in [0, 1]: un-normalising with the recorded mean/std lands in [0, 1] and
    /// covers most of it (so the normalisation is the one our data pipeline applies).
    func testFixtureShapesAndNormalisation() throws {
        let (file, inputs, logits) = try readFixture()
        XCTAssertEqual(inputs.dtype, .f32)
        XCTAssertEqual(inputs.shape, [16, 3, 32, 32])
        XCTAssertEqual(logits.dtype, .f32)
        XCTAssertEqual(logits.shape, [16, 10])
        XCTAssertEqual(file.records.count, 2)

        let mean = try JSONDecoder().decode([Double].self, from: Data(XCTUnwrap(file.metadata["mean"]).utf8))
        let std = try JSONDecoder().decode([Double].self, from: Data(XCTUnwrap(file.metadata["std"]).utf8))
        for c in 0..<3 {
            XCTAssertEqual(mean[c], Self.cifarMean[c], accuracy: 1e-12)
            XCTAssertEqual(std[c], Self.cifarStd[c], accuracy: 1e-12)
        }
        let x = try inputs.floats()
        let plane = 32 * 32
        for c in 0..<3 {
            var lo = Double.infinity, hi = -Double.infinity
            for n in 0..<16 {
                let base = (n * 3 + c) * plane
                for i in 0..<plane {
                    let pixel = Double(x[base + i]) * std[c] + mean[c]
                    lo = min(lo, pixel)
                    hi = max(hi, pixel)
                }
            }
            XCTAssertGreaterThanOrEqual(lo, -1e-5, "channel \(c): un-normalised pixels below 0")
            XCTAssertLessThanOrEqual(hi, 1 + 1e-5, "channel \(c): un-normalised pixels above 1")
            XCTAssertLessThan(lo, 0.2, "channel \(c): inputs should span [0, 1], min \(lo)")
            XCTAssertGreaterThan(hi, 0.8, "channel \(c): inputs should span [0, 1], max \(hi)")
        }
        let z = try logits.floats()
        XCTAssertTrue(z.allSatisfy(\.isFinite))
        // The inputs reach more than one class (a parity check on one class alone is weaker).
        let predicted = Set((0..<16).map { n in (0..<10).max { z[n * 10 + $0] < z[n * 10 + $1] }! })
        XCTAssertGreaterThan(predicted.count, 1, "classes predicted: \(predicted.sorted())")
    }

    /// Our non-affine densenet_bc100 has exactly the reference state dict: the same names in the
    /// same order, shapes and dtypes (recorded from the checkpoint in the fixture metadata).
    func testStateDictNamesAndShapesEqualReference() throws {
        let (file, _, _) = try readFixture()
        let json = try XCTUnwrap(file.metadata["state_dict"], "fixture metadata has no 'state_dict'")
        let entries = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[Any]])
        let reference = entries.map { e in
            "\(e[0] as? String ?? "?") \((e[1] as? [Int]) ?? [-1]) \(e[2] as? String ?? "?")"
        }
        let model = try ModelFactory.make(Self.referenceSection, seed: 0)
        let ours = StateDict.specs(of: model).map { s in
            "\(s.name) \(s.shape) \(s.dtype == .f32 ? "float32" : s.dtype == .i64 ? "int64" : "\(s.dtype)")"
        }
        XCTAssertEqual(reference.count, 398)
        XCTAssertEqual(ours.count, reference.count)
        XCTAssertEqual(Set(ours).symmetricDifference(reference).sorted(), [], "entries in only one of the two")
        XCTAssertEqual(ours, reference, "same entries, same order")
    }

    /// Loads the converted reference checkpoint (strictly) and compares our eval-mode logits on
    /// the 16 fixture inputs with PyTorch's: every logit within 1e-4 absolute. The model is loaded
    /// the way `umtrain --checkpoint` does (`ModelLoader`, which also checks the metadata against
    /// the run configuration's model section).
    func testLogitsMatchPyTorchReference() throws {
        let path = Self.checkpointPath
        guard FileManager.default.fileExists(atPath: path) else {
            throw XCTSkip(Self.skipReason)
        }
        let weights = try SafeTensorsFile.read(path: path)
        XCTAssertEqual(weights.metadata[ModelFactory.archKey], "densenet_bc100")
        XCTAssertEqual(weights.metadata["format"], "pt")
        let section = try XCTUnwrap(ModelFactory.modelSection(fromMetadata: weights.metadata),
                                    "converter metadata does not decode as a ModelSection")
        XCTAssertEqual(section, Self.referenceSection)

        var config = RunConfig()
        config.model = Self.referenceSection
        let model = try ModelLoader.load(config: config, checkpoint: path, comm: LocalCommunicator())

        let (_, inputs, logits) = try readFixture()
        let x = Tensor(shape: inputs.shape, values: try inputs.floats())
        let expected = try logits.floats()
        let actual = model.forward(x, context: .eval)
        XCTAssertEqual(actual.shape, [16, 10])
        let got = actual.scalars
        var maxDiff: Float = 0
        var worst = 0
        for i in 0..<expected.count where abs(got[i] - expected[i]) > maxDiff {
            maxDiff = abs(got[i] - expected[i])
            worst = i
        }
        print("DenseNet-BC-100 parity: max |logit - PyTorch| = \(maxDiff) at [\(worst / 10), \(worst % 10)] "
              + "(ours \(got[worst]), PyTorch \(expected[worst]))")
        XCTAssertLessThanOrEqual(maxDiff, 1e-4,
                                 "logit [\(worst / 10), \(worst % 10)]: ours \(got[worst]), PyTorch \(expected[worst])")
        // Same predicted class for every input.
        for n in 0..<16 {
            let ourClass = (0..<10).max { got[n * 10 + $0] < got[n * 10 + $1] }!
            let theirClass = (0..<10).max { expected[n * 10 + $0] < expected[n * 10 + $1] }!
            XCTAssertEqual(ourClass, theirClass, "input \(n)")
        }
    }
}
