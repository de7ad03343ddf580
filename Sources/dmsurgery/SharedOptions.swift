import ArgumentParser
import TensorFormats

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

    /// `--layout`: the HDF5 layout an input is read with instead of recognising it; for `convert` with
    /// HDF5 output it names the output's layout instead (then the input's is recognised).
    @Option(name: .customLong("layout"), help: "Force the HDF5 layout instead of recognising it (keras2, keras3, generic, dmsurgery); convert: diffusers or ldm (single-file Stable Diffusion).")
    var hdf5Layout: String?

    @Option(help: ArgumentHelp("Read (and, for convert, write) diffusers weight variant files: diffusion_pytorch_model.VARIANT.safetensors.", valueName: "variant"))
    var variant: String?

    /// The options as the readers take them (`--layout diffusers|ldm` names convert's output layout, not
    /// an HDF5 one).
    var open: OpenOptions {
        OpenOptions(allowUnsafeHDF5: allowUnsafeH5, hdf5Layout: hdf5Layout.flatMap { PipelineLayout(rawValue: $0) == nil ? $0 : nil },
                    variant: variant)
    }
}
