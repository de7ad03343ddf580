import Foundation
import XCTest

/// `convert --pipeline-layout ldm|diffusers` on SD1-, SD2- and SDXL-shaped pipelines saved by diffusers itself
/// (fixtures/ldm/generate.py), checked by diffusers 0.42.1 offline (Tests/CLITests/ldm_check.py):
/// the single file we write reads back through `from_single_file` to the original tensors, and the
/// folder we make of it loads with `from_pretrained` with no missing or unexpected keys, tensor for tensor.
final class LDMLayoutTests: XCTestCase {
    private let families = ["sd1", "sd2", "sdxl"]

    private func requirePython() throws {
        try CLI.requirePython("import sys; sys.modules.setdefault(\"torchvision\", None); import diffusers, transformers, torch")
    }

    func testSingleFilesWeWriteReadBackThroughDiffusersFromSingleFileAndOurFoldersLoadInDiffusers() throws {
        try requirePython()
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = CLI.repository.appendingPathComponent("Tests/CLITests/ldm_check.py").path
        for family in families {
            let pipeline = CLI.fixture("ldm/\(family)")
            let single = directory.appendingPathComponent("\(family).safetensors").path
            let folder = directory.appendingPathComponent("\(family)-pipeline").path
            let toLDM = try CLI.run(["convert", pipeline, single, "--pipeline-layout", "ldm", "-q"])
            XCTAssertEqual(toLDM.status, 0, toLDM.stderr)
            let back = try CLI.run(["convert", single, folder, "--pipeline-layout", "diffusers", "-q"])
            XCTAssertEqual(back.status, 0, back.stderr)
            for (mode, path) in [("single", single), ("folder", folder)] {
                let check = try CLI.shell("python3 \(script) \(mode) \(pipeline) \(path) 2>/dev/null")
                XCTAssertEqual(check.status, 0, "\(family) \(mode): \(String(decoding: check.stdout, as: UTF8.self))")
            }
        }
    }

    func testFamilyIsReadFromTheWeightsAndTheConfigsFromTheirShapes() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let single = directory.appendingPathComponent("sdxl.safetensors").path
        XCTAssertEqual(try CLI.run(["convert", CLI.fixture("ldm/sdxl"), single, "--pipeline-layout", "ldm", "-q"]).status, 0)
        let folder = directory.appendingPathComponent("out").path
        let run = try CLI.run(["convert", single, folder, "--pipeline-layout", "diffusers"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("sdxl"), run.stderr)
        let config = try String(contentsOfFile: folder + "/unet/config.json", encoding: .utf8)
        XCTAssertTrue(config.contains("\"addition_time_embed_dim\": 8"), config)
        XCTAssertTrue(config.contains("\"projection_class_embeddings_input_dim\": 96"), config)
        let text2 = try String(contentsOfFile: folder + "/text_encoder_2/config.json", encoding: .utf8)
        XCTAssertTrue(text2.contains("\"hidden_act\": \"gelu\""), text2)
        XCTAssertTrue(text2.contains("\"projection_dim\": 48"), text2)
    }

    func testAUNetSavedWithoutItsPrefixConvertsToAUNetFolder() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let single = directory.appendingPathComponent("sd1.safetensors").path
        XCTAssertEqual(try CLI.run(["convert", CLI.fixture("ldm/sd1"), single, "--pipeline-layout", "ldm", "-q"]).status, 0)
        let unetOnly = directory.appendingPathComponent("unet-only.safetensors").path
        let strip = try CLI.run(["convert", single, unetOnly, "--only", "model.diffusion_model.*", "--rename", "model.diffusion_model.=", "-q"])
        XCTAssertEqual(strip.status, 0, strip.stderr)
        let folder = directory.appendingPathComponent("unet").path
        let run = try CLI.run(["convert", unetOnly, folder, "--pipeline-layout", "diffusers", "-q"])
        XCTAssertEqual(run.status, 0, run.stderr)
        // The UNet's tensors are the original diffusers tensors, byte for byte.
        let diff = try CLI.run(["diff", CLI.fixture("ldm/sd1/unet"), folder])
        XCTAssertEqual(diff.status, 0, String(decoding: diff.stdout, as: UTF8.self) + diff.stderr)
        // And a UNet folder becomes the same UNet-only file.
        let back = directory.appendingPathComponent("back.safetensors").path
        let toLDM = try CLI.run(["convert", CLI.fixture("ldm/sd1/unet"), back, "--pipeline-layout", "ldm", "-q"])
        XCTAssertEqual(toLDM.status, 0, toLDM.stderr)
        XCTAssertEqual(try CLI.run(["diff", unetOnly, back]).status, 0)
    }

    func testAFileWithoutAUNetIsRefusedNamingTheRuleAndTensor() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let run = try CLI.run(["convert", CLI.fixture("default/diffusion_pytorch_model.safetensors"), directory.appendingPathComponent("x").path, "--pipeline-layout", "diffusers"])
        XCTAssertEqual(run.status, 2)
        XCTAssertTrue(run.stderr.contains("ldm-unknown-family"), run.stderr)
        XCTAssertTrue(run.stderr.contains("model.diffusion_model.input_blocks.0.0.weight"), run.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.appendingPathComponent("x/model_index.json").path))
    }

    func testAMissingTensorIsRefusedNamingIt() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let single = directory.appendingPathComponent("sd1.safetensors").path
        XCTAssertEqual(try CLI.run(["convert", CLI.fixture("ldm/sd1"), single, "--pipeline-layout", "ldm", "-q"]).status, 0)
        let broken = directory.appendingPathComponent("broken.safetensors").path
        XCTAssertEqual(try CLI.run(["convert", single, broken, "--exclude", "model.diffusion_model.out.2.weight", "-q"]).status, 0)
        let run = try CLI.run(["convert", broken, directory.appendingPathComponent("out").path, "--pipeline-layout", "diffusers"])
        XCTAssertEqual(run.status, 2)
        XCTAssertTrue(run.stderr.contains("ldm-missing-tensor") && run.stderr.contains("model.diffusion_model.out.2.weight"), run.stderr)
        XCTAssertTrue(run.stderr.contains(broken), run.stderr)
    }

    func testVariantNamesAreWrittenAndRead() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let single = directory.appendingPathComponent("sd1.safetensors").path
        XCTAssertEqual(try CLI.run(["convert", CLI.fixture("ldm/sd1"), single, "--pipeline-layout", "ldm", "-q"]).status, 0)
        let folder = directory.appendingPathComponent("fp16").path
        XCTAssertEqual(try CLI.run(["convert", single, folder, "--pipeline-layout", "diffusers", "--variant", "fp16", "-q"]).status, 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder + "/unet/diffusion_pytorch_model.fp16.safetensors"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder + "/text_encoder/model.fp16.safetensors"))
        XCTAssertNotEqual(try CLI.run(["inspect", folder + "/unet"]).status, 0)
        let inspect = try CLI.run(["inspect", folder + "/unet", "--variant", "fp16"])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        let again = directory.appendingPathComponent("again.safetensors").path
        let back = try CLI.run(["convert", folder, again, "--pipeline-layout", "ldm", "--variant", "fp16", "-q"])
        XCTAssertEqual(back.status, 0, back.stderr)
        XCTAssertEqual(try CLI.run(["diff", single, again]).status, 0)
    }

    func testPipelineFoldersAreOneInputForInspectVerifyAndDiffWithPerComponentTotals() throws {
        let inspect = try CLI.run(["inspect", CLI.fixture("ldm/sdxl"), "--depth", "1"])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        let text = String(decoding: inspect.stdout, as: UTF8.self)
        XCTAssertTrue(text.contains("diffusers-pipeline"), text)
        for component in ["unet", "vae", "text_encoder", "text_encoder_2"] {
            XCTAssertTrue(text.contains("component   \(component):"), component)
        }
        XCTAssertTrue(text.contains("scheduler: EulerDiscreteScheduler (no weights)"), text)
        XCTAssertNotNil(text.range(of: #"text_encoder_2\s+80,570\s+37"#, options: .regularExpression), text)
        XCTAssertEqual(try CLI.run(["verify", CLI.fixture("ldm/sd2")]).status, 0)
        let diff = try CLI.run(["diff", CLI.fixture("ldm/sd1"), CLI.fixture("ldm/sd2")])
        XCTAssertEqual(diff.status, 1)
        XCTAssertTrue(String(decoding: diff.stdout, as: UTF8.self).contains("text_encoder.encoder.layers.2"))
    }

    func testPredictionTypeSetsTheSchedulerAndImageSizeWhereWeightsCannotTell() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let single = directory.appendingPathComponent("sd2.safetensors").path
        XCTAssertEqual(try CLI.run(["convert", CLI.fixture("ldm/sd2"), single, "--pipeline-layout", "ldm", "-q"]).status, 0)
        for (flag, prediction, size) in [([String](), "v_prediction", 96), (["--prediction-type", "epsilon"], "epsilon", 64)] {
            let folder = directory.appendingPathComponent("out-\(prediction)").path
            XCTAssertEqual(try CLI.run(["convert", single, folder, "--pipeline-layout", "diffusers", "-q"] + flag).status, 0)
            let scheduler = try String(contentsOfFile: folder + "/scheduler/scheduler_config.json", encoding: .utf8)
            XCTAssertTrue(scheduler.contains("\"prediction_type\": \"\(prediction)\""), scheduler)
            let unet = try String(contentsOfFile: folder + "/unet/config.json", encoding: .utf8)
            XCTAssertTrue(unet.contains("\"sample_size\": \(size)"), unet)
        }
        XCTAssertEqual(try CLI.run(["convert", single, directory.appendingPathComponent("x").path, "--pipeline-layout", "diffusers", "--prediction-type", "sample"]).status, 64)
    }

    func testEMATakesTheModelEMAWeights() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let single = directory.appendingPathComponent("sd1.safetensors").path
        XCTAssertEqual(try CLI.run(["convert", CLI.fixture("ldm/sd1"), single, "--pipeline-layout", "ldm", "-q"]).status, 0)
        // The EMA copies as LDM training writes them: model_ema. + the name after model. without dots, other values.
        let withEMA = directory.appendingPathComponent("ema.safetensors").path
        let make = try CLI.shell("""
            python3 -c "
            from safetensors.torch import load_file, save_file
            s = load_file('\(single)')
            s.update({'model_ema.' + k[len('model.'):].replace('.', ''): v + 1 for k, v in s.items() if k.startswith('model.diffusion_model.')})
            save_file(s, '\(withEMA)')"
            """)
        XCTAssertEqual(make.status, 0, make.stderr)
        let plain = directory.appendingPathComponent("plain").path
        let ema = directory.appendingPathComponent("ema").path
        XCTAssertEqual(try CLI.run(["convert", withEMA, plain, "--pipeline-layout", "diffusers", "-q"]).status, 0)
        XCTAssertEqual(try CLI.run(["convert", withEMA, ema, "--pipeline-layout", "diffusers", "--ema", "-q"]).status, 0)
        XCTAssertEqual(try CLI.run(["diff", CLI.fixture("ldm/sd1/unet"), plain + "/unet"]).status, 0)
        let differs = try CLI.run(["diff", CLI.fixture("ldm/sd1/unet"), ema + "/unet"])
        XCTAssertEqual(differs.status, 1)
        XCTAssertTrue(String(decoding: differs.stdout, as: UTF8.self).contains("304"), String(decoding: differs.stdout, as: UTF8.self))
        let refused = try CLI.run(["convert", single, directory.appendingPathComponent("no").path, "--pipeline-layout", "diffusers", "--ema"])
        XCTAssertEqual(refused.status, 2)
        XCTAssertTrue(refused.stderr.contains("ldm-missing-tensor"), refused.stderr)
    }

    func testBlocksThatDoNotTileAreAShapeContradiction() throws {
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let single = directory.appendingPathComponent("sd1.safetensors").path
        XCTAssertEqual(try CLI.run(["convert", CLI.fixture("ldm/sd1"), single, "--pipeline-layout", "ldm", "-q"]).status, 0)
        let broken = directory.appendingPathComponent("broken.safetensors").path
        XCTAssertEqual(try CLI.run(["convert", single, broken, "--exclude", "model.diffusion_model.output_blocks.5.*", "-q"]).status, 0)
        let run = try CLI.run(["convert", broken, directory.appendingPathComponent("out").path, "--pipeline-layout", "diffusers"])
        XCTAssertEqual(run.status, 2)
        XCTAssertTrue(run.stderr.contains("\(broken): ldm-shape-contradiction"), run.stderr)
        XCTAssertTrue(run.stderr.contains("(tensor 'model.diffusion_model.output_blocks."), run.stderr)
    }

    func testTokenizerFoldersBuiltFromCLIPsBPEFileTokenizeAsOpenCLIP() throws {
        try requirePython()
        let directory = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let bpe = directory.appendingPathComponent("bpe_simple_vocab_16e6.txt").path
        let unzip = try CLI.shell("""
            gunzip -c "$(python3 -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("open_clip").origin))')/bpe_simple_vocab_16e6.txt.gz" > \(bpe)
            """)
        XCTAssertEqual(unzip.status, 0, unzip.stderr)
        let script = CLI.repository.appendingPathComponent("Tests/CLITests/clip_tokenizer_check.py").path
        for family in ["sd1", "sdxl"] {
            let single = directory.appendingPathComponent("\(family).safetensors").path
            XCTAssertEqual(try CLI.run(["convert", CLI.fixture("ldm/\(family)"), single, "--pipeline-layout", "ldm", "-q"]).status, 0)
            let folder = directory.appendingPathComponent(family).path
            let run = try CLI.run(["convert", single, folder, "--pipeline-layout", "diffusers", "--tokenizer", bpe, "-q"])
            XCTAssertEqual(run.status, 0, run.stderr)
            let check = try CLI.shell("python3 \(script) \(folder) 2>/dev/null")
            XCTAssertEqual(check.status, 0, "\(family): \(String(decoding: check.stdout, as: UTF8.self))")
        }
    }
}
