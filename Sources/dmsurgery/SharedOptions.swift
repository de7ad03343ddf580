import ArgumentParser

/// Options every subcommand takes.
struct CommonOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Print no progress or notes on stderr (errors are still printed).")
    var quiet = false
}

/// Options of subcommands that write binary checkpoints.
struct BinaryOutputOptions: ParsableArguments {
    @Flag(help: "Write binary output even when standard output is a terminal.")
    var force = false
}

/// Options of subcommands that read checkpoints.
struct InputOptions: ParsableArguments {
    @Flag(name: .customLong("allow-unsafe-h5"), help: "Read HDF5 files Keras would refuse (external links, virtual datasets, huge declared sizes).")
    var allowUnsafeH5 = false

    @Option(help: "Force the HDF5 layout instead of recognising it (keras2, keras3, generic, dmsurgery); convert: diffusers or ldm (single-file Stable Diffusion).")
    var layout: String?

    @Option(help: ArgumentHelp("Read (and, for convert, write) diffusers weight variant files: diffusion_pytorch_model.VARIANT.safetensors.", valueName: "variant"))
    var variant: String?
}
