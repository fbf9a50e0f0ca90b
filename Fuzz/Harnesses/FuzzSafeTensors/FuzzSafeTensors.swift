import FuzzSupport
import SafeTensors

/// safetensors files: decode (strict and allowing other dtypes); what decodes must convert to
/// arrays and survive an encode/decode round trip unchanged.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = FuzzInput.bytes(data, size)
    _ = try? SafeTensorsFile.decode(bytes)
    guard let file = try? SafeTensorsFile.decode(bytes, allowingUnsupportedDTypes: true) else { return 0 }
    for record in file.records {
        switch record.dtype {
        case .f32: precondition((try? record.floats())?.count == record.elementCount, "F32 record does not convert")
        case .i64: precondition((try? record.int64s())?.count == record.elementCount, "I64 record does not convert")
        default: break
        }
    }
    let encoded: [UInt8]
    do { encoded = try file.encode() } catch { preconditionFailure("a decoded file does not encode: \(error)") }
    do {
        let again = try SafeTensorsFile.decode(encoded, allowingUnsupportedDTypes: true)
        precondition(again.hasSameContents(as: file) && again.metadata == file.metadata, "round trip changed the file")
    } catch {
        preconditionFailure("a re-encoded file does not decode: \(error)")
    }
    return 0
}
