// swift-tools-version:6.0
import PackageDescription

// The kernels' hand-vectorised loops need AVX2/FMA code generation to keep pace with PyTorch (the
// cifar10 UNet step goes from 1.03x to 0.97x of torch's time); every x86-64 server since 2013 has it.
#if arch(x86_64)
let tensorMathSettings: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell"])]
#else
let tensorMathSettings: [SwiftSetting] = []
#endif

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
    ],
    targets: [
        // C shims: the only places that touch C headers.
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CSystem"),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),

        .target(
            name: "TensorFormats",
            dependencies: ["CZstd", "CHDF5", "CSystem"]
        ),
        .target(name: "TensorMath", dependencies: ["CBLAS"], swiftSettings: tensorMathSettings),
        .target(name: "UNet", dependencies: ["TensorMath", "TensorFormats"]),
        .target(name: "Diffusion", dependencies: ["UNet", "TensorMath", "TensorFormats"]),
        .target(name: "Training", dependencies: ["Diffusion", "UNet", "TensorMath", "TensorFormats"]),
        // The procedural concept world: renders, prompts, detectors and the evaluation of models on it.
        .target(name: "ConceptWorld", dependencies: ["Diffusion", "UNet", "TensorMath", "TensorFormats"]),
        // CLIP tokenizer and text encoder, the VAE: prompts in, pictures out on latent pipelines.
        .target(name: "CLIP", dependencies: ["TensorFormats", "TensorMath", "CZlib"], swiftSettings: tensorMathSettings),
        .target(name: "VAE", dependencies: ["CLIP", "Diffusion", "TensorFormats", "TensorMath"]),
        .target(
            name: "Surgery",
            dependencies: ["TensorFormats", "TensorMath", "UNet", "Diffusion", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .executableTarget(
            name: "dmsurgery",
            dependencies: [
                "TensorFormats", "Surgery", "UNet", "Diffusion", "Training", "ConceptWorld",
                "CPNG", "CLIP", "VAE",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // libFuzzer entry for the safetensors header parser; built with -DFUZZING by scripts/fuzz.
        .executableTarget(name: "SafetensorsFuzzer", dependencies: ["TensorFormats"]),
        // Kernel GFLOP/s at the cifar10 UNet's shapes; compare_torch.py runs PyTorch on the same shapes.
        .executableTarget(name: "TensorMathBench", dependencies: ["TensorMath", "CBLAS"], exclude: ["compare_torch.py"]),

        .testTarget(name: "TensorFormatsTests", dependencies: ["TensorFormats"]),
        .testTarget(name: "SurgeryTests", dependencies: ["Surgery", "TensorFormats", "UNet"]),
        .testTarget(name: "CLITests", dependencies: ["TensorFormats"]),
        .testTarget(name: "UNetTests", dependencies: ["UNet", "Diffusion", "TensorMath", "TensorFormats"]),
        .testTarget(name: "DiffusionTests", dependencies: ["Diffusion", "TensorMath"]),
        .testTarget(name: "TensorMathTests", dependencies: ["TensorMath"]),
        .testTarget(name: "CLIPTests", dependencies: ["CLIP", "VAE", "Diffusion", "TensorFormats", "TensorMath"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Diffusion", "UNet", "TensorMath", "TensorFormats"]),
        .testTarget(name: "ConceptWorldTests", dependencies: ["ConceptWorld", "Diffusion", "UNet", "TensorMath", "TensorFormats"]),
    ]
)
