/// Element type of a tensor stored in a safetensors file.
///
/// Raw values are the exact dtype strings of the safetensors format (huggingface/safetensors,
/// `Dtype` in `safetensors/src/tensor.rs`). Every dtype the format defines is recognised so a
/// file written by another tool parses and names its dtype precisely; only ``f32`` and ``i64``
/// (``isSupported``) can be converted to Swift arrays by this module.
public enum SafeTensorsDType: String, Sendable, CaseIterable, Hashable, CustomStringConvertible {
    case bool = "BOOL"
    case f4 = "F4"
    case f6e2m3 = "F6_E2M3"
    case f6e3m2 = "F6_E3M2"
    case u8 = "U8"
    case i8 = "I8"
    case f8e5m2 = "F8_E5M2"
    case f8e4m3 = "F8_E4M3"
    case f8e8m0 = "F8_E8M0"
    case i16 = "I16"
    case u16 = "U16"
    case f16 = "F16"
    case bf16 = "BF16"
    case i32 = "I32"
    case u32 = "U32"
    case f32 = "F32"
    case c64 = "C64"
    case f64 = "F64"
    case i64 = "I64"
    case u64 = "U64"

    /// Position in the reference library's `Dtype` enum (declaration order, which the cases here
    /// follow). Its writer lays tensors out by descending rank, then by name.
    var referenceRank: Int { SafeTensorsDType.allCases.firstIndex(of: self) ?? 0 }

    /// Storage size of one element in bits (4 and 6 for the sub-byte float formats).
    public var bitWidth: Int {
        switch self {
        case .f4: return 4
        case .f6e2m3, .f6e3m2: return 6
        case .bool, .u8, .i8, .f8e5m2, .f8e4m3, .f8e8m0: return 8
        case .i16, .u16, .f16, .bf16: return 16
        case .i32, .u32, .f32: return 32
        case .f64, .c64, .i64, .u64: return 64
        }
    }

    /// Whether this module can convert the dtype to a Swift array (`F32` -> `[Float]`,
    /// `I64` -> `[Int64]`). Readers reject other dtypes unless explicitly allowed.
    public var isSupported: Bool { self == .f32 || self == .i64 }

    /// The set of dtypes this module converts: `[F32, I64]`.
    public static let supported: Set<SafeTensorsDType> = [.f32, .i64]

    public var description: String { rawValue }

    /// Byte size of a tensor of this dtype with `elementCount` elements, or `nil` when it
    /// overflows `Int` or (sub-byte dtypes) does not fill a whole number of bytes, which the
    /// reference library also rejects.
    public func byteCount(elementCount: Int) -> Int? {
        let (bits, overflow) = elementCount.multipliedReportingOverflow(by: bitWidth)
        guard !overflow, elementCount >= 0, bits % 8 == 0 else { return nil }
        return bits / 8
    }
}

/// Number of elements of a tensor with the given shape (`1` for a scalar `[]`), or `nil` when a
/// dimension is negative or the product overflows `Int`.
public func safeTensorsElementCount(shape: [Int]) -> Int? {
    var count = 1
    for dimension in shape {
        guard dimension >= 0 else { return nil }
        let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
        guard !overflow else { return nil }
        count = product
    }
    return count
}
