// swift-tools-version:6.0
// libFuzzer harnesses for every reader of outside input (issue 15). A package of its own so
// that `swift build` / `swift test` of the main package never build or instrument them.
// Build and run with launch/fuzz.sh (scratch path .build-fuzz, -sanitize=fuzzer,address);
// docs/fuzzing.md describes the targets.
import PackageDescription

// One executable per reader: (target, module of the main package it imports).
let harnesses: [(String, [String])] = [
    ("FuzzIDX", ["Datasets"]),
    ("FuzzIDXGzip", ["Datasets"]),
    ("FuzzCIFAR", ["Datasets"]),
    ("FuzzCSVImages", ["Datasets"]),
    ("FuzzJPEG", ["Datasets"]),
    ("FuzzPNG", ["Datasets"]),
    ("FuzzSafeTensors", ["SafeTensors"]),
    ("FuzzScoreFile", ["OODDetection"]),
    ("FuzzConfig", ["Training"]),
    ("FuzzCheckpoint", ["Training"]),
    ("FuzzEstimate", ["Training"]),
]

let package = Package(
    name: "UMTrainFuzz",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "UnleashingMaskMPI", path: ".."),
    ],
    targets: [
        .target(name: "FuzzSupport", path: "Support"),
    ] + harnesses.map { name, modules in
        .executableTarget(
            name: name,
            dependencies: ["FuzzSupport"] + modules.map { .product(name: $0, package: "UnleashingMaskMPI") },
            path: "Harnesses/\(name)")
    }
)
