"""ONNX files written by `dmsurgery convert … --to onnx`, checked and run by the reference tools.

Run: python3 Tests/CLITests/onnx_check.py run MODEL.onnx INPUTS.safetensors OUT.safetensors
     python3 Tests/CLITests/onnx_check.py blocks F32.onnx QUANTIZED.onnx BITS BLOCK_SIZE
     python3 Tests/CLITests/onnx_check.py text MODEL.onnx PIPELINE PROMPTS.json OUT.safetensors
     python3 Tests/CLITests/onnx_check.py pipeline FOLDER PROMPTS.json LATENTS.safetensors STEPS GUIDANCE OUT.safetensors
run checks MODEL with onnx.checker.check_model(full_check=True), runs it on ONNX Runtime's CPU provider
with the INPUTS tensors the graph declares (cast to the declared element types) and writes every output
under its graph name. blocks runs onnxruntime's MatMulNBitsQuantizer (RTN, asymmetric: its defaults)
on F32 and requires every `_Q<bits>`, `_scales` and `_zero_points` initializer it writes to equal
QUANTIZED's byte for byte (and QUANTIZED to have no others); prints how many it compared. text tokenizes the prompts as the pipeline does (CLIPTokenizer, padded to its
max length, int32 ids), runs MODEL on them and writes its outputs with transformers' CLIPTextModel
pooler_output on the same ids (`reference_pooler_output`). pipeline checks each component, loads FOLDER with diffusers'
OnnxStableDiffusionPipeline (its DDIM scheduler), runs it from the given initial `latents` and writes
the final latents (the step callback's last value) as `latents`.
"""
import json
import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"
sys.modules["torchvision"] = None  # the machine's torchvision does not match its torch; not needed
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from safetensors.numpy import load_file, save_file  # noqa: E402

TYPES = {"tensor(float)": np.float32, "tensor(int32)": np.int32, "tensor(int64)": np.int64}


def check(path):
    onnx.checker.check_model(path, full_check=True)


def run(model, inputs, out):
    check(model)
    tensors = load_file(inputs)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    feed = {i.name: tensors[i.name].astype(TYPES[i.type]) for i in session.get_inputs()}
    names = [o.name for o in session.get_outputs()]
    results = session.run(names, feed)
    save_file({name: np.ascontiguousarray(value) for name, value in zip(names, results)}, out)


def blocks(f32, quantized, bits, block_size):
    import logging
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
    logging.disable(logging.INFO)
    check(quantized)
    reference = MatMulNBitsQuantizer(onnx.load(f32), bits=int(bits), block_size=int(block_size), is_symmetric=False)
    reference.process()
    suffixes = (f"_Q{bits}", "_scales", "_zero_points")
    want = {t.name: onnx.numpy_helper.to_array(t) for t in reference.model.model.graph.initializer if t.name.endswith(suffixes)}
    got = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(quantized).graph.initializer if t.name.endswith(suffixes)}
    assert want.keys() == got.keys(), sorted(set(want) ^ set(got))[:5]
    for name, value in want.items():
        assert value.dtype == got[name].dtype and value.shape == got[name].shape, (name, value.shape, got[name].shape)
        assert value.tobytes() == got[name].tobytes(), name
    print(len(want))


def text(model, folder, prompts_path, out):
    import torch
    import transformers
    check(model)
    with open(prompts_path, encoding="utf-8") as f:
        prompts = json.load(f)
    tokenizer = transformers.CLIPTokenizer.from_pretrained(os.path.join(folder, "tokenizer"))
    ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="np").input_ids.astype(np.int32)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    last, pooled = session.run(["last_hidden_state", "pooler_output"], {"input_ids": ids})
    reference = transformers.CLIPTextModel.from_pretrained(os.path.join(folder, "text_encoder")).eval()
    with torch.no_grad():
        torch_pooled = reference(input_ids=torch.from_numpy(ids.astype(np.int64))).pooler_output.numpy()
    save_file({"last_hidden_state": last, "pooler_output": pooled, "reference_pooler_output": torch_pooled}, out)


def pipeline(folder, prompts_path, latents_path, steps, guidance, out):
    import diffusers
    diffusers.logging.set_verbosity_error()
    for part in ["text_encoder", "unet", "vae_encoder", "vae_decoder"]:
        check(os.path.join(folder, part, "model.onnx"))
    with open(prompts_path, encoding="utf-8") as f:
        prompts = json.load(f)
    latents = load_file(latents_path)["latents"]
    pipe = diffusers.OnnxStableDiffusionPipeline.from_pretrained(folder, provider="CPUExecutionProvider")
    assert isinstance(pipe.scheduler, diffusers.DDIMScheduler), type(pipe.scheduler)
    final = {}

    def keep(step, timestep, value):
        final["latents"] = np.ascontiguousarray(value)

    # The pipeline sizes latents as 1/8 of the image; the tiny VAE's factor does not matter to the UNet.
    pipe(prompts, latents=latents, num_inference_steps=int(steps), guidance_scale=float(guidance),
         height=latents.shape[2] * 8, width=latents.shape[3] * 8, output_type="np", callback=keep, callback_steps=1)
    save_file(final, out)


if __name__ == "__main__":
    if sys.argv[1] == "run":
        run(*sys.argv[2:5])
    elif sys.argv[1] == "blocks":
        blocks(*sys.argv[2:6])
    elif sys.argv[1] == "text":
        text(*sys.argv[2:6])
    else:
        pipeline(*sys.argv[2:8])
