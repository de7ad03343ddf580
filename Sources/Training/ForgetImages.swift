import Diffusion
import TensorMath
import UNet

/// Forget images for a forget file of prompts only: the teacher draws one image per prompt with DDIM
/// and classifier-free guidance, once, before training. Seeded separately from the training stream so
/// that a resumed run regenerates exactly the same images. SDXL teachers get each prompt's pooled
/// embedding and time ids, and the empty prompt's pooled embedding with the same time ids.
public func generateForgetImages(teacher: UNet2D, forget: TrainingData, scheduler: SchedulerConfig,
                                 sampleShape: [Int], steps: Int, guidance: Float, seed: UInt64,
                                 chunk: Int = 16) throws -> Tensor {
    let cond = forget.cond!, uncond = forget.uncond!
    let ddim = DDIMSampler(scheduler)
    var rng = TrainingRandom(seed: seed ^ 0x5EED_F0E7_1A6E_5000)
    var parts: [Tensor] = []
    var start = 0
    while start < cond.shape[0] {
        let indices = Array(start..<min(start + chunk, cond.shape[0]))
        let n = indices.count
        let c = cond.items(indices), u = uncond.repeatedItem(n)
        let noise = rng.tensor([n] + sampleShape)
        parts.append(try ddim.sample(from: noise, steps: steps) { x, t in
            try guidedPrediction(teacher, sample: x, timesteps: [Float](repeating: Float(t), count: n),
                                 unconditional: u, conditional: c, scale: guidance,
                                 unconditionalTextTime: forget.uncondTextTime(indices), conditionalTextTime: forget.textTime(indices))
        })
        start += n
    }
    return Tensor.joined(parts)
}
