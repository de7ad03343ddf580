import Foundation

extension NN {
    /// Sinusoidal timestep embedding exactly as diffusers' `get_timestep_embedding(timesteps,
    /// embedding_dim, flip_sin_to_cos, downscale_freq_shift, scale, max_period)`: frequencies
    /// exp(-ln(max_period) * i / (half - shift)) for i < half = dim / 2, then [sin, cos] (or [cos, sin]
    /// when flipped) of scale * t * freq, zero-padded by one column when dim is odd. Returns [B, dim].
    /// Computed in Float like diffusers' float32 tensors. No backward: timesteps are data, not weights.
    public static func timestepEmbedding(_ timesteps: [Float], dim: Int, flipSinToCos: Bool,
                                         downscaleFreqShift: Float, scale: Float = 1,
                                         maxPeriod: Float = 10000) -> Tensor {
        let half = dim / 2
        let logPeriod = Float(-log(Double(maxPeriod)))
        let freqs: [Float] = (0..<half).map { i in
            expf(logPeriod * Float(i) / (Float(half) - downscaleFreqShift))
        }
        return Tensor(uninitializedShape: [timesteps.count, dim]) { out in
            for (row, t) in timesteps.enumerated() {
                let base = out.baseAddress! + row * dim
                let sinAt = flipSinToCos ? half : 0, cosAt = flipSinToCos ? 0 : half
                for i in 0..<half {
                    let arg = scale * (t * freqs[i])
                    base[sinAt + i] = sinf(arg)
                    base[cosAt + i] = cosf(arg)
                }
                if dim % 2 == 1 { base[dim - 1] = 0 }
            }
        }
    }
}
