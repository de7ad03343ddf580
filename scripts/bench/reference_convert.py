#!/usr/bin/env python3
"""Reference for `dmsurgery convert IN OUT --dtype bf16`: load with safetensors.torch, cast every floating
tensor to bfloat16 (torch rounds to nearest even), save with the same metadata.
Pinned: torch==2.13.0+cpu, safetensors==0.8.0 (fixtures/requirements.txt).

Usage: python3 scripts/bench/reference_convert.py IN OUT
"""
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with safe_open(src, framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(src)
    for k, v in tensors.items():
        if v.is_floating_point():
            tensors[k] = v.to(torch.bfloat16)
    save_file(tensors, dst, metadata=meta)


if __name__ == "__main__":
    main()
