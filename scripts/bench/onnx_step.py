#!/usr/bin/env python3
"""One UNet step on ONNX Runtime's CPU provider, for scripts/bench/onnx_run.

Usage:  python3 scripts/bench/onnx_step.py inputs OUT.safetensors [BATCH SIDE TOKENS CONTEXT]
        python3 scripts/bench/onnx_step.py run MODEL.onnx INPUTS.safetensors OUT.safetensors
inputs writes seeded `sample` [B, 4, SIDE, SIDE], `timestep` [B] and `encoder_hidden_states`
[B, TOKENS, CONTEXT] (defaults 2, 64, 77, 768: one classifier-free-guided step of a 512x512 image).
run checks MODEL (onnx.checker, full_check; by path, so external data is allowed), opens an
InferenceSession (CPU provider, all cores) and runs it twice on the inputs; prints
`load SECONDS`, `step SECONDS` (the second run) and writes `out_sample`.
Pinned: onnx==1.23.2, onnxruntime==1.32.0, numpy==2.4.6, safetensors==0.8.0.
"""
import sys
import time

import numpy as np
from safetensors.numpy import load_file, save_file


def inputs(out, batch=2, side=64, tokens=77, context=768):
    batch, side, tokens, context = int(batch), int(side), int(tokens), int(context)
    rng = np.random.default_rng(21)
    save_file({"sample": rng.standard_normal((batch, 4, side, side), dtype=np.float32),
               "timestep": np.full((batch,), 500, dtype=np.float32),
               "encoder_hidden_states": rng.standard_normal((batch, tokens, context), dtype=np.float32)}, out)


def run(model, inputs_path, out):
    import onnx
    import onnxruntime as ort
    onnx.checker.check_model(model, full_check=True)
    feed = load_file(inputs_path)
    start = time.perf_counter()
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    print(f"load {time.perf_counter() - start:.2f}")
    names = [i.name for i in session.get_inputs()]
    session.run(["out_sample"], {n: feed[n] for n in names})
    start = time.perf_counter()
    result = session.run(["out_sample"], {n: feed[n] for n in names})[0]
    print(f"step {time.perf_counter() - start:.2f}")
    save_file({"out_sample": result}, out)


if __name__ == "__main__":
    if sys.argv[1] == "inputs":
        inputs(*sys.argv[2:])
    else:
        run(*sys.argv[2:5])
