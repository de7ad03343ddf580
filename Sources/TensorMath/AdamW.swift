import Foundation

/// `torch.optim.AdamW` over named parameter tensors: decoupled weight decay (p *= 1 - lr * wd), then
/// m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2, p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
/// Like torch, each parameter counts its own steps (a parameter that gets no gradient is not stepped),
/// and state is created on first use. amsgrad and maximize are not supported.
public struct AdamW: Sendable {
    public var learningRate: Float
    public var beta1: Float
    public var beta2: Float
    public var eps: Float
    public var weightDecay: Float

    /// Moments and step count of one parameter.
    public struct State: Sendable {
        public var step: Int = 0
        public var m: [Float]
        public var v: [Float]

        public init(step: Int = 0, m: [Float], v: [Float]) {
            self.step = step
            self.m = m
            self.v = v
        }
    }

    /// Optimizer state by parameter name; settable so that a training run can resume exactly.
    public var states: [String: State] = [:]

    /// torch's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 1e-2.
    public init(learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8,
                weightDecay: Float = 1e-2) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weightDecay = weightDecay
    }

    /// Applies one AdamW step to `parameter` with `gradient` (same shape), using and advancing the
    /// state stored under `name`.
    public mutating func step(_ name: String, parameter: inout Tensor, gradient: Tensor) {
        let profileMark = OpProfile.begin()
        defer { OpProfile.end("adamw", profileMark) }
        precondition(parameter.shape == gradient.shape, "AdamW: \(name) \(parameter.shape) vs gradient \(gradient.shape)")
        // New moments are zeroed range by range inside the parallel update below, not in a serial pass
        // before it: the kernel reads the same zeros, and the pages are first touched by the core using them.
        let n = parameter.count
        let fresh = states[name] == nil
        var state = states.removeValue(forKey: name)
            ?? State(m: [Float](unsafeUninitializedCapacity: n) { _, c in c = n }, v: [Float](unsafeUninitializedCapacity: n) { _, c in c = n })
        precondition(state.m.count == parameter.count, "AdamW: \(name) changed size")
        state.step += 1
        let t = Double(state.step)
        let (lr, b1, b2, eps) = (learningRate, beta1, beta2, eps)
        let decay = 1 - lr * weightDecay
        // torch computes the bias corrections as Python floats (double precision).
        let biasCorrection2Sqrt = Float((1 - pow(Double(b2), t)).squareRoot())
        let stepSize = Float(Double(lr) / (1 - pow(Double(b1), t)))
        parameter.data.withUnsafeMutableBufferPointer { pp in
        gradient.data.withUnsafeBufferPointer { pg in
        state.m.withUnsafeMutableBufferPointer { pm in
        state.v.withUnsafeMutableBufferPointer { pv in
            // The kernel set's loop (Sources/TensorKernels): the same arithmetic in every lane width.
            Parallel.forRanges(pp.count, grain: 65536) { range in
                let lo = range.lowerBound
                if fresh {
                    (pm.baseAddress! + lo).update(repeating: 0, count: range.count)
                    (pv.baseAddress! + lo).update(repeating: 0, count: range.count)
                }
                VectorMath.kernels.adamW(pp.baseAddress! + lo, pg.baseAddress! + lo, pm.baseAddress! + lo,
                                         pv.baseAddress! + lo, range.count, decay, b1, b2, stepSize,
                                         biasCorrection2Sqrt, eps)
            }
        }
        }
        }
        }
        states[name] = state
    }
}
