import TensorFormats
import TensorMath

extension Converter {
    /// Elements decoded and quantized at a time: a whole number of blocks, a few MB of floats.
    static let ggufChunkElements = 1 << 20

    /// Which rules lay a GGUF output out.
    public enum GGUFConvention: Sendable, Equatable {
        /// `GGUFTensorPolicy` on the input's names, dmsurgery's keys and metadata.
        case dmsurgery
        /// ComfyUI-GGUF's route for SD UNets with original names (`GGUFComfySDPolicy`), its keys only.
        case comfySD(architecture: String)
    }

    /// The GGUF layout `writeGGUF` produces for a plan, and the float type each quantized tensor's
    /// values are first rounded through (ComfyUI-GGUF's route only), by the names' bytes.
    public static func ggufWriter(_ plan: ConvertPlan, quant: GGMLType?, metadata: Metadata?,
                                  convention: GGUFConvention = .dmsurgery) throws -> (writer: GGUFWriter, intermediates: [ByteKey: GGMLType]) {
        var planned: [(name: String, type: GGMLType, storedShape: [Int], originalShape: [Int]?)] = []
        var intermediates: [ByteKey: GGMLType] = [:]
        for tensor in plan.tensors {
            do {
                switch convention {
                case .dmsurgery:
                    let choice = try GGUFTensorPolicy.choose(name: tensor.name, dtype: tensor.source.dtype, shape: tensor.shape, target: quant)
                    planned.append((tensor.name, choice.type, choice.storedShape, choice.originalShape))
                case .comfySD:
                    let choice = try GGUFComfySDPolicy.choose(name: tensor.name, dtype: tensor.source.dtype, shape: tensor.shape, target: quant)
                    planned.append((tensor.name, choice.type, choice.storedShape, choice.originalShape))
                    intermediates[ByteKey(tensor.name)] = choice.intermediate
                }
            } catch {
                throw error.inFile(plan.checkpoint.name)
            }
        }
        let writer: GGUFWriter
        switch convention {
        case .dmsurgery:
            writer = try GGUFWriter(architecture: GGUFTensorPolicy.architecture(names: Set(plan.tensors.map(\.name))),
                                    fileType: (quant ?? .f32).fileType, metadata: metadata, tensors: planned)
        case .comfySD(let architecture):
            writer = try GGUFWriter(architecture: architecture,
                                    fileType: GGUFComfySDPolicy.fileType(target: quant, dtypes: plan.tensors.map(\.source.dtype)),
                                    metadata: nil, keyStyle: .comfyUI, tensors: planned)
        }
        return (writer, intermediates)
    }

    /// Writes the plan as one GGUF file, tensor by tensor in the input's storage order, holding at
    /// most one chunk of each tensor in memory.
    public static func writeGGUF(_ plan: ConvertPlan, quant: GGMLType?, metadata: Metadata?, convention: GGUFConvention = .dmsurgery,
                                 to output: OutputFile, progress: ProgressSink? = nil, result: inout ConvertResult) throws {
        let (writer, intermediates) = try ggufWriter(plan, quant: quant, metadata: metadata, convention: convention)
        // The writer produces its tensors in the plan's order, so the n-th is the plan's n-th: no name
        // lookup that Unicode-equivalent names could confuse.
        var sources = plan.tensors.map(\.source).makeIterator()
        var bytesRead = result.bytesRead
        try writer.write(to: output) { tensor, sink in
            guard let source = sources.next() else {
                throw SurgeryError(.sizeMismatch, "the GGUF plan has more tensors than the input", file: output.path, tensor: tensor.name)
            }
            try emitGGUF(tensor, from: source, checkpoint: plan.checkpoint, intermediate: intermediates[ByteKey(tensor.name)], sink: sink) { bytes in
                bytesRead += bytes
                progress?(bytesRead)
            }
            result.tensors += 1
        }
        result.bytesRead = bytesRead
        result.bytesWritten += output.bytesWritten
    }

    /// Streams one tensor: copied when its type is the source's own, else decoded to float32 (rounded
    /// through `intermediate` when given) and encoded block by block (a remainder shorter than a block
    /// waits for the next piece).
    static func emitGGUF(_ tensor: GGUFPlannedTensor, from source: TensorEntry, checkpoint: Checkpoint, intermediate: GGMLType? = nil,
                         sink: (UnsafeRawBufferPointer) throws -> Void, read: (Int) -> Void) throws {
        if GGMLType(plain: source.dtype) == tensor.type {
            try checkpoint.read(source) { piece in
                try sink(piece)
                read(piece.count)
            }
            return
        }
        let type = tensor.type
        let capacity = ggufChunkElements
        let floats = UnsafeMutableBufferPointer<Float>.allocate(capacity: capacity + type.blockSize)
        defer { floats.deallocate() }
        let encoded = UnsafeMutableRawBufferPointer.allocate(byteCount: (capacity / type.blockSize + 1) * type.typeSize, alignment: 64)
        defer { encoded.deallocate() }
        var pending = 0
        func flush(_ count: Int) throws {
            let blocks = count / type.blockSize
            guard blocks > 0 else { return }
            let done = floats.baseAddress!
            let out = encoded.baseAddress!
            Parallel.forParts(count: blocks, minimumPerPart: 1 << 12) { _, part in
                GGMLQuants.quantize(type, done + part.lowerBound * type.blockSize, blocks: part.count,
                                    into: out + part.lowerBound * type.typeSize)
            }
            try sink(UnsafeRawBufferPointer(rebasing: encoded[0..<(blocks * type.typeSize)]))
        }
        let elementBytes = max(1, source.dtype.bitsPerElement / 8)
        try checkpoint.read(source, chunkBytes: capacity / 2 * elementBytes) { piece in
            let elements = piece.count * 8 / source.dtype.bitsPerElement
            var consumed = 0
            while consumed < elements {
                let take = min(elements - consumed, capacity - pending)
                let bytes = (consumed * source.dtype.bitsPerElement / 8)..<((consumed + take) * source.dtype.bitsPerElement / 8)
                ElementCodec.decodeFloats(source.dtype, UnsafeRawBufferPointer(rebasing: piece[bytes]), elements: take,
                                          into: UnsafeMutableBufferPointer(rebasing: floats[pending..<(pending + take)]))
                if let intermediate, GGMLType(plain: source.dtype) != intermediate {
                    roundThrough(intermediate, UnsafeMutableBufferPointer(rebasing: floats[pending..<(pending + take)]))
                }
                pending += take
                consumed += take
                let whole = pending / type.blockSize * type.blockSize
                if pending == capacity || whole >= capacity / 2 {
                    try flush(whole)
                    let rest = pending - whole
                    if rest > 0 { floats.baseAddress!.update(from: floats.baseAddress! + whole, count: rest) }
                    pending = rest
                }
            }
            read(piece.count)
        }
        try flush(pending)
    }

    /// Rounds floats to the values an F16 (or BF16) file holds, as numpy's `astype` does when
    /// convert.py writes them.
    static func roundThrough(_ type: GGMLType, _ values: UnsafeMutableBufferPointer<Float>) {
        switch type {
        case .f16: for i in values.indices { values[i] = ElementCodec.float(halfBits: ElementCodec.halfBits(values[i])) }
        case .bf16: for i in values.indices { values[i] = ElementCodec.float(bfloat16Bits: ElementCodec.bfloat16Bits(values[i])) }
        default: break
        }
    }
}
