import Dispatch
import Distributed
import NeuralNetwork

/// The gradient allreduce overlapped with backward (as PyTorch DDP and Horovod do): each bucket's
/// non-blocking allreduce starts as soon as backward has produced the last gradient of that
/// bucket, outstanding ones are progressed between layers, and all are waited for before the
/// optimizer step. Buckets are the same as ``GradientReducer``'s and start in the same order on
/// every rank (bucket 0 first: a bucket that is ready before an earlier one waits for it), each
/// with the same chunks, so the reduced gradients are bitwise those of reducing after backward.
/// A parameter's gradient is final once the layer that owns it has run backward
/// (``BackwardProgress``). Used when `train.overlap_allreduce` is on, the world has more than one
/// rank, no method hook reroutes gradients after backward (UMAP) and no multiplier is applied
/// after it (accumulation with flooding).
package final class OverlappedReduction {
    let buckets: [GradientBucket]
    let comm: Communicator
    /// Parameter (by identity) -> its index in the trainable list the buckets refer to.
    let indexOf: [ObjectIdentifier: Int]
    /// Per layer (by identity), the indices of its parameters; filled on first use.
    var layerIndices: [ObjectIdentifier: [Int]] = [:]
    var done: [Bool]
    var next = 0
    var pending: [PendingAllreduce] = []
    var arena = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    var failure: Error?
    /// Called with (bucket, launch, completion) in `DispatchTime` nanoseconds (the timeline).
    package var onBucket: ((Int, UInt64, UInt64) -> Void)?
    var launched: [UInt64] = []
    var reported = 0
    /// Buckets started before backward ended, in the last step (for logs and tests).
    package private(set) var startedDuringBackward = 0

    package init(buckets: [GradientBucket], parameters: [Parameter], comm: Communicator) {
        self.buckets = buckets
        self.comm = comm
        indexOf = Dictionary(uniqueKeysWithValues: parameters.enumerated().map { (ObjectIdentifier($0.element), $0.offset) })
        done = [Bool](repeating: false, count: parameters.count)
    }

    /// Runs `backward` with the buckets' allreduces started as their gradients become final, then
    /// waits for all of them. Collective.
    /// - Throws: communicator errors (stall, MPI failure), also from inside backward.
    package func run(arena: UnsafeMutableBufferPointer<Float>, backward: () -> Void) throws {
        self.arena = arena
        for i in done.indices { done[i] = false }
        next = 0
        pending = []
        launched = []
        reported = 0
        failure = nil
        BackwardProgress.observer = { [unowned self] layer in self.finished(layer) }
        backward()
        BackwardProgress.observer = nil
        if let failure { throw failure }
        startedDuringBackward = next
        for i in done.indices { done[i] = true }
        try launchReady()
        for (i, p) in pending.enumerated() {
            try comm.waitAllreduce(p)
            if i >= reported { onBucket?(i, launched[i], DispatchTime.now().uptimeNanoseconds); reported = i + 1 }
        }
    }

    func finished(_ layer: any Layer) {
        guard failure == nil else { return }
        let key = ObjectIdentifier(layer as AnyObject)
        let indices = layerIndices[key] ?? {
            let found = layer.parameters.compactMap { indexOf[ObjectIdentifier($0)] }
            layerIndices[key] = found
            return found
        }()
        for i in indices { done[i] = true }
        do {
            try launchReady()
            for p in pending { _ = try comm.testAllreduce(p) }
            // Completions in bucket order (as they are waited for).
            while reported < pending.count && pending[reported].done {
                onBucket?(reported, launched[reported], DispatchTime.now().uptimeNanoseconds)
                reported += 1
            }
        } catch {
            failure = error
        }
    }

    func launchReady() throws {
        while next < buckets.count && buckets[next].parameterIndices.allSatisfy({ done[$0] }) {
            let b = buckets[next]
            precondition(b.offset + b.count <= arena.count, "bucket [\(b.offset), \(b.offset + b.count)) outside the arena of \(arena.count)")
            launched.append(DispatchTime.now().uptimeNanoseconds)
            pending.append(try comm.startAllreduce(UnsafeMutableBufferPointer(rebasing: arena[b.offset..<(b.offset + b.count)])))
            next += 1
        }
    }
}
