import Foundation

extension NN {
    /// Sinusoidal timestep embedding exactly as diffusers' `get_timestep_embedding(timesteps,
    /// embedding_dim, flip_sin_to_cos, downscale_freq_shift, scale, max_period)`: frequencies
    /// exp(-ln(max_period) * i / (half - shift)) for i < half = dim / 2, then [sin, cos] (or [cos, sin]
    /// when flipped) of scale * t * freq, zero-padded by one column when dim is odd. Returns [B, dim].
    /// Computed in Float like diffusers' float32 tensors.
    public static func timestepEmbedding(_ timesteps: [Float], dim: Int, flipSinToCos: Bool,
                                         downscaleFreqShift: Float, scale: Float = 1,
                                         maxPeriod: Float = 10000) -> Tensor {
        let half = dim / 2
        let freqs = timestepFrequencies(half: half, downscaleFreqShift: downscaleFreqShift, maxPeriod: maxPeriod)
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

    /// The gradient of each timestep from that of its embedding `dy` [B, dim] (`timestepEmbedding`'s
    /// arguments): a diffusion step's timestep is data, but SDXL's time ids are inputs whose gradient
    /// `forward --backward` reports, as torch's autograd does through the same float32 sin and cos.
    public static func timestepEmbeddingBackward(_ dy: Tensor, timesteps: [Float], flipSinToCos: Bool,
                                                 downscaleFreqShift: Float, scale: Float = 1,
                                                 maxPeriod: Float = 10000) -> [Float] {
        let dim = dy.shape[1], half = dim / 2
        precondition(dy.rank == 2 && dy.shape[0] == timesteps.count, "embedding gradient \(dy.shape) for \(timesteps.count) timesteps")
        let freqs = timestepFrequencies(half: half, downscaleFreqShift: downscaleFreqShift, maxPeriod: maxPeriod)
        let sinAt = flipSinToCos ? half : 0, cosAt = flipSinToCos ? 0 : half
        return dy.data.withUnsafeBufferPointer { g in
            timesteps.enumerated().map { row, t in
                let base = g.baseAddress! + row * dim
                var sum: Float = 0
                for i in 0..<half {
                    let arg = scale * (t * freqs[i])
                    sum += (base[sinAt + i] * cosf(arg) - base[cosAt + i] * sinf(arg)) * (scale * freqs[i])
                }
                return sum
            }
        }
    }

    /// exp(-ln(max_period) * i / (half - shift)) for i < half, in Float as diffusers computes them.
    private static func timestepFrequencies(half: Int, downscaleFreqShift: Float, maxPeriod: Float) -> [Float] {
        let logPeriod = Float(-log(Double(maxPeriod)))
        return (0..<half).map { i in expf(logPeriod * Float(i) / (Float(half) - downscaleFreqShift)) }
    }
}
