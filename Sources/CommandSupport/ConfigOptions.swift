import ArgumentParser
import Training

/// Options shared by subcommands that read a run configuration.
package struct ConfigOptions: ParsableArguments {
    package init() {}

    @Option(name: .long, help: ArgumentHelp("YAML run configuration (snake_case keys; see docs/configuration.md).", valueName: "file"))
    package var config: String?

    @Option(name: .customLong("set"), parsing: .singleValue,
            help: ArgumentHelp("Override a config key, e.g. --set train.epochs=5 (repeatable; applied after the file).",
                               valueName: "key=value"))
    package var overrides: [String] = []

    @Option(help: ArgumentHelp("Run name (same as --set name=...).", valueName: "name"))
    package var name: String?

    /// The configuration file as errors name it.
    package var file: String { config ?? "<defaults>" }

    /// Loads the config on every rank (identical input gives identical results everywhere).
    package func load() throws -> (RunConfig, [String]) {
        var o = overrides
        if let name { o.append("name=\(name)") }
        return try RunConfig.load(file: config, overrides: o)
    }
}

