// The TensorMath module; see ARCHITECTURE.md.
