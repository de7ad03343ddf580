#!/usr/bin/env python3
"""diffusers' OnnxStableDiffusionPipeline on ONNX Runtime's CPU provider, for scripts/bench/onnx_pipeline.

Usage:  python3 scripts/bench/onnx_pipeline_run.py FOLDER PROMPT.txt LATENTS.safetensors STEPS GUIDANCE OUT.safetensors

Loads FOLDER (with a DDIM scheduler on its scheduler config, as `dmsurgery sample` samples), runs the prompt from LATENTS' `latents` and prints
`load SECONDS` (from_pretrained: every InferenceSession), `step SECONDS` (median time between the
per-step callbacks: one guided UNet step at batch 2) and `call SECONDS` (text encoder, every step, VAE
decode); writes the final latents (before the VAE) as `latents`.
Pinned: diffusers==0.42.1, onnxruntime==1.32.0, numpy==2.4.6, safetensors==0.8.0.
"""
import os
import statistics
import sys
import time

os.environ["HF_HUB_OFFLINE"] = "1"
import numpy as np
from safetensors.numpy import load_file, save_file


def main(folder, prompt_path, latents_path, steps, guidance, out):
    import diffusers
    diffusers.logging.set_verbosity_error()
    with open(prompt_path, encoding="utf-8") as f:
        prompt = f.read().strip()
    latents = load_file(latents_path)["latents"]
    start = time.perf_counter()
    pipe = diffusers.OnnxStableDiffusionPipeline.from_pretrained(folder, provider="CPUExecutionProvider")
    print(f"load {time.perf_counter() - start:.2f}")
    # dmsurgery samples with DDIM on the pipeline's scheduler config (whatever class it names).
    pipe.scheduler = diffusers.DDIMScheduler.from_config(pipe.scheduler.config)
    marks, final = [], {}

    def keep(step, timestep, value):
        marks.append(time.perf_counter())
        final["latents"] = np.ascontiguousarray(value)

    start = time.perf_counter()
    marks.append(start)
    pipe(prompt, latents=latents, num_inference_steps=int(steps), guidance_scale=float(guidance),
         height=latents.shape[2] * 8, width=latents.shape[3] * 8, output_type="np", callback=keep, callback_steps=1)
    print(f"call {time.perf_counter() - start:.2f}")
    # The first interval also holds the text encoder; the rest are one UNet step each.
    steps_only = [b - a for a, b in zip(marks[1:], marks[2:])] or [marks[1] - marks[0]]
    print(f"step {statistics.median(steps_only):.2f}")
    save_file(final, out)


if __name__ == "__main__":
    main(*sys.argv[1:7])
