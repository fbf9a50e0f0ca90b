import Distributed
import Foundation
import NeuralNetwork

/// A per-rank timeline of training steps (`train.trace: FILE`), written as Chrome trace-event
/// JSON (open it in https://ui.perfetto.dev or chrome://tracing): one row per rank, with per
/// step the step itself, waiting for the batch, the forward and backward of every layer (nested:
/// blocks, then the layers inside them), each gradient bucket's allreduce from launch to
/// completion, every BatchNorm-statistics allreduce, the loss-statistics allreduce and the
/// optimizer. Times are microseconds from a barrier all ranks passed together (one machine's
/// ranks share the monotonic clock; across machines the barrier aligns them to its latency).
/// Only the first `train.trace_steps` optimizer steps are recorded, so the file stays small.
package final class StepTrace {
    struct Event {
        var name: String
        var category: String
        var start: UInt64
        var end: UInt64
        var args: String
    }

    let path: String
    let stepLimit: Int
    var origin: UInt64 = 0
    var events: [Event] = []
    /// The optimizer step being recorded (1-based); recording stops after `stepLimit`.
    var step = 0
    /// Whether the file has been written (once per training run).
    var written = false

    init(path: String, steps: Int) {
        self.path = path
        stepLimit = steps
    }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    var active: Bool { step >= 1 && step <= stepLimit }

    /// Starts the clock after a barrier. Collective.
    func start(comm: Communicator) throws {
        try comm.barrier()
        origin = Self.now()
    }

    func record(_ name: String, _ category: String, from start: UInt64, to end: UInt64 = StepTrace.now(), args: String = "") {
        guard active else { return }
        events.append(Event(name: name, category: category, start: start, end: end, args: args))
    }

    /// Times `body` as one event.
    func time<T>(_ name: String, _ category: String, _ body: () throws -> T) rethrows -> T {
        guard active else { return try body() }
        let t0 = Self.now()
        defer { record(name, category, from: t0) }
        return try body()
    }

    /// This rank's events as JSON objects (one per line, comma-separated).
    func json(rank: Int) -> String {
        func us(_ t: UInt64) -> String { String(format: "%.3f", Double(t &- origin) / 1000) }
        func escaped(_ s: String) -> String { s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") }
        var lines = ["{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":\(rank),\"tid\":0,\"args\":{\"name\":\"rank \(rank)\"}}",
                     "{\"name\":\"process_sort_index\",\"ph\":\"M\",\"pid\":\(rank),\"tid\":0,\"args\":{\"sort_index\":\(rank)}}"]
        for e in events {
            lines.append("{\"name\":\"\(escaped(e.name))\",\"cat\":\"\(e.category)\",\"ph\":\"X\",\"pid\":\(rank),\"tid\":0,"
                + "\"ts\":\(us(e.start)),\"dur\":\(String(format: "%.3f", Double(e.end &- e.start) / 1000))"
                + (e.args.isEmpty ? "" : ",\"args\":{\(e.args)}") + "}")
        }
        return lines.joined(separator: ",\n")
    }

    /// Gathers every rank's events onto rank 0 (one rank at a time) and writes one file there,
    /// atomically. Collective.
    /// - Throws: communicator errors; file errors on rank 0.
    func write(comm: Communicator) throws {
        let all = try comm.gatherToRoot(Array(json(rank: comm.rank).utf8)).map { String(decoding: $0, as: UTF8.self) }
        written = true
        guard comm.rank == 0 else { return }
        let text = "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"producer\":\"umtrain\",\"ranks\":\(comm.worldSize),\"steps\":\(stepLimit)},\n"
            + "\"traceEvents\":[\n" + all.filter { !$0.isEmpty }.joined(separator: ",\n") + "\n]}\n"
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        try AtomicFile.write(text, to: path)
    }

    /// The per-layer forward and backward observer (`LayerEvents`), recording nested events.
    func layerObserver() -> (String, Bool, UInt64, UInt64) -> Void {
        { [unowned self] name, backward, start, end in
            self.record(name, backward ? "backward" : "forward", from: start, to: end)
        }
    }
}
