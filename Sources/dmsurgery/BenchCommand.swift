import ArgumentParser
import Diffusion
import Foundation
import TensorFormats
import TensorMath
import UNet
import Workflows

/// What a benchmark runs on, shared by its subcommands.
struct BenchSubject: ParsableArguments {
    @Option(help: "Model: a diffusers folder, a checkpoint with dmsurgery.config metadata, or -.")
    var model: String?

    @Option(help: "A diffusers config.json to build with random weights instead of --model.")
    var config: String?

    @Option(help: "Image (or latent) height and width; default the config's sample_size.")
    var size: Int?

    @Flag(help: "Print one JSON object.")
    var json = false

    @Flag(help: "Also say on stderr which OpenBLAS core and kernel set run, and why.")
    var verbose = false

    @OptionGroup var input: InputOptions

    func validate() throws {
        guard (model == nil) != (config == nil) else { throw ValidationError("give exactly one of --model and --config") }
    }
}

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time the graph engine.",
        subcommands: [TrainStepBench.self, ForwardBench.self, TextEncoderBench.self, VAEBench.self]
    )
}

/// The process's peak resident set (getrusage; Linux reports kilobytes).
func peakResidentBytes() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss * 1024
}

/// The compute configuration a timing was taken with: OpenBLAS's core (and whether the engine corrected
/// the library's choice), TensorMath's kernel set and the CPU's vector features, for --json, the table
/// and --verbose.
struct EngineSetup {
    let blas = BLASCore.current
    let kernels = KernelSet.active
    let features = CPUFeatures.host

    var blasDescription: String {
        switch blas.origin {
        case .engine: return "\(blas.active) (library chose \(blas.replaced ?? "?"), corrected)"
        case .user: return "\(blas.active) (OPENBLAS_CORETYPE)"
        case .libraryFixed: return "\(blas.active) (lesser than this CPU supports; library cannot switch)"
        case .library: return blas.active
        }
    }

    var jsonMembers: [JSONMember] {
        [JSONMember("blas_core", .string(blas.active)), JSONMember("blas_core_origin", .string(blas.origin.rawValue)),
         JSONMember("blas_core_replaced", blas.replaced.map { .string($0) } ?? .null),
         JSONMember("kernels", .string(kernels.rawValue)),
         JSONMember("cpu_features", .array(features.names.map { .string($0) }))]
    }

    var tableRows: [[String]] { [["BLAS core", blasDescription], ["kernel set", kernelDescription]] }

    var kernelDescription: String {
        let forced = ProcessInfo.processInfo.environment[KernelSet.environmentVariable]
        return kernels.rawValue + (forced.map { " (\(KernelSet.environmentVariable)=\($0))" } ?? "")
    }

    func describe(verbose: Bool, quiet: Bool) {
        guard verbose else { return }
        note("BLAS core: \(blasDescription); kernel set: \(kernelDescription); CPU features: \(features.names.joined(separator: " "))", quiet: quiet)
    }
}
