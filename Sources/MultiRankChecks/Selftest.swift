import ArgumentParser
import CommandSupport
import COpenBLAS
import Distributed
import Foundation
import Datasets
import NeuralNetwork
import OODDetection
import SafeTensors
import TensorCore
import Training
import UnleashingMask

/// `umtrain selftest`: the multi-rank checks, run on however many ranks were launched.
package struct SelftestCommand: ParsableCommand {
    package init() {}

    package static let configuration = CommandConfiguration(
        commandName: "selftest",
        abstract: "Check the collectives (allreduce, allgatherv, broadcast, chunking) and sgemm on every rank.",
        discussion: """
        Run under mpirun with any number of ranks, e.g. `launch/mpirun.sh -np 3 umtrain selftest`. \
        Every check runs on all ranks; rank 0 prints one line per check and a final \
        `N passed, N failed` line. Exit status 1 if any check failed on any rank.
        """
    )

    @OptionGroup var runtime: RuntimeOptions

    @Option(help: ArgumentHelp("Run only checks whose name contains this text.", valueName: "text"))
    var filter: String?

    package func run() throws {
        var failed = 0
        runOnRanks(runtime) { rt in
            rt.log(try rt.header(command: "selftest"))
            let suite = MultiRankSuite(runtime: rt)
            let result = try suite.run(filter: filter)
            rt.log("\(result.passed) passed, \(result.failed) failed")
            failed = result.failed
        }
        if failed > 0 { throw ExitCode(1) }
    }
}

/// The multi-rank test suite behind `umtrain selftest`. Every check issues the same
/// collectives on every rank (no early returns), then compares locally; failures are
/// gathered so rank 0 can print every rank's detail.
struct MultiRankSuite {
    let runtime: Runtime
    var comm: Communicator { runtime.comm }

    struct Check {
        let name: String
        /// Returns nil on success, or what went wrong on this rank.
        let body: () throws -> String?
    }

    func checks() -> [Check] {
        [
            Check(name: "allreduce sum float32 (1000 elements): correct, bitwise identical on every rank") {
                try allreduceSum(Float.self, count: 1000)
            },
            Check(name: "allreduce sum float64 (1000 elements): correct, bitwise identical on every rank") {
                try allreduceSum(Double.self, count: 1000)
            },
            Check(name: "allreduce sum int64: exact") { try allreduceInt64(op: .sum) },
            Check(name: "allreduce max/min float32, float64, int64: exact on every rank") { try allreduceMaxMin() },
            Check(name: "allreduce of an empty buffer completes") {
                var empty: [Float] = []
                try comm.allreduce(&empty, op: .sum)
                return empty.isEmpty ? nil : "buffer changed size"
            },
            Check(name: "allgatherv with uneven and zero lengths, in rank order") { try allgathervUneven() },
            Check(name: "broadcast from a non-zero root (root = worldSize - 1)") { try broadcastNonZeroRoot() },
            Check(name: "broadcast of a string whose length only the root knows") { try broadcastString() },
            Check(name: "chunked allreduce (limit 7 elements, 20-element buffer) equals unchunked") { try chunkedAllreduce() },
            Check(name: "chunked allgatherv (limit 7) equals unchunked") { try chunkedAllgatherv() },
            Check(name: "chunked broadcast (limit 7, 20 elements) equals unchunked") { try chunkedBroadcast() },
            Check(name: "single-process communicator gives the one-rank answers") { try localEquivalence() },
            Check(name: "barrier with a deadline completes") {
                let saved = comm.stallTimeout
                comm.stallTimeout = 30
                defer { comm.stallTimeout = saved }
                try comm.barrier()
                return nil
            },
            Check(name: "gradient reduction: local loss sum / global count, then SUM, gives the global mean (uneven shards)") {
                try gradientMeanUneven()
            },
            Check(name: "bucketed gradient allreduce equals one allreduce of the whole arena") { try bucketedReduction() },
            Check(name: "metrics reduce (sum, count) pairs: 100 at 0.90 + 10 at 0.50 = 95/110") { try metricPairs() },
            Check(name: "sync BN layer: [1001,1002,1003] + [1010] (+ empty ranks) -> mean 1004, var 12.5, unbiased 16.6667") {
                try syncBatchNormWorkedExample()
            },
            Check(name: "rank-consistency check passes on equal tensors and names a rank-dependent one") {
                try consistencyCheck()
            },
            Check(name: "training: N ranks (sync BN, global batch \(comm.worldSize == 3 ? 60 : 64)) equal 1 rank after 20 SGD steps (rel. error <= 1e-4 per tensor); replicas bitwise identical") {
                try trainingEquivalence()
            },
            Check(name: "gradient allreduce overlapped with backward (many small buckets): replicas bitwise equal to reducing after backward") {
                try overlapEquivalence()
            },
            Check(name: "estimate-loss: xi bitwise identical to 1 rank, atypical mask identical (gathered by id, padding dropped)") {
                try estimateEquivalence()
            },
            Check(name: "UM flooding steps (sign from the global batch) on N ranks equal 1 rank (rel. error <= 1e-4)") {
                try umEquivalence()
            },
            Check(name: "UMAP masks after 10 steps bitwise identical on every rank, >= 99.9% equal to 1 rank") {
                try umapEquivalence()
            },
            Check(name: "feature banks split by id over the ranks: chain sums, the distributed percentile and the merged KNN top-k (ties, signed zeros) bitwise equal to one rank") {
                try shardReductions()
            },
            Check(name: "OOD evaluation (14 scores, 2 OOD sets): per-sample scores, metrics, bootstrap intervals and the OOD-validation curve bitwise identical to 1 rank") {
                try oodEquivalence()
            },
            Check(name: "sgemm (kernel \(BLASKernel.coreName)) matches a naive Double loop on odd shapes and transposes") {
                sgemmAgainstNaive()
            },
        ]
    }

    func run(filter: String?) throws -> (passed: Int, failed: Int) {
        var passed = 0
        var failed = 0
        for check in checks() where filter.map({ check.name.contains($0) }) ?? true {
            comm.phase = "selftest: \(check.name)"
            let detail = try check.body()
            // Gather every rank's verdict (empty = pass) so rank 0 can report details.
            let bytes = Array((detail ?? "").utf8)
            let all = try comm.allgather(bytes).map { String(decoding: $0, as: UTF8.self) }
            let failures = all.enumerated().filter { !$0.element.isEmpty }
            if failures.isEmpty {
                passed += 1
                runtime.log("  ok    \(check.name)")
            } else {
                failed += 1
                runtime.log("  FAIL  \(check.name)")
                for (r, msg) in failures { runtime.log("        rank \(r): \(msg)") }
            }
        }
        return (passed, failed)
    }
}
