import Diffusion
import Foundation
import Surgery
import TensorFormats
import UNet

/// An engine error attributed to the file it came from.
public func located(_ error: UNetError, file: String) -> UNetError { error.inFile(file) }

/// Opens an input checkpoint (`-` is standard input).
public func openCheckpoint(_ path: String, _ options: OpenOptions, randomAccess: Bool = false) throws -> Checkpoint {
    var options = options
    options.randomAccess = randomAccess || options.randomAccess
    return try Checkpoint.open(path, options: options)
}

/// The scheduler a model was trained with: an explicit scheduler_config.json, else the one in the model
/// folder (or the sibling `scheduler` folder of a diffusers pipeline), else diffusers' defaults.
public func loadSchedulerConfig(model: String, explicit: String?) throws -> SchedulerConfig {
    func read(_ path: String) throws -> SchedulerConfig {
        let text = try MappedFile.text(of: path, what: "the scheduler config")
        do { return try SchedulerConfig(json: text) } catch let error as SchedulerConfigError { throw error.inFile(path) }
    }
    if let explicit { return try read(explicit) }
    var isDir: ObjCBool = false
    if FileManager.default.fileExists(atPath: model, isDirectory: &isDir), isDir.boolValue {
        let base = URL(fileURLWithPath: model)
        // A pipeline folder's own scheduler/, a model folder's scheduler_config.json, or the pipeline around it.
        for candidate in [base.appendingPathComponent("scheduler/scheduler_config.json"), base.appendingPathComponent("scheduler_config.json"),
                          base.deletingLastPathComponent().appendingPathComponent("scheduler/scheduler_config.json")]
        where FileManager.default.fileExists(atPath: candidate.path) {
            return try read(candidate.path)
        }
    }
    return SchedulerConfig()
}

/// Writes raw bytes (the PNG) through the same atomic output as checkpoints (temp file + rename, or
/// standard output for `-`).
public func writeBytes(_ bytes: [UInt8], to path: String, force: Bool) throws {
    let output = try OutputFile(path: path, force: force)
    try output.write(bytes)
    try output.commit()
}

/// Opens an input; `wholePipeline` opens a pipeline folder as all its components (inspect, verify,
/// diff) instead of its UNet.
public func openCheckpoint(_ path: String, _ options: OpenOptions, randomAccess: Bool = false, wholePipeline: Bool) throws -> Checkpoint {
    if wholePipeline && PipelineFolder.isPipeline(path) {
        return try Checkpoint.openPipeline(path, options: OpenOptions(variant: options.variant))
    }
    return try openCheckpoint(path, options, randomAccess: randomAccess)
}

/// Loads a UNet from a checkpoint, or builds one with random weights from a config.json; engine errors
/// come out as one line naming the file, the rule and the key or parameter.
public func loadUNet(model: String?, config: String? = nil, open: OpenOptions) throws -> UNet2D {
    let source = model ?? config ?? "-"
    do {
        if let model {
            // An original-layout UNet (single file, ComfyUI-GGUF) is read under its diffusers names.
            let checkpoint = try openCheckpoint(model, open, randomAccess: true)
            return try UNet2D(checkpoint: try LDMConversion.diffusersUNetView(of: checkpoint) ?? checkpoint)
        }
        let text = try MappedFile.text(of: source, what: "the config")
        return try UNet2D(config: try UNetConfig(json: text), randomSeed: 0)
    } catch let error as UNetError {
        throw located(error, file: source)
    }
}
