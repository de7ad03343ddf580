import ArgumentParser
import Training
import Workflows

/// `unlearn --init uce` and the scales of UCE's embeddings in the bilevel phase (`--method uce`, the
/// upper objective; formats/uce.md, "In unlearn").
struct UCEUpperOptions: SettingsOptions {
    typealias Settings = UCEPhaseSettings
    private static let defaults = UCEPhaseSettings()

    @Option(name: .customLong("init"), help: "Start the phase from UCE's closed-form edit of STUDENT (uce), built from --forget and the retain data as erase --method uce --forget --data builds it.")
    var initEdit: UCEInitialEdit?

    @Option(name: .customLong("uce-erase-scale"), help: "--upper uce or --init uce: weight e of the erased embeddings.")
    var eraseScale = Self.defaults.eraseScale

    @Option(name: .customLong("uce-preserve-scale"), help: "--upper uce or --init uce: weight p of the preserved embeddings.")
    var preserveScale = Self.defaults.preserveScale

    @Option(name: .customLong("uce-lambda"), help: "--upper uce or --init uce: weight of ‖W − W_old‖² (positive).")
    var lambda = Self.defaults.lambda

    func check(method: ErasureMethod, forget: ForgetOptions<UnlearnSpelling>) throws {
        try requireFinite(["--uce-erase-scale": eraseScale, "--uce-preserve-scale": preserveScale, "--uce-lambda": lambda])
        let used = method == .uce || initEdit != nil
        if !used {
            let given = eraseScale != Self.defaults.eraseScale || preserveScale != Self.defaults.preserveScale || lambda != Self.defaults.lambda
            if given { throw ValidationError("--uce-erase-scale, --uce-preserve-scale and --uce-lambda apply to --upper uce or --init uce") }
            return
        }
        guard eraseScale >= 0, preserveScale >= 0, lambda > 0 else {
            throw ValidationError("--uce-erase-scale and --uce-preserve-scale must not be negative, --uce-lambda must be positive")
        }
        guard forget.forget != nil else {
            throw ValidationError("--upper uce and --init uce read the concept world's token rows: give --forget FILE (not --forget-prompt)")
        }
    }

    /// The phase's UCE settings, when `--upper uce` or `--init uce` asks for them (else not part of the run).
    func settings(method: ErasureMethod) throws -> UCEPhaseSettings? {
        guard method == .uce || initEdit != nil else { return nil }
        return try settings
    }
}

extension UCEInitialEdit: ExpressibleByArgument {}
