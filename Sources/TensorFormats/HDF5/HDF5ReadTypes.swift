/// The HDF5 layouts dmsurgery recognises (formats/hdf5.md, "Layouts").
public enum HDF5Layout: String, Sendable, CaseIterable {
    /// dmsurgery's own: one root-level dataset per tensor in the original order, metadata as root
    /// attributes, root attribute `dmsurgery.layout`. Round-trips safetensors exactly.
    case dmsurgery
    /// Keras 2 / legacy `.h5`: `layer_names` and `weight_names` attributes, at the root or under `model_weights`.
    case keras2
    /// Keras 3 `.weights.h5`: `layers/<name>/vars/<i>`, or its sharded form behind a `.weights.json` index.
    case keras3
    /// Any other file: every numeric dataset, named by its path.
    case generic
}

/// One filter of a chunked dataset's pipeline.
public struct HDF5Filter: Sendable, Equatable {
    public var id: Int
    public var name: String
    public var parameters: [UInt32]
}

/// A dataset that reads as a tensor.
public struct HDF5Tensor: Sendable {
    /// The dotted tensor name (`HDF5Names`).
    public var name: String
    public var dtype: DType
    /// Element shape ([] for a scalar).
    public var shape: [Int]
    /// Bytes of the raw little-endian data.
    public var byteCount: Int
    /// The dataset's path in its file.
    public var path: String
    /// The file holding it (differs between shards).
    public var file: String
    /// `contiguous`, `chunked`, `compact` or `virtual`.
    public var storage: String
    public var chunks: [Int]?
    public var filters: [HDF5Filter]
    /// Bytes the dataset occupies in the file.
    public var storedBytes: Int
    /// The HDF5 type as stored, in words (`IEEE float16 LE`, `opaque[2] dtype=bfloat16`).
    public var typeDescription: String
}

/// A dataset that is not read as a tensor, and why.
public struct HDF5SkippedDataset: Sendable {
    public var path: String
    public var reason: String
}

public struct HDF5ReadOptions: Sendable {
    /// Accept what Keras refuses on load: external and soft links, external storage, virtual datasets,
    /// shape bombs.
    public var allowUnsafe: Bool
    /// Read with this layout instead of recognising one.
    public var layout: HDF5Layout?

    public init(allowUnsafe: Bool = false, layout: HDF5Layout? = nil) {
        self.allowUnsafe = allowUnsafe
        self.layout = layout
    }
}
