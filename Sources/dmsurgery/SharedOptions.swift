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

    @Option(name: .customLong("input-layout"), help: ArgumentHelp("Read HDF5 input with this layout instead of recognising it (keras2, keras3, generic, dmsurgery).", valueName: "layout"))
    var inputLayout: String?

    /// `--layout`, which named three things at once (an HDF5 input's layout, `convert`'s HDF5 output
    /// layout, `convert`'s pipeline layout); an alias kept for one release, read as the option that
    /// replaces it (`deprecatedLayout`), with a warning.
    @Option(name: .customLong("layout"), help: ArgumentHelp("Deprecated alias of --input-layout (convert: of --hdf5-layout or --pipeline-layout); removed in the next release.", valueName: "layout"))
    var layout: String?

    @Option(help: ArgumentHelp("Read (and, for convert, write) diffusers weight variant files: diffusion_pytorch_model.VARIANT.safetensors.", valueName: "variant"))
    var variant: String?

    /// The options as the readers take them.
    var open: OpenOptions {
        OpenOptions(allowUnsafeHDF5: allowUnsafeH5, hdf5Layout: inputLayout ?? layout, variant: variant)
    }

    func validate() throws {
        if inputLayout != nil && layout != nil { throw ValidationError("--layout is the old name of --input-layout: give one of them") }
        if layout != nil {
            // The one warning for the old spelling (formats/cli.md, "Deprecated options").
            StandardStreams.writeError("dmsurgery: warning: --layout is deprecated and goes in the next release: use --input-layout"
                                       + " (convert: --hdf5-layout for HDF5 output, --pipeline-layout diffusers|ldm)\n")
        }
    }
}
