#!/usr/bin/env python3
"""The GGUF benchmark's input without a heavy job: an SD-1.5-size UNet safetensors file (the shapes of
make_sd15.py's model, 859,520,964 f32 parameters, 3.44 GB) written tensor by tensor, so the peak
memory is one tensor (~60 MB) instead of the whole model.

Pinned: torch 2.13.0+cpu, diffusers 0.42.1, numpy 2.4.6 (fixtures/requirements.txt).

    python3 scripts/bench/gguf_make_input.py DATA_DIR     # writes DATA_DIR/unet/diffusion_pytorch_model.safetensors

The shapes come from diffusers' UNet2DConditionModel built on torch's meta device (no memory); the
values are seeded gaussians scaled by 1/sqrt(fan_in), the magnitude of a default init, which is all
the quantizers' cost depends on. Tensors are in the model's state-dict order.
"""
import json
import os
import struct
import sys

import numpy as np
import torch
from diffusers import UNet2DConditionModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_sd15 import SD15_UNET_CONFIG  # noqa: E402


def main(data):
    with torch.device("meta"):
        model = UNet2DConditionModel(**SD15_UNET_CONFIG)
    shapes = [(name, tuple(t.shape)) for name, t in model.state_dict().items()]
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in shapes:
        n = int(np.prod(shape)) * 4
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    out = os.path.join(data, "unet")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(15)
    path = os.path.join(out, "diffusion_pytorch_model.safetensors")
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for name, shape in shapes:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
            f.write((rng.standard_normal(shape, dtype=np.float32) / np.float32(np.sqrt(fan_in))).tobytes())
    os.replace(path + ".tmp", path)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(SD15_UNET_CONFIG, f, indent=2)
    print(path, sum(int(np.prod(s)) for _, s in shapes), "parameters")


if __name__ == "__main__":
    main(sys.argv[1])
