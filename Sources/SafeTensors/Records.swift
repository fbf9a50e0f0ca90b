/// One named tensor as stored in a safetensors file: dtype, shape and raw little-endian bytes.
///
/// Independent of any in-memory tensor type: callers convert with ``floats()`` / ``int64s()``
/// and build records with ``init(name:shape:floats:)`` / ``init(name:shape:int64s:)``.
/// Layout is row-major (C order), as in PyTorch and numpy. A scalar has shape `[]` and one
/// element; a shape containing `0` has no elements and no bytes.
public struct SafeTensorsRecord: Sendable, Equatable {
    /// PyTorch state-dict name, e.g. `layer1.0.conv1.weight` or `bn1.num_batches_tracked`.
    public var name: String
    public var dtype: SafeTensorsDType
    /// Dimensions, outermost first (e.g. `[C_out, C_in, kH, kW]` for a conv weight).
    public var shape: [Int]
    /// Raw element bytes, little-endian, `elementCount * dtype.bitWidth / 8` bytes.
    public var bytes: [UInt8]

    /// Builds a record from raw little-endian bytes of any dtype.
    /// - Throws: ``SafeTensorsError/invalidRecord(tensor:reason:)`` when a dimension is negative,
    ///   the element count overflows, or `bytes.count` differs from `product(shape) * size(dtype)`.
    public init(name: String, dtype: SafeTensorsDType, shape: [Int], bytes: [UInt8]) throws(SafeTensorsError) {
        guard let count = safeTensorsElementCount(shape: shape) else {
            throw .invalidRecord(tensor: name, reason: "shape \(shape) has a negative dimension or overflows")
        }
        guard let expected = dtype.byteCount(elementCount: count) else {
            throw .invalidRecord(tensor: name, reason: "\(count) elements of \(dtype) do not fill whole bytes")
        }
        guard expected == bytes.count else {
            throw .invalidRecord(tensor: name, reason:
                "\(dtype) shape \(shape) needs \(expected) bytes, expected that many, got \(bytes.count)")
        }
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    /// Internal unchecked initialiser for the reader (which has already validated sizes).
    init(uncheckedName name: String, dtype: SafeTensorsDType, shape: [Int], bytes: [UInt8]) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    /// Builds an `F32` record; `values` are in row-major order. Bit patterns (NaN payloads,
    /// `-0.0`, subnormals) are preserved exactly.
    /// - Precondition: `values.count == product(shape)` and no dimension is negative.
    public init(name: String, shape: [Int], floats values: [Float]) {
        let count = safeTensorsElementCount(shape: shape)
        precondition(count == values.count,
                     "SafeTensorsRecord '\(name)': shape \(shape) has \(count.map(String.init) ?? "invalid") elements "
                     + "but \(values.count) Float values were given")
        self.init(uncheckedName: name, dtype: .f32, shape: shape, bytes: littleEndianBytes(of: values))
    }

    /// Builds an `I64` record (e.g. `num_batches_tracked`, shape `[]`); row-major `values`.
    /// - Precondition: `values.count == product(shape)` and no dimension is negative.
    public init(name: String, shape: [Int], int64s values: [Int64]) {
        let count = safeTensorsElementCount(shape: shape)
        precondition(count == values.count,
                     "SafeTensorsRecord '\(name)': shape \(shape) has \(count.map(String.init) ?? "invalid") elements "
                     + "but \(values.count) Int64 values were given")
        self.init(uncheckedName: name, dtype: .i64, shape: shape, bytes: littleEndianBytes(of: values))
    }

    /// Number of elements, `product(shape)` (1 for a scalar).
    public var elementCount: Int { safeTensorsElementCount(shape: shape) ?? 0 }

    /// The values of an `F32` tensor in row-major order, bit-exact.
    /// - Throws: ``SafeTensorsError/dtypeMismatch(tensor:requested:actual:)`` for other dtypes.
    public func floats() throws(SafeTensorsError) -> [Float] {
        guard dtype == .f32 else { throw .dtypeMismatch(tensor: name, requested: .f32, actual: dtype) }
        return valuesFromLittleEndianBytes(bytes, as: Float.self)
    }

    /// The values of an `I64` tensor in row-major order.
    /// - Throws: ``SafeTensorsError/dtypeMismatch(tensor:requested:actual:)`` for other dtypes.
    public func int64s() throws(SafeTensorsError) -> [Int64] {
        guard dtype == .i64 else { throw .dtypeMismatch(tensor: name, requested: .i64, actual: dtype) }
        return valuesFromLittleEndianBytes(bytes, as: Int64.self)
    }
}

/// Element types stored little-endian by this module (F32 as its IEEE bit pattern, I64).
private protocol LittleEndianStorable: BitwiseCopyable {
    associatedtype Bits: FixedWidthInteger
    var littleEndianBits: Bits { get }
    init(littleEndianBits: Bits)
}

extension Float: LittleEndianStorable {
    var littleEndianBits: UInt32 { bitPattern.littleEndian }
    init(littleEndianBits bits: UInt32) { self.init(bitPattern: UInt32(littleEndian: bits)) }
}

extension Int64: LittleEndianStorable {
    var littleEndianBits: Int64 { littleEndian }
    init(littleEndianBits bits: Int64) { self.init(littleEndian: bits) }
}

/// Little-endian bytes of `values`: one memory copy on little-endian hosts (bit-exact, including
/// NaN payloads), a per-element byte swap elsewhere.
private func littleEndianBytes<T: LittleEndianStorable>(of values: [T]) -> [UInt8] {
    let size = MemoryLayout<T>.size
    return [UInt8](unsafeUninitializedCapacity: values.count * size) { out, initialized in
        values.withUnsafeBufferPointer { input in
            guard let source = input.baseAddress, let destination = out.baseAddress else { return }
            #if _endian(little)
            UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: input.count * size)
            #else
            let raw = UnsafeMutableRawPointer(destination)
            for index in 0..<input.count {
                raw.storeBytes(of: input[index].littleEndianBits, toByteOffset: index * size, as: T.Bits.self)
            }
            #endif
        }
        initialized = values.count * size
    }
}

/// Values decoded from little-endian `bytes` (whose count is a multiple of the value size).
private func valuesFromLittleEndianBytes<T: LittleEndianStorable>(_ bytes: [UInt8], as type: T.Type) -> [T] {
    let size = MemoryLayout<T>.size
    let count = bytes.count / size
    return [T](unsafeUninitializedCapacity: count) { out, initialized in
        bytes.withUnsafeBytes { raw in
            guard let source = raw.baseAddress, let destination = out.baseAddress else { return }
            #if _endian(little)
            UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: count * size)
            #else
            for index in 0..<count {
                destination[index] = T(littleEndianBits: raw.loadUnaligned(fromByteOffset: index * size, as: T.Bits.self))
            }
            #endif
        }
        initialized = count
    }
}

/// The contents of a safetensors file: tensor records plus string metadata.
///
/// `metadata` is the file's `__metadata__` object (string -> string). This project stores the
/// model architecture and its constructor arguments there, so a checkpoint describes itself.
public struct SafeTensorsFile: Sendable, Equatable {
    /// Tensors in the order they are stored in the data section (reader) or were given (writer).
    public var records: [SafeTensorsRecord]
    public var metadata: [String: String]

    public init(records: [SafeTensorsRecord] = [], metadata: [String: String] = [:]) {
        self.records = records
        self.metadata = metadata
    }

    /// The record named `name`, if present.
    public func record(named name: String) -> SafeTensorsRecord? {
        records.first { $0.name == name }
    }

    /// Names of all records, in record order.
    public var names: [String] { records.map(\.name) }

    /// Order-insensitive equality of contents: same metadata and the same set of records.
    public func hasSameContents(as other: SafeTensorsFile) -> Bool {
        metadata == other.metadata
            && records.sorted { $0.name < $1.name } == other.records.sorted { $0.name < $1.name }
    }
}
