import Datasets
import Distributed
import Foundation
import NeuralNetwork
import OODDetection
import SafeTensors
import TensorCore

/// An OOD test set loaded for scoring (in memory, or a lazily decoded folder).
public struct OODSet: Sendable {
    public let name: String
    public let synthetic: Bool
    public let dataset: SampleSet
    /// The report group (`evaluate.ood_sets[].group`; empty = none).
    public var group = ""

    public init(name: String, synthetic: Bool, dataset: SampleSet, group: String = "") {
        self.name = name
        self.synthetic = synthetic
        self.dataset = dataset
        self.group = group
    }

    public init(name: String, synthetic: Bool, dataset: ImageDataset) {
        self.init(name: name, synthetic: synthetic, dataset: SampleSet(dataset))
    }
}

public enum OODEvaluationError: Error, CustomStringConvertible {
    case missingSet(name: String, path: String, key: String)
    case noSets(String)
    /// A set folder that cannot be listed or holds no readable image.
    case unreadableSet(name: String, key: String, reason: String)
    /// A set (file or folder) that holds no image.
    case emptySet(name: String, path: String, key: String)
    /// A manifest entry or `evaluate.ood_sets` element without a field it needs.
    case missingField(name: String, field: String, key: String, hint: String)
    public var description: String {
        switch self {
        case let .emptySet(name, path, key):
            return "OOD set '\(name)': \(path) holds no image (from \(key)); metrics need at least one. "
                + "Hint: check the file, or re-run launch/prepare-data.sh."
        case let .missingField(name, field, key, hint):
            return "OOD set '\(name)' (from \(key)) has no '\(field)' field. Hint: \(hint)"
        case let .unreadableSet(name, key, reason):
            return "OOD set '\(name)' (from \(key)): \(reason)"
        case let .missingSet(name, path, key):
            return "OOD set '\(name)': \(path) does not exist (from \(key)). Hint: run launch/prepare-data.sh, or fix the path."
        case let .noSets(m):
            return "no OOD sets to evaluate: \(m). Hint: set evaluate.ood_manifest to data/manifest.json or list evaluate.ood_sets."
        }
    }
}

/// Loading the OOD test sets and the tuning-only validation OOD sets.
extension OODEvaluation {
    /// Loads the OOD sets named by the manifest and/or the explicit list.
    /// - Parameters:
    ///   - resize: shorter side that folder images are resized to before the centre crop to
    ///     `imageSize` (0 = `imageSize`; torchvision ImageNet evaluation uses 256 for 224).
    ///   - loading: how folder sets are read (`auto`: in memory up to 4 GiB decoded per set).
    ///   - comm: with several ranks, folder sets are scanned by rank 0 and checked in shares
    ///     (collective; see `SampleSet.folder`).
    public static func loadSets(_ e: EvaluateSection, imageSize: Int, channels: Int, resize: Int = 0,
                                loading: SampleSet.Loading = .auto, comm: Communicator? = nil) throws -> [OODSet] {
        try loadSets(e, imageSize: imageSize, channels: channels, validation: false, resize: resize, loading: loading, comm: comm)
    }

    /// One set of `data/manifest.json` (launch/prepare-data.sh format): its spec, its role
    /// (`ood` for test sets, `validation_ood` for tuning/validation-only sets) and the names of
    /// the sources it was built from (`sources[].name`: Debian packages, PyPI wheels, datasets).
    struct ManifestSet {
        var spec: OODSetConfig
        var role: String
        var sources: [String]
    }

    /// Every set of the manifest at `path` whose role is in `roles` (all roles when nil).
    /// - Throws: `OODEvaluationError.missingSet` when the file is absent, `ConfigError` when it
    ///   has no `sets` list, `.missingField` for an `ood`/`validation_ood` entry without name or images.
    static func manifestSets(_ path: String, roles: Set<String>? = nil) throws -> [ManifestSet] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw OODEvaluationError.missingSet(name: "manifest", path: path, key: "evaluate.ood_manifest")
        }
        guard let json = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let sets = json["sets"] as? [[String: Any]] else {
            throw ConfigError.invalidValue(file: path, key: "sets", expected: "a list of sets (launch/prepare-data.sh format)",
                                           actual: "missing", hint: "re-run launch/prepare-data.sh")
        }
        let base = (path as NSString).deletingLastPathComponent
        var out: [ManifestSet] = []
        for (i, s) in sets.enumerated() {
            let role = s["role"] as? String ?? ""
            if let roles, !roles.contains(role) { continue }
            let name = s["name"] as? String ?? "#\(i)"
            let sources = (s["sources"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
            let images = (s["files"] as? [[String: Any]] ?? []).compactMap { $0["path"] as? String }.first { $0.contains("images") }
            let scored = role == "ood" || role == "validation_ood"
            let hint = "each \(role) entry of \(path) needs name and files [{path: ...images...}]; re-run launch/prepare-data.sh"
            if scored {
                guard s["name"] is String else {
                    throw OODEvaluationError.missingField(name: name, field: "name", key: path, hint: hint)
                }
                guard images != nil else {
                    throw OODEvaluationError.missingField(name: name, field: "files[].path of the images", key: path, hint: hint)
                }
            }
            out.append(ManifestSet(spec: OODSetConfig(name: name, images: images.map { base + "/" + $0 } ?? "",
                                                      synthetic: (s["synthetic"] as? Bool) ?? false, group: (s["group"] as? String) ?? ""),
                                   role: role, sources: sources))
        }
        return out
    }

    /// The OOD test set specs: every `ood` set of the manifest plus `evaluate.ood_sets`.
    /// An `evaluate.ood_sets` entry with a name and a group but no images assigns the manifest's
    /// set of that name to the group.
    static func testSpecs(_ e: EvaluateSection) throws -> [OODSetConfig] {
        var manifest = e.oodManifest.isEmpty ? [] : try manifestSets(e.oodManifest, roles: ["ood"]).map(\.spec)
        var explicit: [OODSetConfig] = []
        for (i, s) in e.explicitSets.enumerated() {
            if !s.images.isEmpty { explicit.append(s); continue }
            if !s.group.isEmpty, let m = manifest.firstIndex(where: { $0.name == s.name }) {
                manifest[m].group = s.group
                continue
            }
            let names = manifest.map(\.name)
            throw OODEvaluationError.missingField(name: s.name, field: "images", key: "evaluate.ood_sets[\(i)]",
                                                  hint: "give the IDX image file or the image folder, e.g. {name: mnist, images: data/ood/mnist/images-idx3-ubyte.gz}"
                                                    + (s.group.isEmpty ? "" : "; to group a manifest set, use one of its names: \(names.isEmpty ? "(the manifest has none)" : names.joined(separator: ", "))"))
        }
        return manifest + explicit
    }

    /// Loads the OOD test sets (`validation: false`) or the tuning-only sets (`true`).
    public static func loadSets(_ e: EvaluateSection, imageSize: Int, channels: Int, validation: Bool, resize: Int = 0,
                                loading: SampleSet.Loading = .auto, comm: Communicator? = nil) throws -> [OODSet] {
        var specs: [OODSetConfig]
        if validation {
            specs = try validationSpecs(e)
            if specs.isEmpty { return [] }
        } else {
            specs = try testSpecs(e)
        }
        guard !specs.isEmpty else { throw OODEvaluationError.noSets("the manifest has no ood sets and evaluate.ood_sets is empty") }
        var out: [OODSet] = []
        for s in specs {
            guard FileManager.default.fileExists(atPath: s.images) else {
                throw OODEvaluationError.missingSet(name: s.name, path: s.images,
                                                    key: validation ? "evaluate.validation_ood_sets" : (e.oodManifest.isEmpty ? "evaluate.ood_sets" : e.oodManifest))
            }
            let ds: SampleSet
            var isDirectory: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: s.images, isDirectory: &isDirectory)
            if isDirectory.boolValue {
                // A folder of JPEG/PNG images (Textures, Places, SUN, iNaturalist, ...): decoded,
                // converted to the model's channels, resized (shorter side) and centre-cropped to
                // the model's input size; in memory or lazily (`loading`). Unreadable files are
                // skipped and counted (lazy sets are decoded once up front to find them, so the
                // same files are skipped either way).
                let loaded: (set: SampleSet, skipped: [SkippedFile], lazy: Bool)
                do {
                    loaded = try SampleSet.folder(root: s.images, layout: .flat, channels: channels,
                                                  transform: ResizeCenterCrop(resizeShorterSide: resize > 0 ? resize : imageSize, cropSize: imageSize),
                                                  loading: loading, skipBadFiles: true, fullCheck: true, comm: comm)
                } catch let error as ImageFileError {
                    throw OODEvaluationError.unreadableSet(name: s.name, key: validation ? "evaluate.validation_ood_sets"
                                                           : (e.oodManifest.isEmpty ? "evaluate.ood_sets" : e.oodManifest), reason: "\(error)")
                }
                if !loaded.skipped.isEmpty && (comm?.rank ?? 0) == 0 {
                    writeSkipped(name: s.name, count: loaded.skipped.count, first: loaded.skipped[0].path)
                }
                ds = loaded.set
            } else {
                let images = try IDX.readImages(path: s.images)
                guard images.rows == imageSize && images.cols == imageSize && channels == 1 else {
                    throw ConfigError.invalidValue(file: s.images, key: "OOD set '\(s.name)'", expected: "\(channels)x\(imageSize)x\(imageSize) images",
                                                   actual: "1x\(images.rows)x\(images.cols)",
                                                   hint: "IDX OOD sets must match the model input; for RGB or other sizes use a folder of JPEG/PNG images")
                }
                ds = SampleSet(ImageDataset(images: images.pixels, labels: [Int](repeating: 0, count: images.count), channels: 1,
                                            height: images.rows, width: images.cols, classCount: 1, classNames: []))
            }
            if ds.count == 0 {
                throw OODEvaluationError.emptySet(name: s.name, path: s.images,
                                                  key: validation ? "evaluate.validation_ood_sets" : (e.oodManifest.isEmpty ? "evaluate.ood_sets" : e.oodManifest))
            }
            out.append(OODSet(name: s.name, synthetic: s.synthetic, dataset: ds, group: s.group))
        }
        return out
    }

    /// Checks, without reading any image, that every configured OOD test set (manifest and
    /// `evaluate.ood_sets`) and, when `validation` (default: `evaluate.tune`), every validation
    /// OOD set exists, and that the validation sets are disjoint from the test sets (data and sources): the pipeline's pre-flight check, so a
    /// wrong path fails before hours of training rather than at the evaluation stage.
    /// - Throws: `OODEvaluationError.missingSet` / `.noSets`, `ConfigError` naming the key.
    public static func checkSetPaths(_ e: EvaluateSection, validation: Bool? = nil) throws {
        let tests = try testSpecs(e)
        guard !tests.isEmpty else { throw OODEvaluationError.noSets("the manifest has no ood sets and evaluate.ood_sets is empty") }
        for s in tests where !FileManager.default.fileExists(atPath: s.images) {
            throw OODEvaluationError.missingSet(name: s.name, path: s.images, key: e.oodManifest.isEmpty ? "evaluate.ood_sets" : e.oodManifest)
        }
        if validation ?? e.tune {
            for v in try validationSpecs(e) where !FileManager.default.fileExists(atPath: v.images) {
                throw OODEvaluationError.missingSet(name: v.name, path: v.images, key: "evaluate.validation_ood_sets")
            }
        }
    }

    /// The validation OOD set specs: every `validation_ood` set of the manifest plus
    /// `evaluate.validation_ood_sets`, checked disjoint from the OOD test sets, because tuning or
    /// selecting a checkpoint on test data inflates every metric (pitfalls F10). Two checks:
    /// - the same data: a validation set is refused when its resolved real path (symbolic links
    ///   followed) or its content (``DataIdentity``: a file's bytes, a folder's file names and
    ///   sizes) is a test set's, so a link or a copy is refused too;
    /// - the same source: a validation set is refused when it shares a source with a test set
    ///   (the manifest's `sources[].name`, e.g. the Debian font package the glyphs were drawn
    ///   from), because crops of the same photos or glyphs of the same font are near-duplicates
    ///   of test images even when no file is shared. An explicit set gets the sources of the
    ///   manifest entry whose data it is; one that no manifest entry describes has no recorded
    ///   source and is checked by data only.
    /// - Throws: `ConfigError` naming `evaluate.validation_ood_sets` (or the manifest for its own
    ///   validation sets), the two sets and the shared sources.
    static func validationSpecs(_ e: EvaluateSection) throws -> [OODSetConfig] {
        let all = e.oodManifest.isEmpty ? [] : try manifestSets(e.oodManifest)
        let described = all.filter { !$0.spec.images.isEmpty }.map { ($0, DataIdentity(path: $0.spec.images)) }
        func sources(of spec: OODSetConfig, identity: DataIdentity) -> [String] {
            described.first { $0.1.matches(identity) }?.0.sources ?? []
        }
        let tests = try testSpecs(e).map { spec -> (spec: OODSetConfig, identity: DataIdentity, sources: [String]) in
            let identity = DataIdentity(path: spec.images)
            return (spec, identity, sources(of: spec, identity: identity))
        }
        let fromManifest = all.filter { $0.role == "validation_ood" }
        var validation: [(spec: OODSetConfig, sources: [String], key: String)] = fromManifest.map { ($0.spec, $0.sources, e.oodManifest) }
        for v in e.explicitValidationSets where !fromManifest.contains(where: { DataIdentity(path: $0.spec.images).matches(DataIdentity(path: v.images)) }) {
            validation.append((v, sources(of: v, identity: DataIdentity(path: v.images)), "evaluate.validation_ood_sets"))
        }
        for v in validation {
            let identity = DataIdentity(path: v.spec.images)
            if let same = tests.first(where: { $0.identity.matches(identity) }) {
                let how = same.identity.digest != nil && same.identity.digest == identity.digest && same.identity.realPath != identity.realPath
                    ? "a copy of" : "the same set as"
                throw ConfigError.invalidValue(file: v.key == "evaluate.validation_ood_sets" ? "config" : v.key, key: "evaluate.validation_ood_sets",
                                               expected: "sets disjoint from the OOD test sets",
                                               actual: "'\(v.spec.name)' (\(v.spec.images)) is \(how) an OOD test set, '\(same.spec.name)' (\(same.spec.images))",
                                               hint: "tuning on test data inflates every metric (pitfalls F10); use a separate set.")
            }
            for t in tests {
                let shared = Set(v.sources).intersection(t.sources).sorted()
                guard !shared.isEmpty else { continue }
                throw ConfigError.invalidValue(file: v.key == "evaluate.validation_ood_sets" ? "config" : v.key, key: "evaluate.validation_ood_sets",
                                               expected: "validation sets built from sources no OOD test set uses",
                                               actual: "'\(v.spec.name)' shares source(s) \(shared.joined(separator: ", ")) with the OOD test set '\(t.spec.name)'",
                                               hint: "images from the same font, photo or package are near-duplicates of test images (pitfalls F10); "
                                                   + "build the validation set from other sources (launch/data/build_benchmark.py).")
            }
        }
        return validation.map(\.spec)
    }

    static func writeSkipped(name: String, count: Int, first: String) {
        FileHandle.standardError.write(Data("note: OOD set '\(name)': skipped \(count) unreadable file(s), e.g. \(first)\n".utf8))
    }
}

/// What makes two data paths the same set: the standardised path, the real path (symbolic links
/// resolved) and a content digest (FNV-1a of a file's bytes; of a folder's relative file names
/// and sizes, recursively, in sorted order). A missing path has only its standardised path.
struct DataIdentity: Equatable {
    let standardPath: String
    let realPath: String?
    let digest: String?

    init(path: String) {
        standardPath = URL(fileURLWithPath: path).standardizedFileURL.path
        guard !path.isEmpty, let real = realpath(path, nil) else {
            realPath = nil
            digest = nil
            return
        }
        realPath = String(cString: real)
        free(real)
        var isDirectory: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: realPath!, isDirectory: &isDirectory)
        var h = FNV1a64()
        if isDirectory.boolValue {
            let files = (FileManager.default.subpaths(atPath: realPath!) ?? []).sorted()
            for f in files {
                let attributes = try? FileManager.default.attributesOfItem(atPath: realPath! + "/" + f)
                guard (attributes?[.type] as? FileAttributeType) == .typeRegular else { continue }
                h.add(bytes: f.utf8)
                h.add(byte: 0)
                h.add(word: UInt64((attributes?[.size] as? NSNumber)?.uint64Value ?? 0))
            }
            digest = files.isEmpty ? nil : "dir:" + h.hex
        } else if let data = FileManager.default.contents(atPath: realPath!) {
            data.withUnsafeBytes { h.add(bytes: $0) }
            digest = "file:" + h.hex
        } else {
            digest = nil
        }
    }

    func matches(_ other: DataIdentity) -> Bool {
        standardPath == other.standardPath || (realPath != nil && realPath == other.realPath)
            || (digest != nil && digest == other.digest)
    }
}
