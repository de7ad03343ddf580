#!/usr/bin/env python3
"""Reference for `dmsurgery inspect`: list every tensor's name, dtype and shape with the Python safetensors
package (header only; no torch import).  Pinned: safetensors==0.8.0, numpy==2.4.6 (fixtures/requirements.txt).

Usage: python3 scripts/bench/reference_inspect.py FILE
"""
import sys

from safetensors import safe_open


def main():
    out = []
    total = 0
    with safe_open(sys.argv[1], framework="numpy") as f:
        meta = f.metadata()
        for k in f.keys():
            s = f.get_slice(k)
            shape = s.get_shape()
            n = 1
            for d in shape:
                n *= d
            total += n
            out.append(f"{k}\t{s.get_dtype()}\t{shape}")
    if meta:
        for k, v in meta.items():
            out.append(f"metadata\t{k}\t{v[:80]}")
    out.append(f"tensors\t{len(out)}\tparameters\t{total}")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
