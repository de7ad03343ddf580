/// A CLIP text encoder's `config.json` (transformers' `CLIPTextConfig`), every field range-checked.
public struct CLIPTextConfig: Sendable, Equatable {
    public enum Activation: String, Sendable { case quickGELU = "quick_gelu", gelu }

    public var vocabularySize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layers: Int
    public var heads: Int
    public var maxPositions: Int
    public var activation: Activation
    public var layerNormEpsilon: Float
    /// Width of `text_projection` (used by `CLIPTextModelWithProjection` only).
    public var projectionSize: Int
    /// transformers pools at `argmax(input_ids)` when this is 2 (the value of every original CLIP config)
    /// and at the first `eos_token_id` otherwise (row start when absent). Default 49407, as in transformers 5.
    public var eosTokenID: Int

    public init(vocabularySize: Int, hiddenSize: Int, intermediateSize: Int, layers: Int, heads: Int, maxPositions: Int,
                activation: Activation, layerNormEpsilon: Float, projectionSize: Int, eosTokenID: Int) {
        self.vocabularySize = vocabularySize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layers = layers
        self.heads = heads
        self.maxPositions = maxPositions
        self.activation = activation
        self.layerNormEpsilon = layerNormEpsilon
        self.projectionSize = projectionSize
        self.eosTokenID = eosTokenID
    }

    /// Parses config.json text; `file` names it in errors. Defaults are CLIPTextConfig's.
    public init(json text: String, file: String) throws(CLIPError) {
        let c = try ConfigReader(text: text, file: file)
        vocabularySize = try c.int("vocab_size", in: 1...4_000_000, default: 49408)
        hiddenSize = try c.int("hidden_size", in: 1...16384, default: 512)
        intermediateSize = try c.int("intermediate_size", in: 1...65536, default: 2048)
        layers = try c.int("num_hidden_layers", in: 1...256, default: 12)
        heads = try c.int("num_attention_heads", in: 1...1024, default: 8)
        maxPositions = try c.int("max_position_embeddings", in: 1...16384, default: 77)
        activation = Activation(rawValue: try c.string("hidden_act", oneOf: ["quick_gelu", "gelu"], default: "quick_gelu"))!
        layerNormEpsilon = Float(try c.double("layer_norm_eps", in: 1e-12...1, default: 1e-5))
        projectionSize = try c.int("projection_dim", in: 1...16384, default: 512)
        eosTokenID = try c.int("eos_token_id", in: 0...4_000_000, default: 49407)
        guard hiddenSize % heads == 0 else {
            throw c.fail("num_attention_heads", "hidden_size \(hiddenSize) is not divisible by \(heads) heads")
        }
    }
}
