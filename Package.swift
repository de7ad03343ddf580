// swift-tools-version:6.0
import PackageDescription

// The engine's modules are optimized in debug builds too: the test suite trains and samples through the
// debug binary, which runs 30x slower unoptimized (CI time, not correctness: every check stays, since
// -O keeps bounds and overflow checks). Compiled code is the same as release's, so tests see it.
let debugOptimized = SwiftSetting.unsafeFlags(["-O"], .when(configuration: .debug))

// TensorMath is built for the baseline CPU; its vector loops (Sources/TensorKernels, one source) are
// built once per instruction set and chosen at run time by TensorMath's KernelSet, so one binary runs on
// any x86-64 and uses AVX2 or AVX-512 where present. Off x86 every copy is the platform's baseline (NEON).
let tensorMathSettings: [SwiftSetting] = [debugOptimized]
#if arch(x86_64)
let kernelCPUs = [("AVX512", ["-target-cpu", "skylake-avx512"]), ("AVX2", ["-target-cpu", "haswell"]), ("Portable", [])]
#else
let kernelCPUs = [("AVX512", [String]()), ("AVX2", []), ("Portable", [])]
#endif
let kernelTargets: [Target] = kernelCPUs.map { isa, flags in
    .target(name: "TensorKernels\(isa)", path: "Sources/TensorKernels/\(isa)",
            swiftSettings: [debugOptimized] + (flags.isEmpty ? [] : [.unsafeFlags(flags)]))
}

// Start-up (BENCHMARKS.md "Start-up"): the executable exports no symbols (exports.map). The Swift driver
// links executables with -export-dynamic, which put 21,700 names in .dynsym that the runtime's dladdr
// scans at every start (its backtracer's static initializer) and the loader hashes. Release builds are
// linked at a fixed address (-no-pie): the loader then applies 900 relocations instead of 96,000 and
// dirties no data pages, which is 1.1 ms of the 2.8 ms `--version` costs. The price is the image's
// ASLR (shared libraries, heap, stack and mappings stay randomized). Debug builds stay PIE: linked
// against the shared Swift runtime, their unoptimized code refers to its protected symbols directly,
// which glibc warns about on stderr at every start.
let startupLinkerSettings: [LinkerSetting] = {
#if os(Linux)
    return [.unsafeFlags(["-Xlinker", "--version-script=\(Context.packageDirectory)/Sources/dmsurgery/exports.map"]),
            .unsafeFlags(["-Xclang-linker", "-no-pie"], .when(configuration: .release))]
#else
    return []
#endif
}()

let package = Package(
    name: "dmsurgery",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "dmsurgery", targets: ["dmsurgery"]),
        .library(name: "TensorFormats", targets: ["TensorFormats"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
    ],
    targets: [
        // C shims: the only places that touch C headers. libzstd, libhdf5, OpenBLAS and libpng are not
        // linked: each shim defines the functions dmsurgery calls as trampolines that load the library on
        // first use (CLazy), so a command that never calls one never loads it and its dependencies.
        // Building needs their headers (libzstd-dev, libhdf5-dev, libopenblas-dev, libpng-dev).
        .target(name: "CLazy"),
        .target(name: "CZstd", dependencies: ["CLazy"], path: "Sources/CZstd", publicHeadersPath: "."),
        .target(name: "CHDF5", dependencies: ["CLazy"], path: "Sources/CHDF5", publicHeadersPath: "."),
        .target(name: "CBLAS", dependencies: ["CLazy"], path: "Sources/CBLAS", publicHeadersPath: "."),
        .target(name: "CPNG", dependencies: ["CLazy"], path: "Sources/CPNG", publicHeadersPath: "."),
        .systemLibrary(name: "CLinux"),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),

        // onnx.proto's messages, generated once by scripts/gen-onnx-proto and committed (no build plugin).
        .target(name: "ONNXProto", dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
                exclude: ["onnx.proto"]),
        .target(
            name: "TensorFormats",
            dependencies: ["CZstd", "CHDF5", "CLazy", "CLinux", "CZlib", "ONNXProto", .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                           .product(name: "SystemPackage", package: "swift-system")]
        ),
        .target(name: "TensorMath", dependencies: ["CBLAS", "CLinux"] + kernelTargets.map { .target(name: $0.name) },
                swiftSettings: tensorMathSettings),
        .target(name: "UNet", dependencies: ["TensorMath", "TensorFormats"], swiftSettings: [debugOptimized]),
        .target(name: "Diffusion", dependencies: ["UNet", "TensorMath", "TensorFormats"], swiftSettings: [debugOptimized]),
        .target(name: "Training", dependencies: ["Diffusion", "UNet", "TensorMath", "TensorFormats"], swiftSettings: [debugOptimized]),
        // The procedural concept world: renders, prompts, detectors and the evaluation of models on it.
        .target(name: "ConceptWorld", dependencies: ["Diffusion", "UNet", "TensorMath", "TensorFormats"], swiftSettings: [debugOptimized]),
        // CLIP tokenizer and text encoder, the VAE: prompts in, pictures out on latent pipelines.
        .target(name: "CLIP", dependencies: ["TensorFormats", "TensorMath", "CZlib"], swiftSettings: tensorMathSettings),
        .target(name: "VAE", dependencies: ["CLIP", "TensorFormats", "TensorMath"], swiftSettings: [debugOptimized]),
        // A model as an operator graph built from the engine's structural descriptions, independent of any
        // file format; ONNX encodes it (formats/onnx.md).
        .target(name: "ModelGraph", dependencies: ["UNet", "CLIP", "VAE", "TensorFormats"]),
        .target(name: "ONNX", dependencies: ["ModelGraph", "ONNXProto", "TensorFormats",
                                             .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        .target(
            name: "Surgery",
            dependencies: ["TensorFormats", "TensorMath", "UNet", "Diffusion", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // What the subcommands do, as library code: training runs, loading, the output rule; the CLI only
        // parses options into these values and prints.
        .target(
            name: "Workflows",
            dependencies: ["TensorFormats", "TensorMath", "UNet", "Diffusion", "Training", "Surgery", "ConceptWorld", "CLIP", "VAE", "CPNG",
                           "ModelGraph", "ONNX",
                           .product(name: "Crypto", package: "swift-crypto")]
        ),
        .executableTarget(
            name: "dmsurgery",
            dependencies: [
                "Workflows", "TensorFormats", "TensorMath", "Surgery", "UNet", "Diffusion", "Training", "ConceptWorld", "CLIP", "VAE",
                "ModelGraph", "ONNX", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            exclude: ["exports.map"],
            linkerSettings: startupLinkerSettings
        ),
        // libFuzzer entry for the safetensors header parser; built with -DFUZZING by scripts/fuzz.
        .executableTarget(name: "SafetensorsFuzzer", dependencies: ["TensorFormats"]),
        // libFuzzer entry for the PyTorch pickle reader (unpickler, zip directory, legacy container).
        .executableTarget(name: "PickleFuzzer", dependencies: ["TensorFormats"]),
        // libFuzzer entry for the GGUF reader; built with -DFUZZING by scripts/fuzz.
        .executableTarget(name: "GGUFFuzzer", dependencies: ["TensorFormats"]),
        // libFuzzer entry for the ONNX reader (protobuf walk, graph rules, dequantization); built with -DFUZZING by scripts/fuzz.
        .executableTarget(name: "ONNXFuzzer", dependencies: ["TensorFormats"]),
        // Kernel GFLOP/s at the cifar10 UNet's shapes; compare_torch.py runs PyTorch on the same shapes.
        .executableTarget(name: "TensorMathBench", dependencies: ["TensorMath", "CBLAS"], exclude: ["compare_torch.py"]),

        .testTarget(name: "TensorFormatsTests", dependencies: ["TensorFormats"]),
        .testTarget(name: "SurgeryTests", dependencies: ["Surgery", "TensorFormats", "UNet"]),
        .testTarget(name: "CLITests", dependencies: ["TensorFormats", "ONNXProto"],
                    exclude: ["clip_tokenizer_check.py", "depth_check.py", "gguf_check.py", "gguf_ldm_check.py", "koala_check.py", "ldm_check.py", "onnx_check.py", "pickle_check.py", "pipeline_convert_check.py", "reference_check.py", "sdxl_unet_check.py"]),
        .testTarget(name: "UNetTests", dependencies: ["UNet", "Diffusion", "TensorMath", "TensorFormats"]),
        .testTarget(name: "DiffusionTests", dependencies: ["Diffusion", "TensorMath"]),
        .testTarget(name: "TensorMathTests", dependencies: ["TensorMath"], exclude: ["Fixtures/make_goldens.py", "Fixtures/torch_goldens.json"]),
        .testTarget(name: "WorkflowsTests", dependencies: ["Workflows", "Surgery", "ConceptWorld", "Training", "Diffusion", "UNet", "TensorMath", "TensorFormats"]),
        .testTarget(name: "CLIPTests", dependencies: ["CLIP", "VAE", "Diffusion", "TensorFormats", "TensorMath"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Diffusion", "UNet", "TensorMath", "TensorFormats"]),
        .testTarget(name: "ConceptWorldTests", dependencies: ["ConceptWorld", "Diffusion", "UNet", "TensorMath", "TensorFormats"]),
    ] + kernelTargets
)
