// swift-tools-version:6.0
// Unleashing Mask (UM / UMAP, ICML 2023) data-parallel trainer over MPI.
// Swift 6 language mode. System libraries: Open MPI (ompi-c), OpenBLAS (openblas), zlib.
import PackageDescription

let package = Package(
    name: "UnleashingMaskMPI",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "umtrain", targets: ["umtrain"]),
        // Library products only so that the fuzz harnesses (Fuzz/Package.swift, built apart with
        // launch/fuzz.sh) can depend on the readers; `swift build` builds the same targets as before.
        .library(name: "Datasets", targets: ["Datasets"]),
        .library(name: "SafeTensors", targets: ["SafeTensors"]),
        .library(name: "OODDetection", targets: ["OODDetection"]),
        .library(name: "Training", targets: ["Training"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // C system libraries, each with a small static-inline shim header.
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CJPEG", pkgConfig: "libjpeg",
                       providers: [.apt(["libjpeg62-turbo-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"])]),

        // Library targets (dependencies = exactly the modules each one imports).
        .target(name: "TensorCore", dependencies: ["COpenBLAS"]),
        .target(name: "SafeTensors"),
        .target(name: "NeuralNetwork", dependencies: ["TensorCore"]),
        .target(name: "Optimizers", dependencies: ["SafeTensors"]),
        .target(name: "Distributed", dependencies: ["CMPI", "TensorCore"]),
        .target(name: "Datasets", dependencies: ["TensorCore", "CZlib", "CJPEG", "CPNG"]),
        .target(name: "OODDetection", dependencies: ["TensorCore"]),
        .target(name: "UnleashingMask", dependencies: ["NeuralNetwork", "Distributed", "TensorCore"]),
        .target(name: "Training", dependencies: [
            "TensorCore", "NeuralNetwork", "Optimizers", "Distributed", "Datasets",
            "OODDetection", "UnleashingMask", "SafeTensors",
            .product(name: "Yams", package: "Yams"),
        ]),
        // Command-line layers: shared runtime and options, the multi-rank checks and the
        // benchmarks (each its own module), then the user-facing commands and the executable.
        .target(name: "CommandSupport", dependencies: [
            "Training", "Distributed", "NeuralNetwork", "TensorCore",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .target(name: "MultiRankChecks", dependencies: [
            "CommandSupport", "COpenBLAS", "Datasets", "Distributed", "NeuralNetwork", "OODDetection", "SafeTensors",
            "TensorCore", "Training", "UnleashingMask",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .target(name: "Benchmarks", dependencies: [
            "CommandSupport", "COpenBLAS", "Datasets", "Distributed", "NeuralNetwork", "OODDetection", "Optimizers", "TensorCore", "Training",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .target(name: "UMTrainCLI", dependencies: [
            "CommandSupport", "MultiRankChecks", "Benchmarks", "Datasets", "Distributed", "OODDetection", "TensorCore", "Training",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "umtrain", dependencies: ["UMTrainCLI", "TensorCore"]),
        .target(name: "TestSupport", dependencies: ["TensorCore"], path: "Sources/TestSupport"),

        // Rank-local unit tests (swift test). Multi-rank tests live in `umtrain selftest`.
        .testTarget(name: "DistributedTests", dependencies: ["Distributed", "TestSupport"]),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore", "TestSupport"]),
        .testTarget(name: "NeuralNetworkTests", dependencies: ["NeuralNetwork", "TestSupport"]),
        .testTarget(name: "SafeTensorsTests", dependencies: ["SafeTensors", "TestSupport"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets", "TensorCore", "TestSupport"]),
        .testTarget(name: "OODDetectionTests", dependencies: ["OODDetection", "TestSupport"]),
        .testTarget(name: "OptimizersTests", dependencies: ["Optimizers", "TestSupport"]),
        .testTarget(name: "UnleashingMaskTests", dependencies: ["UnleashingMask", "NeuralNetwork", "Distributed", "TensorCore", "TestSupport"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "TestSupport", .product(name: "Yams", package: "Yams")]),
        .testTarget(name: "UMTrainCLITests", dependencies: ["UMTrainCLI", "CommandSupport", "MultiRankChecks", "Benchmarks", "TestSupport"]),
    ]
)
