import CLIP
import ConceptWorld
import Diffusion
import Surgery
import TensorFormats
import Training
import UNet

extension ErrorCode {
    /// Every code dmsurgery prints, grouped by the module that declares it, in the order formats/errors.md
    /// lists them. ErrorCodeRegistryTests keeps this list, the declarations in Sources/ and the page in step.
    public static let registry: [ErrorCode] = [
        // TensorFormats: safetensors structure (formats/safetensors.md)
        .tooSmall, .headerTooLarge, .headerPastEOF, .headerNotUTF8, .headerInvalidJSON, .headerNotObject, .duplicateKey,
        .unknownDType, .invalidShape, .invalidOffsets, .missingField, .invalidMetadata, .offsetsNotContiguous,
        .sizeOverflow, .misalignedBits, .sizeMismatch, .trailingBytes, .truncated,
        // TensorFormats: checkpoints of several files, operations
        .invalidIndex, .invalidConfig, .unknownFormat, .io, .notFound, .sameFile, .outputShared, .linkOutsideInput, .terminalOutput, .nameCollision,
        .unsupported, .interrupted, .invalidArgument, .tooLarge, .unrepresentableName, .wrongFormat,
        // TensorFormats: HDF5 and zstd (formats/hdf5.md, formats/zstd.md)
        .hdf5Unreadable, .hdf5ExternalLink, .hdf5SoftLink, .hdf5VirtualDataset, .hdf5ExternalStorage, .hdf5DeclaredSize,
        .hdf5UnsupportedType, .hdf5InvalidLayout, .hdf5Write, .zstdCorrupt,
        // TensorFormats: PyTorch pickles (formats/pickle.md)
        .pickleGlobalRefused, .pickleUnsupportedOpcode, .pickleInvalid, .pickleTooDeep, .pickleUnsupported, .pickleNoTensors,
        .torchInvalid, .zipInvalid, .zipCompressed, .pickleDeclaredSize,
        // TensorFormats: GGUF (formats/gguf.md)
        .ggufMagic, .ggufVersion, .ggufCountPastEOF, .ggufInvalidString, .ggufValueType, .ggufNestedArray, .ggufAlignment,
        .ggufMisalignedOffset, .ggufOverlap, .ggufOriginalShape,
        // TensorFormats: ONNX models (formats/onnx-read.md)
        .onnxWire, .onnxNoGraph, .onnxExternalPath, .onnxExternalRange, .onnxUndefinedInput, .onnxGraphCycle, .onnxQuantNode,
        // UNet (formats/engine-io.md)
        .unsupportedConfig, .missingParameter, .badShape, .unexpectedParameter, .badInput,
        // Diffusion
        .invalidSchedulerConfig,
        // Training (formats/training-data.md, formats/training.md)
        .missingTensor, .unexpectedTensor, .countMismatch, .emptyData, .nonFinite, .runMismatch,
        // Surgery (formats/mask.md, formats/depth.md, formats/ldm.md)
        .badMask, .depthUnsupported, .ldmUnknownFamily, .ldmMissingTensor, .ldmShapeContradiction, .ldmNoRule,
        // Surgery: LoRA files (formats/lora.md)
        .loraUnmappedKey,
        // ConceptWorld (formats/concept-world.md)
        .worldMismatch,
        // CLIP: tokenizer, text encoder and the VAE (formats/tokenizer.md, formats/text-encoder.md, formats/vae.md)
        .tokenizerMissingFile, .tokenizerInvalidJSON, .tokenizerNotUTF8, .tokenizerBadVocab, .tokenizerBadMerges,
        .tokenizerBadConfig, .tokenizerUnsupported, .tokenizerBadGzip,
        .modelBadConfig, .modelUnsupported, .modelMissingParameter, .modelBadShape, .modelUnexpectedParameter, .modelBadInput,
        .promptsNotUTF8,
        // Workflows
        .pngEncode, .pngDecode, .uceNotPositiveDefinite,
    ]
}
