#!/usr/bin/env python3
"""Make the pickle benchmark's input: an SD-1.5-size UNet (seeded random init, the config of
make_sd15.py) saved by torch.save as an LDM-style .ckpt: {"state_dict": {"model.diffusion_model.…"},
"global_step": 0} (torch's zip format, f32, 3.44 GB). Memory: the model once (~3.5 GB).

Usage:  python3 scripts/bench/make_sd15_ckpt.py OUTDIR [--tiny]     (writes OUTDIR/sd15.ckpt)
Pinned versions: fixtures/requirements.txt (torch 2.13.0+cpu, diffusers 0.42.1).
"""
import argparse
import os
import sys

import torch

# A torchvision built for another torch breaks diffusers' optional imports; the UNet needs none of it.
sys.modules.setdefault("torchvision", None)
from diffusers import UNet2DConditionModel  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_sd15 import SD15_UNET_CONFIG, TINY_CONFIG  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("out")
parser.add_argument("--tiny", action="store_true")
args = parser.parse_args()
os.makedirs(args.out, exist_ok=True)
torch.manual_seed(0)
unet = UNet2DConditionModel(**(TINY_CONFIG if args.tiny else SD15_UNET_CONFIG))
state = {"model.diffusion_model." + k: v for k, v in unet.state_dict().items()}
torch.save({"state_dict": state, "global_step": 0}, os.path.join(args.out, "sd15.ckpt"))
print(f"{sum(v.numel() for v in state.values()):,} parameters -> {args.out}/sd15.ckpt")
