#!/usr/bin/env python3
"""Make SDXL-size benchmark inputs: an SDXL-base UNet from seeded random init, its F16 copy, and latent
data files with SDXL's added conditioning (formats/training-data.md).

Pinned versions (fixtures/requirements.txt): torch==2.13.0+cpu, diffusers==0.42.1, safetensors==0.8.0,
numpy==2.4.6.

Usage:  python3 scripts/bench/make_sdxl.py OUTDIR [--tiny] [--side 128] [--items 2]

Writes
  OUTDIR/unet/      config.json + diffusion_pytorch_model.safetensors  (f32, 2,567,463,684 params, ~10.3 GB)
  OUTDIR/unet-f16/  the same weights as F16 (~5.1 GB): the teacher of the memory benchmark
  OUTDIR/data.safetensors    x0 [N,4,S,S], cond [N,77,2048], uncond [77,2048], cond_pooled [N,1280],
                             uncond_pooled [1280], time_ids [N,6] (S*8 x S*8 pixels, crop 0,0)
  OUTDIR/forget.safetensors  the same tensors for one item
--tiny uses engine/cond_sdxl's config (testing the harness in seconds).

Memory: the model is built in f32 (~10.3 GB), saved, halved in place and saved again: peak ~10.5 GB.
Run it alone (`free -g`): the machine's 24 GB are shared.
"""
import argparse
import json
import os
import time

import numpy as np
import torch
from diffusers import UNet2DConditionModel
from safetensors.numpy import save_file

# stabilityai/stable-diffusion-xl-base-1.0, unet/config.json, written out literally.
SDXL_UNET_CONFIG = {
    "act_fn": "silu",
    "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": 256,
    "attention_head_dim": [5, 10, 20],
    "block_out_channels": [320, 640, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 2048,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "projection_class_embeddings_input_dim": 2816,
    "sample_size": 128,
    "transformer_layers_per_block": [1, 2, 10],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "use_linear_projection": True,
}
SDXL_PARAMS = 2_567_463_684
ENGINE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fixtures", "engine")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--side", type=int, default=128)
    ap.add_argument("--items", type=int, default=2)
    a = ap.parse_args()
    t0 = time.time()
    if a.tiny:
        with open(os.path.join(ENGINE, "cond_sdxl", "config.json")) as f:
            config = {k: v for k, v in json.load(f).items() if not k.startswith("_")}
    else:
        config = SDXL_UNET_CONFIG
    torch.manual_seed(23)
    model = UNet2DConditionModel(**config)
    model.requires_grad_(False)
    n = sum(p.numel() for p in model.parameters())
    if not a.tiny:
        assert n == SDXL_PARAMS, n
    print(f"built {n:,} parameters in {time.time() - t0:.1f}s", flush=True)
    model.save_pretrained(os.path.join(a.outdir, "unet"), safe_serialization=True)
    print(f"saved unet/ at {time.time() - t0:.1f}s", flush=True)
    model.half()
    model.save_pretrained(os.path.join(a.outdir, "unet-f16"), safe_serialization=True)
    print(f"saved unet-f16/ at {time.time() - t0:.1f}s", flush=True)
    del model

    rng = np.random.default_rng(24)
    context, pooled = config["cross_attention_dim"], config["projection_class_embeddings_input_dim"] - 6 * config["addition_time_embed_dim"]

    def normal(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    pixels = float(a.side * 8)
    uncond, uncond_pooled = np.zeros((77, context), np.float32), np.zeros((pooled,), np.float32)

    def data(n):
        return {"x0": normal(n, 4, a.side, a.side), "cond": normal(n, 77, context), "uncond": uncond,
                "cond_pooled": normal(n, pooled), "uncond_pooled": uncond_pooled,
                "time_ids": np.tile(np.array([[pixels, pixels, 0, 0, pixels, pixels]], np.float32), (n, 1))}
    save_file(data(a.items), os.path.join(a.outdir, "data.safetensors"))
    save_file(data(1), os.path.join(a.outdir, "forget.safetensors"))
    print(f"wrote data.safetensors ({a.items} items) and forget.safetensors at {a.side}x{a.side} latents", flush=True)


if __name__ == "__main__":
    main()
