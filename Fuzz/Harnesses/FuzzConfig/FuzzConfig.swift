import FuzzSupport
import Training

/// YAML run configurations: `RunConfig.load(file:overrides:)` (parse, merge onto the defaults,
/// reference-key translation, `--set` overrides, validation). Lines of the input that start
/// with `#set ` (YAML comments) are also passed as `--set` overrides. An accepted config must
/// survive the round trip through the YAML that every run folder saves.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = FuzzInput.bytes(data, size)
    let path = FuzzInput.write(bytes, name: "input-config.yaml")
    let text = String(decoding: bytes, as: UTF8.self)
    let overrides = text.split(separator: "\n").filter { $0.hasPrefix("#set ") }.map { String($0.dropFirst(5)) }
    guard let (config, _) = try? RunConfig.load(file: path, overrides: overrides) else { return 0 }
    let saved: String
    do { saved = try config.yaml() } catch { preconditionFailure("an accepted config does not encode: \(error)") }
    let again = FuzzInput.write(Array(saved.utf8), name: "saved-config.yaml")
    do {
        let (reloaded, _) = try RunConfig.load(file: again)
        precondition(reloaded == config, "the saved YAML reloads to a different config:\n\(saved)")
    } catch {
        preconditionFailure("the saved YAML of an accepted config does not load: \(error)\n\(saved)")
    }
    return 0
}
