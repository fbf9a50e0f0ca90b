import Foundation

/// What to load for one step: the positions (into the source) of the samples, and the epoch that
/// keys their augmentation.
public struct BatchPlan: Sendable, Equatable {
    public let epoch: Int
    public let step: Int
    public let positions: [Int]

    public init(epoch: Int, step: Int, positions: [Int]) {
        self.epoch = epoch
        self.step = step
        self.positions = positions
    }

    /// The plan of a sampler batch (`DistributedSampler.batches(...)`).
    public init(epoch: Int, batch: SamplerBatch) {
        self.init(epoch: epoch, step: batch.step, positions: batch.positions)
    }
}

/// One assembled batch.
public struct LoadedBatch: Sendable {
    public let epoch: Int
    public let step: Int
    /// Normalised pixels, `[count, channels, height, width]` (see `ChannelNormalizer`).
    public let images: [Float]
    public let labels: [Int]
    public let ids: [Int]
    public let channels: Int
    public let height: Int
    public let width: Int
    public var count: Int { labels.count }
}

/// Assembles batches on one background thread, so decoding, augmentation and normalisation
/// overlap the trainer's compute.
///
/// The loader thread works through `plans` in order and keeps at most `prefetch` finished batches
/// in a bounded queue (it blocks when the queue is full). The consumer calls `next()`, which
/// blocks until the next batch is ready and returns batches in plan order, then `nil` after the
/// last one. The loader thread calls nothing but the source, the normaliser and this queue: never
/// MPI, so it is safe beside a communicator that is not thread-safe.
///
/// Determinism: every batch is `BatchLoader.assemble(plan, source:, normalizer:)`, a pure
/// function of (plan, source), so the batches equal those of a synchronous loop whatever the
/// timing.
///
/// Errors: the first error a source throws (e.g. a corrupt JPEG in a lazy folder) stops the
/// loader thread; `next()` returns the batches finished before it and then throws that error
/// (and keeps throwing it on later calls).
///
/// Shutdown: `cancel()` (also run by `deinit`) tells the thread to stop, wakes it, and waits for
/// it to exit, so no thread outlives the loader.
public final class BatchLoader: @unchecked Sendable {
    /// Shared between the consumer and the loader thread; every field is guarded by `condition`.
    private final class State: @unchecked Sendable {
        let condition = NSCondition()
        var queue: [LoadedBatch] = []
        var failure: Error?
        var producerDone = false
        var cancelled = false
        var threadExited = false
    }

    private let state = State()
    public let prefetch: Int
    public let planCount: Int
    private var delivered = 0

    /// Starts the loader thread.
    /// - Precondition: `prefetch >= 1`; `normalizer.channels == source.channels`.
    public init(source: any BatchSource, plans: [BatchPlan], normalizer: ChannelNormalizer, prefetch: Int = 3) {
        precondition(prefetch >= 1, "BatchLoader: prefetch must be >= 1, got \(prefetch)")
        precondition(normalizer.channels == source.channels,
                     "BatchLoader: normalizer has \(normalizer.channels) channels, source \(source.channels)")
        self.prefetch = prefetch
        self.planCount = plans.count
        let state = self.state
        let thread = Thread {
            BatchLoader.produce(state: state, source: source, plans: plans, normalizer: normalizer, prefetch: prefetch)
        }
        thread.name = "umtrain-batch-loader"
        thread.start()
    }

    private static func produce(state: State, source: any BatchSource, plans: [BatchPlan],
                                normalizer: ChannelNormalizer, prefetch: Int) {
        defer {
            state.condition.lock()
            state.producerDone = true
            state.threadExited = true
            state.condition.broadcast()
            state.condition.unlock()
        }
        for plan in plans {
            state.condition.lock()
            let stop = state.cancelled
            state.condition.unlock()
            if stop { return }
            let batch: LoadedBatch
            do {
                batch = try assemble(plan, source: source, normalizer: normalizer)
            } catch {
                state.condition.lock()
                state.failure = error
                state.condition.unlock()
                return
            }
            state.condition.lock()
            while state.queue.count >= prefetch && !state.cancelled {
                state.condition.wait()
            }
            if state.cancelled {
                state.condition.unlock()
                return
            }
            state.queue.append(batch)
            state.condition.broadcast()
            state.condition.unlock()
        }
    }

    /// The next batch in plan order, blocking until it is ready; nil after the last plan (or
    /// after `cancel()`).
    /// - Throws: the source's error, once every batch finished before it has been returned.
    public func next() throws -> LoadedBatch? {
        state.condition.lock()
        defer { state.condition.unlock() }
        while state.queue.isEmpty && !state.producerDone {
            state.condition.wait()
        }
        if !state.queue.isEmpty {
            let batch = state.queue.removeFirst()
            delivered += 1
            state.condition.broadcast()
            return batch
        }
        if let failure = state.failure { throw failure }
        return nil
    }

    /// Stops the loader thread and waits until it has exited. Idempotent.
    public func cancel() {
        state.condition.lock()
        state.cancelled = true
        state.condition.broadcast()
        while !state.threadExited {
            state.condition.wait()
        }
        state.queue.removeAll()
        state.condition.unlock()
    }

    deinit { cancel() }

    /// Builds one batch synchronously (what the loader thread runs for every plan): each sample
    /// via `source.sample(at:epoch:into:)`, then normalised into `[n, C, H, W]` floats.
    /// - Throws: the source's error.
    public static func assemble(_ plan: BatchPlan, source: any BatchSource, normalizer: ChannelNormalizer) throws -> LoadedBatch {
        let c = source.channels, h = source.height, w = source.width
        let bytes = c * h * w
        let n = plan.positions.count
        var images = [Float](repeating: 0, count: n * bytes)
        var scratch = [UInt8](repeating: 0, count: bytes)
        var labels: [Int] = [], ids: [Int] = []
        labels.reserveCapacity(n)
        ids.reserveCapacity(n)
        try images.withUnsafeMutableBufferPointer { out in
            try scratch.withUnsafeMutableBufferPointer { tmp in
                for (k, p) in plan.positions.enumerated() {
                    try source.sample(at: p, epoch: plan.epoch, into: tmp)
                    normalizer.normalize(UnsafeBufferPointer(tmp), planeSize: h * w,
                                         into: UnsafeMutableBufferPointer(rebasing: out[k * bytes ..< (k + 1) * bytes]))
                    labels.append(source.label(at: p))
                    ids.append(source.id(at: p))
                }
            }
        }
        return LoadedBatch(epoch: plan.epoch, step: plan.step, images: images, labels: labels, ids: ids,
                           channels: c, height: h, width: w)
    }
}
