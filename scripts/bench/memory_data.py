#!/usr/bin/env python3
"""Latent data and forget files for SD-1.5-size training benchmarks (formats/training-data.md).

Pinned versions (fixtures/requirements.txt): numpy==2.4.6, safetensors==0.8.0.

Usage:  python3 scripts/bench/memory_data.py OUTDIR [--side 64] [--items 2]

Writes OUTDIR/data.safetensors (x0 [N,4,S,S], cond [N,77,768], uncond [77,768]) and
OUTDIR/forget.safetensors (x0 [1,4,S,S], cond [1,77,768], uncond [77,768]): seeded normal values of
the sizes SD-1.5 trains on (64x64 latents = 512x512 images, CLIP ViT-L/14 prompt states), so that
`unlearn` runs at SD size without a text encoder or VAE. Deterministic: same files every run.
"""
import argparse
import os

import numpy as np
from safetensors.numpy import save_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--side", type=int, default=64)
    ap.add_argument("--items", type=int, default=2)
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    rng = np.random.default_rng(12)

    def normal(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    uncond = normal(77, 768)
    save_file({"x0": normal(a.items, 4, a.side, a.side), "cond": normal(a.items, 77, 768), "uncond": uncond},
              os.path.join(a.outdir, "data.safetensors"))
    save_file({"x0": normal(1, 4, a.side, a.side), "cond": normal(1, 77, 768), "uncond": uncond},
              os.path.join(a.outdir, "forget.safetensors"))
    print(f"wrote {a.outdir}/data.safetensors ({a.items} items) and forget.safetensors at {a.side}x{a.side}")


if __name__ == "__main__":
    main()
