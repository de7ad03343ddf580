"""Compares a safetensors file written by `dmsurgery convert X.pt out.safetensors` with what
torch.load(X.pt, weights_only=True) returns, flattened by the reader's documented rule
(fixtures/pickle/generate.py: flatten). Exit 0 when names, dtypes, shapes and bits all agree."""
import os
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "pickle"))
from generate import flatten  # noqa: E402

converted, original = sys.argv[1], sys.argv[2]
ours = load_file(converted)
theirs = {k: v.detach().contiguous() for k, v in flatten(torch.load(original, weights_only=True)).items()}
problems = []
if set(ours) != set(theirs):
    problems.append(f"names differ: only ours {sorted(set(ours) - set(theirs))[:5]}, only torch {sorted(set(theirs) - set(ours))[:5]}")
for name in set(ours) & set(theirs):
    a, b = ours[name], theirs[name]
    if a.dtype != b.dtype or a.shape != b.shape:
        problems.append(f"{name}: {a.dtype}{list(a.shape)} vs torch {b.dtype}{list(b.shape)}")
    elif a.numel() and not torch.equal(a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8)):
        problems.append(f"{name}: values differ")
print("\n".join(problems) or f"{len(ours)} tensors agree with torch.load")
sys.exit(1 if problems else 0)
