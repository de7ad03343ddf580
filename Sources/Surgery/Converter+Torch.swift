import Foundation
import TensorFormats

extension Converter {
    /// Writes the plan's tensors as a `torch.save` zip (`TorchZipWriter`), streamed in the plan's order.
    /// The format has no metadata: a model config does not travel (the caller says so). The plan keeps
    /// the input's storage order, so a stream is consumed as it comes.
    public static func writeTorch(_ plan: ConvertPlan, to output: OutputFile, progress: ProgressSink? = nil,
                                  result: inout ConvertResult) throws {
        let stem = ((output.path == "-" ? "archive" : (output.path as NSString).lastPathComponent) as NSString).deletingPathExtension
        let writer = try TorchZipWriter(tensors: plan.tensors.map { ($0.name, $0.dtype, $0.shape) }, archive: stem, file: output.path)
        var localResult = result
        var index = 0
        try writer.write(to: output) { _, sink in
            try emit(plan.tensors[index], from: plan.checkpoint, sink: sink, progress: progress, result: &localResult)
            index += 1
        }
        localResult.bytesWritten += output.bytesWritten
        result = localResult
    }
}
