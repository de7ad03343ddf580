import ArgumentParser
import Diffusion
import Foundation
import TensorFormats
import TensorMath
import Training
import UNet
import Workflows
#if canImport(Glibc)
import Glibc
#endif

/// Exit statuses documented in README and the man pages; the argument parser itself uses 64 for usage.
enum ExitStatus {
    static let problemsFound = ExitCode(1)
    static let invalidInput = ExitCode(2)
}

/// The one place errors become exit statuses: a tool error is printed as its one line and exits 2, an
/// interrupted command 128 + the signal, a workflow's `UsageError` is a usage error (64) like the argument
/// parser's own, which pass through (usage 64, `--help` whose command only throws, `ExitCode`); anything
/// else unexpected exits 2 with its text.
func exitError(for error: Error) -> Error {
    if String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") {  // usage, help, ExitCode
        // A usage error seen by one rank of an MPI job stops them all.
        if let usage = error as? ValidationError, let world = DataParallel.current, world.size > 1 {
            printError(usage.message)
            DataParallel.abortIfJoined(64)
        }
        return error
    }
    switch error {
    case let usage as UsageError:
        return ValidationError(usage.message)
    case let error as any ToolError:
        printError(error.oneLine)
        DataParallel.abortIfJoined(2)
        return ExitStatus.invalidInput
    case let interrupted as Interrupted:
        return ExitCode(128 + interrupted.signal)
    default:
        printError(OneLine.describe(error))
        DataParallel.abortIfJoined(2)
        return ExitStatus.invalidInput
    }
}

/// Prints an error line made by `OneLine` (already escaped).
func printError(_ message: String) {
    StandardStreams.writeError("dmsurgery: error: \(message)\n")
}

/// Opens an input with the options every command shares.
func openCheckpoint(_ path: String, _ input: InputOptions, randomAccess: Bool = false) throws -> Checkpoint {
    try openCheckpoint(path, input.open, randomAccess: randomAccess)
}

/// Loads a UNet with the options every command shares (`Workflows.loadUNet`).
func loadUNet(model: String?, config: String? = nil, input: InputOptions) throws -> UNet2D {
    try loadUNet(model: model, config: config, open: input.open)
}

/// One float tensor of a checkpoint file, by name (`Workflows.readTensor`).
func readTensor(_ name: String, from path: String, _ input: InputOptions) throws -> Tensor {
    try readTensor(name, from: path, options: input.open)
}

/// Prints text to standard output; a failed write is an `io-error` (exit 2).
func emit(_ text: String) throws {
    try StandardStreams.writeOutput(text.hasSuffix("\n") ? text : text + "\n")
}

/// Parses `5GB`, `500MB`, `2GiB`, `1000` (bytes). Decimal units are powers of 1000, as huggingface_hub.
func parseByteSize(_ text: String) -> Int? {
    let units: [(String, Int)] = [("TIB", 1 << 40), ("GIB", 1 << 30), ("MIB", 1 << 20), ("KIB", 1 << 10),
                                  ("TB", 1_000_000_000_000), ("GB", 1_000_000_000), ("MB", 1_000_000), ("KB", 1000), ("B", 1)]
    let upper = text.uppercased().trimmingCharacters(in: .whitespaces)
    for (suffix, factor) in units where upper.hasSuffix(suffix) {
        guard let value = Double(upper.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), value > 0,
              value * Double(factor) < Double(Int.max) else { return nil }
        let bytes = Int(value * Double(factor))
        return bytes > 0 ? bytes : nil
    }
    return Int(upper).flatMap { $0 > 0 ? $0 : nil }
}
