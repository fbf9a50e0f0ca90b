/// Float32 storage shared by tensors. One 64-byte-aligned allocation of `capacity` floats.
///
/// Ordinary storage is copy-on-write through `Tensor`. Storage created with `isArena == true`
/// has reference semantics instead: every tensor viewing it writes in place, which is how
/// parameter and gradient views alias one arena allocation.
public final class TensorStorage {
    /// Start of the allocation.
    public let pointer: UnsafeMutablePointer<Float>
    /// Number of floats allocated.
    public let capacity: Int
    /// `true` for arena storage: writes through any view go in place (no copy-on-write).
    public let isArena: Bool

    /// Allocates `capacity` floats, zero-filled unless `zeroed` is false (then the contents
    /// are unspecified: only for kernels that overwrite every element).
    public init(capacity: Int, isArena: Bool = false, zeroed: Bool = true) {
        precondition(capacity >= 0, "TensorStorage: negative capacity \(capacity)")
        let n = Swift.max(capacity, 1)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: n * 4, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: n)
        if zeroed { pointer.initialize(repeating: 0, count: n) }
        self.capacity = capacity
        self.isArena = isArena
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }
}

/// A dense Float32 tensor in row-major (C) order; images are NCHW (`[N, C, H, W]`).
///
/// Value semantics with copy-on-write: copies share storage until one of them is mutated
/// through `withUnsafeMutableBufferPointer`. `reshaped(_:)` shares storage. Tensors that view
/// an arena (`TensorStorage.isArena`) are the exception: they write in place (reference
/// semantics), so parameters and gradients can alias one allocation.
public struct Tensor {
    /// Dimensions, outermost first (e.g. `[N, C, H, W]`).
    public private(set) var shape: [Int]
    /// Number of elements (product of `shape`; 1 for a scalar `[]`).
    public let count: Int
    @usableFromInline var storage: TensorStorage
    /// Offset of element 0 inside `storage`, in floats.
    public let offset: Int

    /// A zero-filled tensor of the given shape.
    public init(zeros shape: [Int]) {
        let n = Tensor.elementCount(shape)
        self.shape = shape
        count = n
        storage = TensorStorage(capacity: n)
        offset = 0
    }

    /// A tensor whose contents are unspecified (no zero-fill), for kernels that overwrite
    /// every element; saves a memset of the whole output.
    public init(uninitialized shape: [Int]) {
        let n = Tensor.elementCount(shape)
        self.shape = shape
        count = n
        storage = TensorStorage(capacity: n, zeroed: false)
        offset = 0
    }

    /// A tensor of the given shape with every element equal to `value`.
    public init(shape: [Int], filledWith value: Float) {
        self.init(zeros: shape)
        if value != 0 { storage.pointer.update(repeating: value, count: count) }
    }

    /// A tensor of the given shape holding `values` in row-major order.
    /// Precondition: `values.count` equals the product of `shape`.
    public init(shape: [Int], values: [Float]) {
        self.init(zeros: shape)
        precondition(values.count == count,
                     "Tensor(shape: \(shape), values:) needs \(count) values, got \(values.count)")
        let dst = storage.pointer
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { dst.update(from: base, count: src.count) }
        }
    }

    /// A view of `shape` starting at `offset` floats into `storage` (no copy).
    /// With arena storage, the view writes in place.
    public init(storage: TensorStorage, offset: Int, shape: [Int]) {
        let n = Tensor.elementCount(shape)
        precondition(offset >= 0 && offset + n <= storage.capacity,
                     "Tensor view [\(offset), \(offset + n)) exceeds storage capacity \(storage.capacity)")
        self.storage = storage
        self.offset = offset
        self.shape = shape
        count = n
    }

    /// Product of the dimensions. Precondition: no negative dimension.
    public static func elementCount(_ shape: [Int]) -> Int {
        var n = 1
        for d in shape {
            precondition(d >= 0, "Tensor shape \(shape) has a negative dimension")
            n *= d
        }
        return n
    }

    /// Number of dimensions.
    public var rank: Int { shape.count }

    /// The same elements with a new shape (shares storage; copy-on-write applies).
    /// Precondition: the element count is unchanged.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        let n = Tensor.elementCount(newShape)
        precondition(n == count, "reshaped: \(shape) (\(count) elements) cannot become \(newShape) (\(n))")
        var t = self
        t.shape = newShape
        return t
    }

    /// Calls `body` with a read-only pointer to the `count` elements.
    @inlinable
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.pointer + offset, count: count))
    }

    /// Calls `body` with a writable pointer to the `count` elements, copying the storage first
    /// if it is shared with another tensor (unless it is arena storage).
    @inlinable
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        makeUnique()
        return try body(UnsafeMutableBufferPointer(start: storage.pointer + offset, count: count))
    }

    @usableFromInline mutating func makeUnique() {
        if storage.isArena || isKnownUniquelyReferenced(&storage) { return }
        let fresh = TensorStorage(capacity: count, zeroed: false)
        fresh.pointer.update(from: storage.pointer + offset, count: count)
        self = Tensor(storage: fresh, offset: 0, shape: shape)
    }

    /// A private copy (never aliases arena storage).
    public func copy() -> Tensor {
        let fresh = TensorStorage(capacity: count, zeroed: false)
        fresh.pointer.update(from: storage.pointer + offset, count: count)
        return Tensor(storage: fresh, offset: 0, shape: shape)
    }

    /// The elements as an array, row-major.
    public var scalars: [Float] { withUnsafeBufferPointer { Array($0) } }

    /// `true` if both tensors view the same storage (e.g. an arena).
    public func sharesStorage(with other: Tensor) -> Bool { storage === other.storage }

    /// Sets every element to zero (in place; one memset).
    public mutating func zero() {
        withUnsafeMutableBufferPointer { p in
            if let b = p.baseAddress { b.update(repeating: 0, count: p.count) }
        }
    }

    /// Copies `source`'s elements in (shapes may differ). Precondition: equal counts.
    public mutating func assign(_ source: Tensor) {
        precondition(source.count == count, "assign: \(source.shape) into \(shape)")
        let n = count
        source.withUnsafeBufferPointer { s in
            withUnsafeMutableBufferPointer { d in
                if let db = d.baseAddress, let sb = s.baseAddress { db.update(from: sb, count: n) }
            }
        }
    }

    /// Element at a multi-index (slow; for tests and diagnostics).
    public subscript(_ index: Int...) -> Float {
        get { storage.pointer[offset + flatIndex(index)] }
        set {
            let i = flatIndex(index)
            withUnsafeMutableBufferPointer { $0[i] = newValue }
        }
    }

    func flatIndex(_ index: [Int]) -> Int {
        precondition(index.count == shape.count, "index \(index) for shape \(shape)")
        var flat = 0
        for (i, d) in zip(index, shape) {
            precondition(i >= 0 && i < d, "index \(index) out of range for shape \(shape)")
            flat = flat * d + i
        }
        return flat
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let shown = scalars.prefix(8).map { "\($0)" }.joined(separator: ", ")
        return "Tensor(\(shape): [\(shown)\(count > 8 ? ", ..." : "")])"
    }
}
