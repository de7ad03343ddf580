import TensorMath

/// Every random draw of a training run (batch indices, timesteps, noise, CFG dropout) comes from one
/// stream, TensorMath's `NormalGenerator`, whose state a checkpoint stores as one integer.
public typealias TrainingRandom = NormalGenerator
