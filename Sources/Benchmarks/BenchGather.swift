import ArgumentParser
import CommandSupport
import Distributed
import Foundation
import Training

/// `umtrain bench gather`: the per-sample-loss gather by id (what estimate-loss does with every
/// training sample's loss) as the number of ranks grows.
struct BenchGather: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gather",
        abstract: "Time of gathering per-sample losses by sample id onto every rank (GatherByID: ids, then Double losses and Int64 predictions), median over repeats.",
        discussion: """
        N samples are dealt round-robin in batches of 500 consecutive ids, as evaluation does; each \
        repeat runs the id gather (allgatherv of ids, sort, duplicate check) and two value \
        gathers. Run under mpirun with growing -np, e.g. launch/mpirun.sh -np 8 --oversubscribe \
        umtrain bench gather.
        """
    )

    @OptionGroup var runtime: RuntimeOptions
    @Option(help: "Samples in all (50000 is CIFAR-10's training set).") var samples: Int = 50_000
    @Option(help: "Timed repeats.") var repeats: Int = 10

    func validate() throws {
        guard samples >= 1, repeats >= 1 else { throw ValidationError("--samples and --repeats must be >= 1") }
    }

    func run() throws {
        runOnRanks(runtime) { rt in
            rt.log(try rt.header(command: "bench gather"))
            let batch = 500
            var ids: [Int64] = []
            var start = rt.rank * batch
            while start < samples {
                ids += (start..<min(start + batch, samples)).map(Int64.init)
                start += batch * rt.worldSize
            }
            let losses = ids.map { Double($0 % 97) / 97 }
            let predictions = ids.map { $0 % 10 }
            var times: [Double] = []
            for _ in 0..<(repeats + 1) {
                try rt.comm.barrier()
                let t0 = now()
                let gathered = try GatherByID(localIDs: ids, comm: rt.comm)
                let l = try gathered.gather(losses, comm: rt.comm)
                let p = try gathered.gather(predictions, comm: rt.comm)
                precondition(l.count == samples && p.count == samples, "gathered \(l.count) losses for \(samples) samples")
                times.append(now() - t0)
            }
            times.removeFirst()
            try rt.comm.allreduce(&times, op: .max)
            rt.log("gather of \(samples) per-sample losses by id over \(rt.worldSize) rank(s): median \(fmt(median(times) * 1e3, 2)) ms "
                   + "(min \(fmt(times.min()! * 1e3, 2)), slowest rank per repeat, \(repeats) repeats)")
        }
    }
}
