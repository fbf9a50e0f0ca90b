import Foundation
import Yams

/// Errors in configuration files and overrides. Every message names the file, the dotted
/// key, the expected and the actual value, and ends with a hint.
public enum ConfigError: Error, CustomStringConvertible, Equatable {
    case unreadable(file: String, reason: String)
    case syntax(file: String, line: Int, column: Int, problem: String)
    case unknownKey(file: String, key: String, suggestion: String?, known: [String])
    case wrongType(file: String, key: String, expected: String, actual: String)
    case invalidValue(file: String, key: String, expected: String, actual: String, hint: String)
    case badOverride(String)

    public var description: String {
        switch self {
        case let .unreadable(file, reason):
            return "\(file): cannot read the config (\(reason)). Hint: check the path passed to --config."
        case let .syntax(file, line, column, problem):
            return "\(file):\(line):\(column): YAML syntax error: \(problem). Hint: check indentation (spaces, not tabs) and colons."
        case let .unknownKey(file, key, suggestion, known):
            let did = suggestion.map { " Did you mean '\($0)'?" } ?? ""
            return "\(file): unknown key '\(key)'.\(did) Hint: known keys here are \(known.joined(separator: ", ")); docs/configuration.md lists every key."
        case let .wrongType(file, key, expected, actual):
            return "\(file): key '\(key)' expects \(expected), got \(actual). Hint: see docs/configuration.md for the key's type and unit."
        case let .invalidValue(file, key, expected, actual, hint):
            return "\(file): key '\(key)' must be \(expected), got \(actual). Hint: \(hint)"
        case let .badOverride(message):
            return "invalid override: \(message). Hint: write --set section.key=value, e.g. --set train.epochs=5."
        }
    }
}

/// Loads typed configurations from YAML: the file is merged onto the defaults (so every key
/// has a documented default), unknown keys are errors that suggest the closest known key,
/// `--set key.path=value` overrides apply after the file, and type errors name the key.
///
/// The defaults come from encoding `T()`, so the Codable type is the single source of truth
/// for the key set.
public struct ConfigLoader<T: Codable & DefaultConstructible> {
    /// Maps a legacy key path (e.g. the UM reference's `prune_rate`) to ours
    /// (`umap.keep_ratio`). Applied before merging; recorded so the run log can show it.
    public var aliases: [String: String] = [:]
    /// Legacy keys whose VALUES need translating (e.g. the reference's `bn_type:
    /// NonAffineBatchNorm` -> `model.batch_norm: non_affine`): key -> function from the value to
    /// (our key path, our value) pairs. Applied before `aliases`.
    public var translators: [String: @Sendable (Node) throws -> [(String, Node)]] = [:]

    public init(aliases: [String: String] = [:], translators: [String: @Sendable (Node) throws -> [(String, Node)]] = [:]) {
        self.aliases = aliases
        self.translators = translators
    }

    /// The defaults as a YAML node tree.
    public func defaultNode() throws -> Node {
        let text = try YAMLEncoder().encode(T())
        guard let node = try Yams.compose(yaml: text) else { return Node.mapping(.init([])) }
        return node
    }

    /// Loads `file` (or only the defaults when `file` is nil), applies `overrides`
    /// (`"train.epochs=5"`), and decodes.
    ///
    /// - Returns: the config and the notes about applied aliases.
    /// - Throws: ``ConfigError``.
    public func load(file: String?, overrides: [String] = []) throws -> (config: T, notes: [String]) {
        let source = file ?? "<defaults>"
        var user: Node = Node.mapping(.init([]))
        if let file {
            let text: String
            do {
                text = try String(contentsOfFile: file, encoding: .utf8)
            } catch {
                let reason = FileManager.default.fileExists(atPath: file) ? "not readable as UTF-8 text" : "no such file"
                throw ConfigError.unreadable(file: file, reason: reason)
            }
            user = try Self.compose(text, file: file) ?? Node.mapping(.init([]))
            guard user.mapping != nil else {
                throw ConfigError.wrongType(file: file, key: "<top level>", expected: "a mapping of keys to values",
                                            actual: ConfigTree.describe(user))
            }
        }
        var notes: [String] = []
        user = try applyAliases(user, file: source, notes: &notes)
        for o in overrides {
            user = try applyOverride(o, to: user, file: source)
        }
        let merged = try ConfigTree.merge(user: user, defaults: try defaultNode(), path: [], file: source)
        do {
            let config = try YAMLDecoder().decode(T.self, from: merged)
            return (config, notes)
        } catch let error as DecodingError {
            throw ConfigTree.translate(error, merged: merged, file: source)
        } catch let error as ConfigValueError {
            throw ConfigError.invalidValue(file: source, key: error.key, expected: error.expected, actual: error.actual, hint: error.hint)
        }
    }

    static func compose(_ text: String, file: String) throws -> Node? {
        do {
            return try Yams.compose(yaml: text)
        } catch let e as YamlError {
            switch e {
            case let .scanner(_, problem, mark, _), let .parser(_, problem, mark, _):
                throw ConfigError.syntax(file: file, line: mark.line, column: mark.column, problem: problem)
            default:
                throw ConfigError.syntax(file: file, line: 0, column: 0, problem: "\(e)")
            }
        }
    }

    func applyAliases(_ node: Node, file: String, notes: inout [String]) throws -> Node {
        var node = node
        for (legacy, translate) in translators.sorted(by: { $0.key < $1.key }) {
            guard let value = ConfigTree.lookup(node, [legacy]) else { continue }
            node = ConfigTree.removing(node, [legacy])
            let pairs: [(String, Node)]
            do {
                pairs = try translate(value)
            } catch let e as ConfigError {
                throw e
            } catch {
                throw ConfigError.invalidValue(file: file, key: legacy, expected: "a value the UM reference uses",
                                               actual: ConfigTree.describe(value), hint: "\(error)")
            }
            for (ours, v) in pairs {
                node = try ConfigTree.setting(node, ours.split(separator: ".").map(String.init), to: v, file: file)
                notes.append("config key '\(legacy): \(value.string ?? ConfigTree.describe(value))' read as '\(ours): \(v.string ?? ConfigTree.describe(v))'")
            }
        }
        for (legacy, ours) in aliases.sorted(by: { $0.key < $1.key }) {
            let legacyPath = legacy.split(separator: ".").map(String.init)
            guard let value = ConfigTree.lookup(node, legacyPath) else { continue }
            node = ConfigTree.removing(node, legacyPath)
            if ConfigTree.lookup(node, ours.split(separator: ".").map(String.init)) != nil {
                throw ConfigError.invalidValue(file: file, key: legacy, expected: "absent when '\(ours)' is also given",
                                               actual: "both present", hint: "'\(legacy)' is the UM reference's name for '\(ours)'; keep one.")
            }
            node = try ConfigTree.setting(node, ours.split(separator: ".").map(String.init), to: value, file: file)
            notes.append("config key '\(legacy)' read as '\(ours)'")
        }
        return node
    }

    func applyOverride(_ text: String, to node: Node, file: String) throws -> Node {
        guard let eq = text.firstIndex(of: "=") else {
            throw ConfigError.badOverride("'\(text)' has no '='")
        }
        var key = String(text[..<eq]).trimmingCharacters(in: .whitespaces)
        let valueText = String(text[text.index(after: eq)...])
        guard !key.isEmpty else { throw ConfigError.badOverride("'\(text)' has an empty key") }
        if let ours = aliases[key] { key = ours }
        // An override must name a known key (checked here so the error names --set, not the file).
        if translators[key] == nil {
            var cur = try defaultNode()
            var walked: [String] = []
            for part in key.split(separator: ".").map(String.init) {
                guard cur.mapping != nil else { break }
                let known = ConfigTree.pairs(cur).map(\.0)
                guard let next = ConfigTree.pairs(cur).first(where: { $0.0 == part })?.1 else {
                    throw ConfigError.unknownKey(file: "--set \(text)", key: (walked + [part]).joined(separator: "."),
                                                 suggestion: ConfigTree.closest(part, among: known).map { (walked + [$0]).joined(separator: ".") },
                                                 known: known)
                }
                walked.append(part)
                cur = next
            }
        }
        let value = (try? Self.compose(valueText, file: "--set \(key)")).flatMap { $0 } ?? Node(valueText)
        return try ConfigTree.setting(node, key.split(separator: ".").map(String.init), to: value, file: "--set \(text)")
    }

}

/// YAML node-tree helpers used by ``ConfigLoader``.
enum ConfigTree {
    // MARK: - Node utilities

    static func pairs(_ node: Node) -> [(String, Node)] {
        guard let m = node.mapping else { return [] }
        return m.map { ($0.key.string ?? "\($0.key)", $0.value) }
    }

    static func mapping(_ pairs: [(String, Node)]) -> Node {
        Node.mapping(Node.Mapping(pairs.map { (Node($0.0), $0.1) }))
    }

    static func lookup(_ node: Node, _ path: [String]) -> Node? {
        var cur = node
        for k in path {
            guard let next = pairs(cur).first(where: { $0.0 == k })?.1 else { return nil }
            cur = next
        }
        return cur
    }

    static func removing(_ node: Node, _ path: [String]) -> Node {
        guard let first = path.first else { return node }
        var ps = pairs(node)
        if path.count == 1 {
            ps.removeAll { $0.0 == first }
        } else if let i = ps.firstIndex(where: { $0.0 == first }) {
            ps[i].1 = removing(ps[i].1, Array(path.dropFirst()))
        }
        return mapping(ps)
    }

    static func setting(_ node: Node, _ path: [String], to value: Node, file: String) throws -> Node {
        guard let first = path.first else { return value }
        if node.mapping == nil && !(node.scalar.map { $0.string.isEmpty } ?? false) {
            throw ConfigError.badOverride("cannot set '\(path.joined(separator: "."))' inside a non-mapping value (\(file))")
        }
        var ps = pairs(node)
        if let i = ps.firstIndex(where: { $0.0 == first }) {
            ps[i].1 = try setting(ps[i].1, Array(path.dropFirst()), to: value, file: file)
        } else {
            ps.append((first, try setting(mapping([]), Array(path.dropFirst()), to: value, file: file)))
        }
        return mapping(ps)
    }

    static func merge(user: Node, defaults: Node, path: [String], file: String) throws -> Node {
        let dotted = path.joined(separator: ".")
        if let dm = defaults.mapping {
            guard user.mapping != nil else {
                if case .scalar(let s) = user, s.tag.description.hasSuffix("null") || s.string.isEmpty || s.string == "~" {
                    return defaults  // `section:` with nothing under it
                }
                throw ConfigError.wrongType(file: file, key: dotted, expected: "a mapping with keys \(dm.keys.compactMap(\.string).joined(separator: ", "))",
                                            actual: describe(user))
            }
            var result = pairs(defaults)
            let known = result.map(\.0)
            for (k, v) in pairs(user) {
                guard let i = result.firstIndex(where: { $0.0 == k }) else {
                    let full = (path + [k]).joined(separator: ".")
                    throw ConfigError.unknownKey(file: file, key: full, suggestion: closest(k, among: known).map { (path + [$0]).joined(separator: ".") },
                                                 known: known)
                }
                result[i].1 = try merge(user: v, defaults: result[i].1, path: path + [k], file: file)
            }
            return mapping(result)
        }
        if let ds = defaults.sequence, let schema = ds.first, schema.mapping != nil, let us = user.sequence {
            // Every element of a list of records is checked against the first default record.
            var items: [Node] = []
            for (i, item) in us.enumerated() {
                items.append(try merge(user: item, defaults: schema, path: path + ["\(i)"], file: file))
            }
            return Node(items)
        }
        return user
    }

    static func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let s): return s.string.isEmpty ? "an empty value" : "'\(s.string)'"
        case .mapping(let m): return "a mapping (keys \(m.keys.compactMap(\.string).joined(separator: ", ")))"
        case .sequence(let s): return "a list of \(s.count) item(s)"
        case .alias: return "an alias"
        }
    }

    static func translate(_ error: DecodingError, merged: Node, file: String) -> ConfigError {
        func path(_ ctx: DecodingError.Context) -> [String] {
            ctx.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }
        }
        func actual(_ p: [String]) -> String {
            lookup(merged, p).map(describe) ?? "nothing"
        }
        switch error {
        case let .typeMismatch(type, ctx), let .valueNotFound(type, ctx):
            let p = path(ctx)
            return .wrongType(file: file, key: p.joined(separator: "."), expected: typeName(type), actual: actual(p))
        case let .dataCorrupted(ctx):
            let p = path(ctx)
            return .wrongType(file: file, key: p.joined(separator: "."), expected: ctx.debugDescription, actual: actual(p))
        case let .keyNotFound(key, ctx):
            let p = path(ctx) + [key.stringValue]
            return .wrongType(file: file, key: p.joined(separator: "."), expected: "a value", actual: "nothing")
        @unknown default:
            return .wrongType(file: file, key: "?", expected: "a valid config", actual: "\(error)")
        }
    }

    static func typeName(_ t: Any.Type) -> String {
        switch t {
        case is Int.Type, is Int64.Type, is Int32.Type: return "an integer"
        case is Double.Type, is Float.Type: return "a number"
        case is Bool.Type: return "true or false"
        case is String.Type: return "a string"
        default:
            let n = "\(t)"
            if n.hasPrefix("Array") { return "a list" }
            return "a \(n)"
        }
    }

    /// The known key closest to `key` by edit distance (at most 3 edits, or a prefix match).
    static func closest(_ key: String, among known: [String]) -> String? {
        var best: (String, Int)?
        for k in known {
            let d = editDistance(key.lowercased(), k.lowercased())
            if best == nil || d < best!.1 { best = (k, d) }
        }
        guard let (k, d) = best else { return nil }
        if d <= max(2, key.count / 3) || k.hasPrefix(key) || key.hasPrefix(k) { return k }
        return nil
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev = Array(0...b.count)
        var cur = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            cur[0] = i
            for j in 1...b.count {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&prev, &cur)
        }
        return prev[b.count]
    }
}

/// A type with a default value for every field.
public protocol DefaultConstructible {
    init()
}

extension ConfigLoader {
    /// The resolved config as YAML (saved with every run).
    public static func yaml(_ config: T) throws -> String {
        try YAMLEncoder().encode(config)
    }
}
