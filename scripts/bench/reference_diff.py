#!/usr/bin/env python3
"""Reference for `dmsurgery diff A B`: per tensor present in both, max abs error, relative L2 norm
(||a-b|| / ||a||) and cosine similarity, computed in float64 by torch; tensors only in A or B and
dtype/shape changes are listed. Reads tensor by tensor (safe_open), one pair in memory at a time.
Exit status: 0 identical, 1 differ (like `dmsurgery diff`).
Pinned: torch==2.13.0+cpu, safetensors==0.8.0 (fixtures/requirements.txt).

Usage: python3 scripts/bench/reference_diff.py A B
"""
import sys

import torch
from safetensors import safe_open


def main():
    a_path, b_path = sys.argv[1], sys.argv[2]
    differ = False
    with safe_open(a_path, framework="pt") as fa, safe_open(b_path, framework="pt") as fb:
        ka, kb = set(fa.keys()), set(fb.keys())
        for k in sorted(ka - kb):
            print(f"only in A\t{k}")
            differ = True
        for k in sorted(kb - ka):
            print(f"only in B\t{k}")
            differ = True
        changed = 0
        for k in sorted(ka & kb):
            a, b = fa.get_tensor(k), fb.get_tensor(k)
            if a.shape != b.shape:
                print(f"shape\t{k}\t{list(a.shape)} -> {list(b.shape)}")
                differ = True
                continue
            note = "" if a.dtype == b.dtype else f"\t{a.dtype} -> {b.dtype}"
            if a.dtype == b.dtype and torch.equal(a, b):
                continue
            a64, b64 = a.double().flatten(), b.double().flatten()
            d = a64 - b64
            max_abs = d.abs().max().item() if d.numel() else 0.0
            na, nb = torch.linalg.vector_norm(a64).item(), torch.linalg.vector_norm(b64).item()
            rel_l2 = torch.linalg.vector_norm(d).item() / na if na else float("inf")
            cos = (a64 @ b64).item() / (na * nb) if na and nb else float("nan")
            print(f"{k}\tmax_abs={max_abs:.6g}\trel_l2={rel_l2:.6g}\tcosine={cos:.9f}{note}")
            changed += 1
            differ = True
        print(f"changed\t{changed}\tof\t{len(ka & kb)}")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
