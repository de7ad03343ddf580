#!/usr/bin/env python3
"""Make the benchmark checkpoints: an SD-1.5-size UNet2DConditionModel from seeded random init.

Pinned versions (fixtures/requirements.txt): torch==2.13.0+cpu, diffusers==0.42.1, safetensors==0.8.0,
numpy==2.4.6, huggingface_hub==2.4.0.

Usage:  python3 scripts/bench/make_sd15.py OUTDIR [--tiny]

Writes
  OUTDIR/unet/config.json + OUTDIR/unet/diffusion_pytorch_model.safetensors    (f32, 859,520,964 params, ~3.44 GB)
  OUTDIR/unet2/config.json + OUTDIR/unet2/diffusion_pytorch_model.safetensors  (same, every value perturbed by a
      relative ~1e-3 and one tensor changed more, for `diff`)
--tiny uses the fixture model's config instead (for testing the harness in seconds).

Memory: the model is built once (~3.5 GB), saved (safetensors writes from the tensors' memory, no copy),
perturbed in place one tensor at a time and saved again: peak ~4 GB.
"""
import argparse
import os
import time

import torch
from diffusers import UNet2DConditionModel

# The Stable Diffusion 1.5 UNet (runwayml/stable-diffusion-v1-5, unet/config.json), written out literally.
SD15_UNET_CONFIG = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}
SD15_PARAMS = 859_520_964

TINY_CONFIG = {
    "sample_size": 16, "in_channels": 4, "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"], "mid_block_type": "UNetMidBlock2DCrossAttn",
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "block_out_channels": [16, 32], "layers_per_block": 1,
    "cross_attention_dim": 32, "attention_head_dim": 8, "norm_num_groups": 8,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--tiny", action="store_true")
    a = ap.parse_args()
    t0 = time.time()
    torch.manual_seed(15)
    model = UNet2DConditionModel(**(TINY_CONFIG if a.tiny else SD15_UNET_CONFIG))
    model.requires_grad_(False)
    n = sum(p.numel() for p in model.parameters())
    if not a.tiny:
        assert n == SD15_PARAMS, n
    print(f"built {n:,} parameters in {time.time() - t0:.1f}s", flush=True)
    model.save_pretrained(os.path.join(a.outdir, "unet"), safe_serialization=True)
    print(f"saved unet/ at {time.time() - t0:.1f}s", flush=True)
    g = torch.Generator().manual_seed(16)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.mul_(1 + 1e-3 * torch.randn(p.shape, generator=g))
        # one tensor with a large change
        model.conv_in.weight.mul_(-1)
    model.save_pretrained(os.path.join(a.outdir, "unet2"), safe_serialization=True)
    print(f"saved unet2/ at {time.time() - t0:.1f}s", flush=True)


if __name__ == "__main__":
    main()
