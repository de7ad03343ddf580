"""Loads files written by dmsurgery with the reference `safetensors` package and compares values.

Usage: reference_check.py WRITTEN SOURCE [DTYPE]
WRITTEN must load with safetensors (framework "pt") and hold, for every tensor of SOURCE, the values
torch gives for SOURCE's tensor cast to DTYPE (floating tensors only; others unchanged), bit for bit
(NaN compared as NaN). Prints one line per problem and exits 1 if any.
"""
import sys

import torch
from safetensors import safe_open

DTYPES = {"f16": torch.float16, "bf16": torch.bfloat16, "f32": torch.float32, "f64": torch.float64}


def load(path):
    with safe_open(path, framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def same_bits(a, b):
    """Identical bytes, or identical values where only NaN payloads differ."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.numel() == 0 or a.contiguous().view(torch.uint8).equal(b.contiguous().view(torch.uint8)):
        return True
    if not a.dtype.is_floating_point or "float4" in str(a.dtype):
        return False
    x, y = a.double(), b.double()
    nan_x, nan_y = torch.isnan(x), torch.isnan(y)
    return bool(nan_x.equal(nan_y) and x[~nan_x].view(torch.int64).equal(y[~nan_y].view(torch.int64)))


def main():
    written, source = sys.argv[1], sys.argv[2]
    target = DTYPES[sys.argv[3]] if len(sys.argv) > 3 else None
    got, _ = load(written)
    want, _ = load(source)
    problems = []
    if set(got) != set(want):
        problems.append(f"tensor names differ: {sorted(set(got) ^ set(want))[:5]}")
    for name, tensor in want.items():
        if name not in got:
            continue
        if target is not None and tensor.dtype.is_floating_point:
            tensor = tensor.to(target)
        if not same_bits(got[name], tensor):
            problems.append(f"{name}: {got[name].dtype} {tuple(got[name].shape)} differs from torch's {tensor.dtype} {tuple(tensor.shape)}")
    for p in problems:
        print(p)
    print(f"checked {len(want)} tensors, {len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
