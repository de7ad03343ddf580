import TensorFormats
import TensorMath

/// How a frozen model (a teacher) holds its weights between forwards. Compute is float32 either way:
/// a narrow weight is widened (exactly) at each use, one tensor at a time, so only the layer being
/// computed has a float32 copy.
public enum FrozenStorage: String, Sendable, CaseIterable {
    /// float32, as read: nothing widened per use.
    case float32
    /// IEEE half: exact for weights read from F16 files, rounded to nearest even from F32 ones.
    case float16
    /// bfloat16: exact for weights read from BF16 files.
    case bfloat16
    /// Nothing held: each weight is read from the checkpoint's mapped file at each use (F32, F16 and
    /// BF16 tensors, exact) and its pages dropped from the resident set after the read, so an SD-size
    /// teacher takes one layer's float32 copy of memory instead of 1.7 (16 bits) or 3.4 GB (`MappedTensor`).
    case mapped

    /// The storage that holds `dtype` exactly in at most its size: half and bfloat16 files keep their
    /// 16 bits, every other dtype is widened to float32.
    public static func exact(for dtype: DType) -> FrozenStorage {
        switch dtype {
        case .f16: .float16
        case .bf16: .bfloat16
        default: .float32
        }
    }

    /// Whether `checkpoint` can be held `.mapped`: its tensors lie in mapped files, every one F32, F16 or BF16.
    public static func canMap(_ checkpoint: Checkpoint) -> Bool {
        checkpoint.isMapped && checkpoint.entries.allSatisfy(MappedTensor.reads)
    }

    /// Bytes per element held in memory between uses.
    public var elementBytes: Int {
        switch self {
        case .float32: 4
        case .float16, .bfloat16: 2
        case .mapped: 0
        }
    }
}

/// A weight held in 16 bits (IEEE half or bfloat16), widened to float32 when a layer reads it.
struct NarrowTensor: Sendable {
    let shape: [Int]
    let storage: FrozenStorage
    let bits: [UInt16]

    /// Rounds `tensor` to nearest even, as torch's casts do (`ElementCodec`).
    init(_ tensor: Tensor, storage: FrozenStorage) {
        precondition(storage == .float16 || storage == .bfloat16, "a narrow tensor holds 16-bit floats")
        shape = tensor.shape
        self.storage = storage
        let values = tensor.data
        bits = [UInt16](unsafeUninitializedCapacity: values.count) { out, initialized in
            values.withUnsafeBufferPointer { src in
                Parallel.forParts(count: src.count) { _, range in
                    if storage == .float16 {
                        for i in range { out[i] = ElementCodec.halfBits(src[i]) }
                    } else {
                        for i in range { out[i] = ElementCodec.bfloat16Bits(src[i]) }
                    }
                }
            }
            initialized = values.count
        }
    }

    /// The float32 values (exact: every half and bfloat16 value is a float32 value). A frozen SD-size
    /// teacher widens all its weights at every forward, so the half path is a table lookup inlined here.
    func widened() -> Tensor {
        let profileMark = OpProfile.begin()
        defer { OpProfile.end("teacher weight widen", profileMark) }
        return Tensor(uninitializedShape: shape) { out in
            bits.withUnsafeBufferPointer { src in
                halfValues.withUnsafeBufferPointer { table in
                    Parallel.forParts(count: src.count) { _, range in
                        if storage == .float16 {
                            for i in range { out[i] = table[Int(src[i])] }
                        } else {
                            for i in range { out[i] = Float(bitPattern: UInt32(src[i]) << 16) }
                        }
                    }
                }
            }
        }
    }
}

/// The checkpoint a mapped weight is read from; a class so that every weight of a model shares it and
/// the mapping lives as long as the model. Reads of a mapped file cannot fail once it is open and
/// do not change it, so the model may read from any thread (hence `@unchecked Sendable`).
final class MappedWeightFile: @unchecked Sendable {
    let checkpoint: Checkpoint
    init(_ checkpoint: Checkpoint) {
        precondition(checkpoint.isMapped, "\(checkpoint.name) is not mapped")
        self.checkpoint = checkpoint
    }
}

/// A weight read from its checkpoint's mapped file each time a layer reads it (`FrozenStorage.mapped`).
struct MappedTensor: Sendable {
    let shape: [Int]
    let file: MappedWeightFile
    let entry: TensorEntry

    /// Whether `entry` can be read this way: one of the float dtypes the widening below knows.
    static func reads(_ entry: TensorEntry) -> Bool { [DType.f32, .f16, .bf16].contains(entry.dtype) }

    init(file: MappedWeightFile, entry: TensorEntry) {
        precondition(MappedTensor.reads(entry), "\(entry.name): \(entry.dtype) is not read mapped")
        shape = entry.shape
        self.file = file
        self.entry = entry
    }

    /// The float32 values, decoded from the file in parallel parts (exact: F16 and BF16 values are
    /// float32 values); each part's pages leave the resident set once read.
    func widened() -> Tensor {
        let profileMark = OpProfile.begin()
        defer { OpProfile.end("teacher weight read (mapped)", profileMark) }
        let (entry, checkpoint) = (self.entry, file.checkpoint)
        return Tensor(uninitializedShape: shape) { out in
            halfValues.withUnsafeBufferPointer { table in
                Parallel.forParts(count: out.count) { _, range in
                    checkpoint.withMappedBytes(of: entry, elements: range) { bytes in
                        let dst = out.baseAddress! + range.lowerBound
                        switch entry.dtype {
                        case .f32:
                            UnsafeMutableRawPointer(dst).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
                        case .f16:
                            for i in 0..<range.count {
                                dst[i] = table[Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))]
                            }
                        default:
                            for i in 0..<range.count {
                                let bits = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                                dst[i] = Float(bitPattern: UInt32(bits) << 16)
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Every IEEE half value as float32, indexed by its bits (`ElementCodec`'s exact widening).
private let halfValues: [Float] = (0..<65536).map { ElementCodec.float(halfBits: UInt16($0)) }

/// The weights layers read by name: float32 tensors, and a frozen model's narrow ones, widened on
/// each read (a layer's widened copy lives only while that layer computes).
struct Weights {
    var floats: [String: Tensor]
    var narrow: [String: NarrowTensor] = [:]
    var mapped: [String: MappedTensor] = [:]

    /// The tensor under `name`; building the model checked that it exists.
    @inline(__always) func at(_ name: String) -> Tensor { floats[name] ?? narrow[name]?.widened() ?? mapped[name]!.widened() }
}

extension UNet2D {
    /// Holds every weight in `storage` from now on (a frozen model: a teacher, a sampler's UNet);
    /// float32 keeps them as they are. Widened values are exact, so a model whose float32 weights
    /// were already 16-bit values (read from an F16 file) computes the same outputs to the bit.
    /// The model can no longer be trained or written: `parameters` is then empty.
    /// `.mapped` needs the file: it is `init(checkpoint:frozen:)`'s alone, and keeps float32 here.
    public mutating func freeze(as storage: FrozenStorage) {
        guard storage == .float16 || storage == .bfloat16 else { return }
        for name in parameters.keys.sorted() {
            narrowParameters[name] = NarrowTensor(parameters.removeValue(forKey: name)!, storage: storage)
        }
    }

    /// Bytes the weights take as held now.
    public var weightBytes: Int {
        parameters.values.reduce(0) { $0 + 4 * $1.count } + narrowParameters.values.reduce(0) { $0 + 2 * $1.bits.count }
    }
}
