#!/usr/bin/env python3
"""Times diffusers' PixArtTransformer2DModel forward (random init, float32, no grad) the way
`dmsurgery bench forward` times the engine's: one warm-up pass, then the mean of STEPS passes, batch 1,
a 300-token caption with every token kept, timestep 500; prints one JSON line with the peak RSS.

  python3 scripts/bench/pixart_torch.py CONFIG SIZE [STEPS] [THREADS]
"""
import json
import resource
import sys
import time

import torch
from diffusers import PixArtTransformer2DModel

config, size = sys.argv[1], int(sys.argv[2])
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 2
torch.set_num_threads(int(sys.argv[4]) if len(sys.argv) > 4 else 2)
with open(config) as f:
    cfg = json.load(f)
model = PixArtTransformer2DModel.from_config(cfg).eval()
gen = torch.Generator().manual_seed(0)
x = torch.randn(1, cfg["in_channels"], size, size, generator=gen)
context = torch.randn(1, 300, cfg["caption_channels"] or cfg["cross_attention_dim"], generator=gen)
mask = torch.ones(1, 300)
t = torch.tensor([500.0])
times = []
with torch.no_grad():
    for step in range(steps + 1):
        start = time.perf_counter()
        model(x, encoder_hidden_states=context, timestep=t, encoder_attention_mask=mask, return_dict=False)
        seconds = time.perf_counter() - start
        print(f"pass {step}: {seconds:.3f} s", file=sys.stderr)
        if step > 0:
            times.append(seconds)
print(json.dumps({"seconds_per_forward": sum(times) / len(times), "size": size,
                  "tokens": (size // cfg["patch_size"]) ** 2, "threads": torch.get_num_threads(),
                  "parameters": sum(p.numel() for p in model.parameters()),
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
