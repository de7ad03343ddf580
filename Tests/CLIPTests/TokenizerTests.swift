import CLIP
import Foundation
import TensorFormats
import XCTest

/// The Swift tokenizer against transformers' CLIPTokenizer on the real CLIP vocabulary.
final class TokenizerTests: XCTestCase {
    static let configs = ["sd1", "sd2", "sd2-decoder", "plain", "sd1-v5", "sd2-v5"]

    func prompts() throws -> [String] {
        try JSONDecoder().decode([String].self, from: Data(contentsOf: URL(fileURLWithPath: TestSupport.fixture("prompts.json"))))
    }

    func testIDsEqualCommittedTransformersIDsOnPromptCorpus() throws {
        let (root, _) = try TestSupport.tokenizerFolders.get()
        let prompts = try prompts()
        for config in Self.configs {
            let expected = try JSONDecoder().decode([[Int32]].self, from: Data(contentsOf: URL(fileURLWithPath: TestSupport.fixture("token_ids/\(config).json"))))
            let tokenizer = try CLIPTokenizer(folder: root + "/" + config)
            XCTAssertEqual(expected.count, prompts.count)
            for (prompt, ids) in zip(prompts, expected) {
                XCTAssertEqual(try tokenizer.inputIDs(prompt), ids, "\(config): \(prompt.debugDescription)")
            }
        }
    }

    func testIDsEqualLiveTransformersOnUnseenPrompts() throws {
        let (root, _) = try TestSupport.tokenizerFolders.get()
        // Prompts made here, not in the committed corpus: random mixes of the character classes.
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("aZ ç!?'s'll.,;:-_/\\ 0 9 ½ ² ÉÀ ß ΣΟ ñ 中文 かな 한 😀👍🏽 \t\n\u{a0}\u{3000}<|endoftext|>İ'RE")
        var prompts: [String] = []
        for _ in 0..<60 {
            let length = Int.random(in: 0..<120, using: &generator)
            prompts.append(String((0..<length).map { _ in alphabet.randomElement(using: &generator)! }))
        }
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("prompts.json")
        try JSONEncoder().encode(prompts).write(to: file)
        for config in ["sd1", "sd2", "sd2-v5"] {
            let run = try TestSupport.shell("python3 fixtures/clip/token_ids.py \(root)/\(config) \(file.path)")
            XCTAssertEqual(run.status, 0, run.stderr)
            let expected = try JSONDecoder().decode([[Int32]].self, from: run.stdout)
            let tokenizer = try CLIPTokenizer(folder: root + "/" + config)
            for (prompt, ids) in zip(prompts, expected) {
                XCTAssertEqual(try tokenizer.inputIDs(prompt), ids, "\(config): \(prompt.debugDescription)")
            }
        }
    }

    func testOpenCLIPGzipVocabularyGivesTheFolderIDs() throws {
        let (root, gz) = try TestSupport.tokenizerFolders.get()
        let fromGzip = try CLIPTokenizer(openCLIPVocabulary: gz)
        let fromFolder = try CLIPTokenizer(folder: root + "/plain")
        XCTAssertEqual(fromGzip.vocabularySize, 49408)
        for prompt in try prompts() {
            XCTAssertEqual(try fromGzip.inputIDs(prompt), try fromFolder.inputIDs(prompt), prompt.debugDescription)
        }
        let bang = try CLIPTokenizer(openCLIPVocabulary: gz, padToken: "!")
        XCTAssertEqual(bang.padID, 0)
        XCTAssertEqual(Array(try bang.inputIDs("a cat").suffix(3)), [0, 0, 0])
    }

    func testPaddingAndTruncationUseConfiguredTokens() throws {
        let (root, _) = try TestSupport.tokenizerFolders.get()
        let sd1 = try CLIPTokenizer(folder: root + "/sd1"), sd2 = try CLIPTokenizer(folder: root + "/sd2")
        XCTAssertEqual([sd1.bosID, sd1.eosID, sd1.padID], [49406, 49407, 49407])
        XCTAssertEqual([sd2.bosID, sd2.eosID, sd2.padID], [49406, 49407, 0])
        let long = try sd1.inputIDs(String(repeating: "cat ", count: 200))
        XCTAssertEqual(long.count, 77)
        XCTAssertEqual(long.first, 49406)
        XCTAssertEqual(long.last, 49407)
        XCTAssertEqual(try sd2.inputIDs("").prefix(3), [49406, 49407, 0])
    }

    func testHugeWordTokenizesQuickly() throws {
        let (root, _) = try TestSupport.tokenizerFolders.get()
        let tokenizer = try CLIPTokenizer(folder: root + "/sd1")
        let start = Date()
        let ids = try tokenizer.tokenize(String(repeating: "qz", count: 200_000))
        XCTAssertGreaterThan(ids.count, 1000)
        XCTAssertLessThan(Date().timeIntervalSince(start), 30)
    }

    func testBrokenMergesFileIsRefusedNamingFileAndRule() throws {
        let (root, _) = try TestSupport.tokenizerFolders.get()
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let folder = directory.path
        try FileManager.default.copyItem(atPath: root + "/sd1/vocab.json", toPath: folder + "/vocab.json")
        let cases: [(String, String)] = [
            ("#version: 0.2\ni n\nthree parts here\n", "line 3"),
            ("#version: 0.2\ni n\nzzzunknown q\n", "not in the vocabulary"),
            ("#version: 0.2\n\ni n\n", "line 2"),
        ]
        for (merges, detail) in cases {
            try Data(merges.utf8).write(to: URL(fileURLWithPath: folder + "/merges.txt"))
            XCTAssertThrowsError(try CLIPTokenizer(folder: folder)) { error in
                let error = error as! CLIPError
                XCTAssertEqual(error.code, .tokenizerBadMerges)
                XCTAssertEqual(error.file, folder + "/merges.txt")
                XCTAssertTrue(error.message.contains(detail), error.message)
            }
        }
        try Data([0x69, 0x20, 0xFF, 0x0A]).write(to: URL(fileURLWithPath: folder + "/merges.txt"))
        XCTAssertThrowsError(try CLIPTokenizer(folder: folder)) { XCTAssertEqual(($0 as! CLIPError).code, .tokenizerNotUTF8) }
    }

    func testBadConfigValuesAreRefused() throws {
        let (root, _) = try TestSupport.tokenizerFolders.get()
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let folder = directory.path
        for name in ["vocab.json", "merges.txt"] {
            try FileManager.default.copyItem(atPath: root + "/sd1/" + name, toPath: folder + "/" + name)
        }
        for (config, code) in [("{\"model_max_length\": 1e30}", ErrorCode.tokenizerBadConfig), ("{\"model_max_length\": 2}", .tokenizerBadConfig),
                               ("[1]", .tokenizerBadConfig), ("{\"pad_token\": 5}", .tokenizerBadConfig), ("{", .tokenizerInvalidJSON)] {
            try Data(config.utf8).write(to: URL(fileURLWithPath: folder + "/tokenizer_config.json"))
            XCTAssertThrowsError(try CLIPTokenizer(folder: folder), config) { XCTAssertEqual(($0 as! CLIPError).code, code, config) }
        }
        try Data("{\"a\": -1}".utf8).write(to: URL(fileURLWithPath: folder + "/vocab.json"))
        try Data("{}".utf8).write(to: URL(fileURLWithPath: folder + "/tokenizer_config.json"))
        XCTAssertThrowsError(try CLIPTokenizer(folder: folder)) { XCTAssertEqual(($0 as! CLIPError).code, .tokenizerBadVocab) }
    }
}
