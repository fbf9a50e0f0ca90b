import ArgumentParser
import CommandSupport
import Distributed
import Foundation
import Training

/// Hidden commands that exercise failure paths for the test scripts.
struct Debug: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Failure-path drills used by launch/test.sh.",
        shouldDisplay: false,
        subcommands: [DebugFail.self, DebugStall.self]
    )
}

/// Every rank loops over allreduces; rank `--rank` throws after `--after` steps. The job
/// must end non-zero within seconds with `[rank r] error: …` on stderr.
struct DebugFail: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "fail")

    @OptionGroup var runtime: RuntimeOptions
    @Option(help: "The rank that fails.") var rank: Int = 1
    @Option(help: "Allreduce steps before it fails.") var after: Int = 3

    struct InjectedFailure: Error, CustomStringConvertible {
        let step: Int
        var description: String { "injected failure at step \(step) (umtrain debug fail). Hint: this is a drill." }
    }

    func run() throws {
        runOnRanks(runtime) { rt in
            var buf = [Float](repeating: 1, count: 1024)
            for step in 0..<1_000_000 {
                rt.comm.phase = "debug fail step \(step)"
                if rt.rank == rank && step == after { throw InjectedFailure(step: step) }
                try rt.comm.allreduce(&buf, op: .max)
                usleep(1000)
            }
        }
    }
}

/// Rank `--rank` sleeps `--sleep` seconds before entering a collective; the others must
/// stop with the stall message (naming the collective and the step) after the deadline.
struct DebugStall: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stall")

    @OptionGroup var runtime: RuntimeOptions
    @Option(help: "The rank that sleeps.") var rank: Int = 1
    @Option(help: "Seconds it sleeps.") var sleep: Double = 30
    @Option(help: "The step at which it sleeps.") var at: Int = 2

    func run() throws {
        runOnRanks(runtime) { rt in
            var buf = [Float](repeating: 1, count: 1024)
            for step in 0..<(at + 3) {
                rt.comm.phase = "debug stall step \(step)"
                if rt.rank == rank && step == at { usleep(UInt32(sleep * 1e6)) }
                try rt.comm.allreduce(&buf, op: .max)
            }
        }
    }
}
