import TensorFormats

/// A checkpoint surgery cannot be done (a mask that does not fit the model, a depth plan the config
/// contradicts, an original-layout file whose family the weights do not tell): Surgery's `ModuleError`.
/// The codes are the formats' (formats/errors.md): what is wrong is a file's content, named as
/// TensorFormats names it; errors of the files read pass through as `TensorFormatError`.
public typealias SurgeryError = ModuleError<SurgeryErrors>

/// The tag of the Surgery module's errors.
public enum SurgeryErrors: ErrorModule {}
