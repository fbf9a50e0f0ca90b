import Distributed
import Foundation
import NeuralNetwork
import TensorCore

/// Keeping the replicas identical: the start-up check that every rank built the same model, the
/// broadcast of rank 0's state, BatchNorm statistics made identical before evaluation, and
/// per-tensor checksums compared across ranks. All collective.
extension Trainer {
    /// Every rank must have built the same model: names, shapes and roles are compared.
    func verifyModelAcrossRanks() throws {
        let signature = model.stateEntries().map { name, entry -> String in
            switch entry {
            case .float(let p): return "\(name):\(p.shape):\(p.role)"
            case .int64: return "\(name):int64"
            }
        }
        let mine = Array(signature.joined(separator: "\n").utf8)
        let all = try comm.allgather(mine)
        let reference = String(decoding: all[0], as: UTF8.self).split(separator: "\n").map(String.init)
        for (r, bytes) in all.enumerated() where bytes != all[0] {
            let theirs = String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
            let onlyRef = reference.filter { !theirs.contains($0) }.prefix(5)
            let onlyTheirs = theirs.filter { !reference.contains($0) }.prefix(5)
            throw TrainingError.modelMismatch("rank \(r) differs from rank 0; rank 0 only: \(Array(onlyRef)); rank \(r) only: \(Array(onlyTheirs))")
        }
    }

    /// Broadcasts parameters (trainable, frozen), buffers and int64 buffers from `root`.
    public func broadcastState(root: Int) throws {
        guard comm.worldSize > 1 else { return }
        for p in model.parameters + model.buffers {
            var v = p.value
            try v.withUnsafeMutableBufferPointer { try comm.broadcast($0, root: root) }
            if !v.sharesStorage(with: p.value) { p.value = v }
        }
        var counters = model.int64Buffers.map(\.value)
        try comm.broadcast(&counters, root: root)
        for (b, v) in zip(model.int64Buffers, counters) { b.value = v }
    }

    /// Makes BatchNorm running statistics identical on every rank. With `sync` BN they already
    /// are (every rank normalised with the same global statistics); with `local` BN the rule is
    /// the arithmetic mean over ranks of `running_mean` and `running_var`, and the maximum of
    /// `num_batches_tracked`.
    public func synchronizeBuffers() throws {
        guard comm.worldSize > 1, config.train.bnMode == .local else { return }
        for b in model.buffers {
            var v = b.value
            try v.withUnsafeMutableBufferPointer { p in
                try comm.allreduce(p, op: .sum)
                let inv = 1 / Float(comm.worldSize)
                for i in 0..<p.count { p[i] *= inv }
            }
            if !v.sharesStorage(with: b.value) { b.value = v }
        }
        var counters = model.int64Buffers.map(\.value)
        try comm.allreduce(&counters, op: .max)
        for (b, v) in zip(model.int64Buffers, counters) { b.value = v }
    }

    /// Compares per-tensor checksums across ranks; throws naming the first differing tensors.
    public func checkConsistency(includeBuffers: Bool) throws {
        guard comm.worldSize > 1 else { return }
        let (names, sums) = checksums(includeBuffers: includeBuffers)
        if let diff = try RankConsistency.compare(names: names, checksums: sums, comm: comm) {
            throw TrainingError.replicasDiverged(diff)
        }
    }

    /// Per-tensor checksums (parameters, then optionally buffers and int64 buffers).
    public func checksums(includeBuffers: Bool) -> (names: [String], sums: [UInt64]) {
        var names: [String] = [], sums: [UInt64] = []
        for p in model.parameters + (includeBuffers ? model.buffers : []) {
            names.append(p.name)
            sums.append(p.value.withUnsafeBufferPointer { RankConsistency.checksum($0) })
        }
        if includeBuffers {
            for b in model.int64Buffers {
                names.append(b.name)
                sums.append(RankConsistency.checksum([b.value]))
            }
        }
        for (name, values) in hooks?.extraState() ?? [] {
            names.append(name)
            sums.append(values.withUnsafeBufferPointer { RankConsistency.checksum($0) })
        }
        return (names, sums)
    }

    /// The tensors holding NaN or infinity, as "name (count of size)", at most `limit` of them
    /// (parameters, then with `includeBuffers` the float buffers); empty when all are finite.
    public func nonFiniteTensors(includeBuffers: Bool, limit: Int = 5) -> [String] {
        var out: [String] = []
        for p in model.parameters + (includeBuffers ? model.buffers : []) where out.count < limit {
            let bad = p.value.withUnsafeBufferPointer { b in b.reduce(0) { $1.isFinite ? $0 : $0 + 1 } }
            if bad > 0 { out.append("\(p.name) (\(bad) of \(p.count))") }
        }
        return out
    }

    /// Throws when a parameter (or, with `includeBuffers`, a BatchNorm statistic) is not finite.
    /// Replicas are bitwise identical, so every rank reaches the same verdict.
    /// - Throws: ``TrainingError/nonFiniteParameters(when:tensors:lastCheckpoint:)``.
    public func checkFinite(includeBuffers: Bool, when: String) throws {
        let bad = nonFiniteTensors(includeBuffers: includeBuffers)
        if !bad.isEmpty {
            throw TrainingError.nonFiniteParameters(when: when, tensors: bad.joined(separator: ", "), lastCheckpoint: lastCheckpoint)
        }
    }

    /// One checksum over all parameters and buffers (what tests compare across runs).
    public var stateChecksum: UInt64 { RankConsistency.combine(checksums(includeBuffers: true).sums) }
}

/// Synchronised BatchNorm over a communicator: sums the per-channel statistics across ranks.
/// A collective failure here ends the job (every rank reports and aborts), because the
/// layer API cannot propagate errors from inside a forward pass.
package final class CommunicatorBatchNormReducer: BatchNormStatisticsReducer {
    let comm: Communicator
    var trace: StepTrace?
    package init(comm: Communicator, trace: StepTrace? = nil) {
        self.comm = comm
        self.trace = trace
    }

    public func sumAcrossReplicas(_ values: UnsafeMutableBufferPointer<Double>) {
        do {
            let t0 = StepTrace.now()
            try comm.allreduce(values, op: .sum)
            trace?.record("BatchNorm statistics allreduce", "comm", from: t0, args: "\"values\":\(values.count)")
        } catch {
            comm.abort(code: 1, message: "[rank \(comm.rank)] error: synchronised BatchNorm: \(error)")
        }
    }
}

