import ArgumentParser
import CommandSupport
import Benchmarks
import MultiRankChecks
import Training

/// The `umtrain` command tree.
public struct UMTrain: ParsableCommand {
    public static let version = Provenance.umtrainVersion

    public static let configuration = CommandConfiguration(
        commandName: "umtrain",
        abstract: "Data-parallel training over MPI for OOD detection with Unleashing Mask (UM/UMAP, ICML 2023).",
        discussion: """
        Launch with mpirun (launch/mpirun.sh) for several ranks; without a launcher umtrain \
        runs as a single rank. Only rank 0 prints.
        """,
        version: version,
        subcommands: [PipelineCommand.self, TrainCommand.self, EstimateCommand.self, FinetuneCommand.self, EvaluateCommand.self,
                      MetricsCommand.self, CompareCommand.self, ScoreCommand.self, ModelInfoCommand.self, SelftestCommand.self, BenchCommand.self, Debug.self]
    )

    public init() {}
}

