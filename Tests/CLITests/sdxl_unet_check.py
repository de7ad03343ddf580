"""A random-init SDXL-shaped UNet2DConditionModel at reduced widths, against `dmsurgery forward --backward`.

Usage:
  sdxl_unet_check.py make DIR    writes DIR/model/ (config.json, f32 weights) and DIR/io.safetensors
                                 (sample, timestep, encoder_hidden_states, text_embeds, time_ids, cotangent)
                                 and DIR/bare.safetensors (the same without text_embeds and time_ids)
  sdxl_unet_check.py check DIR   compares DIR/out.safetensors (what dmsurgery wrote) with diffusers in
                                 float64: the output and the gradients of sample, encoder_hidden_states,
                                 text_embeds, time_ids and every parameter, each to 1e-4 relative
                                 (max |a - b| / max |b|); prints the worst and exits 1 on any miss

SDXL's pattern: a first stage without attention, deeper transformers further down (1, 1, 2 here for
1, 2, 10), an explicit reverse_transformer_layers_per_block that is not the mirror of the down depths,
linear projections, addition_embed_type text_time with 6 time ids of addition_time_embed_dim 8 after a
pooled embedding of 32.
"""
import json
import os
import sys

import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import load_file, save_file

POOLED = 32
CONFIG = dict(
    sample_size=16, in_channels=4, out_channels=4, block_out_channels=(32, 64, 64),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    layers_per_block=2, attention_head_dim=[2, 4, 4], cross_attention_dim=64, norm_num_groups=16,
    transformer_layers_per_block=[1, 1, 2], reverse_transformer_layers_per_block=[1, 2, 1],
    use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
    projection_class_embeddings_input_dim=POOLED + 6 * 8,
)
TOLERANCE = 1e-4


def build():
    torch.manual_seed(0)
    model = UNet2DConditionModel(**CONFIG).eval()
    gen = torch.Generator().manual_seed(23)
    with torch.no_grad():  # away from diffusers' init: no zero biases, no unit norms
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=gen) / p[0].numel() ** 0.5)
            elif ".norm" in name and name.endswith(".weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    return model, gen


def make(directory):
    model, gen = build()
    os.makedirs(os.path.join(directory, "model"), exist_ok=True)
    model.save_pretrained(os.path.join(directory, "model"), safe_serialization=True)
    batch = 2
    io = {
        "sample": torch.randn(batch, 4, 16, 16, generator=gen),
        "timestep": torch.tensor([999.0, 261.0]),
        "encoder_hidden_states": torch.randn(batch, 7, 64, generator=gen),
        "text_embeds": torch.randn(batch, POOLED, generator=gen),
        "time_ids": torch.tensor([[1024.0, 1024.0, 0.0, 0.0, 1024.0, 1024.0], [768.0, 1344.0, 64.0, 16.0, 832.0, 1216.0]]),
        "cotangent": torch.randn(batch, 4, 16, 16, generator=gen),
    }
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(directory, "io.safetensors"))
    bare = {k: v.contiguous() for k, v in io.items() if k not in ("text_embeds", "time_ids")}
    save_file(bare, os.path.join(directory, "bare.safetensors"))


def check(directory):
    model, _ = build()
    model = model.double()
    io = load_file(os.path.join(directory, "io.safetensors"))
    got = load_file(os.path.join(directory, "out.safetensors"))
    inputs = {k: io[k].double().requires_grad_(True) for k in ("sample", "encoder_hidden_states", "text_embeds", "time_ids")}
    out = model(inputs["sample"], io["timestep"].double(), encoder_hidden_states=inputs["encoder_hidden_states"],
                added_cond_kwargs={"text_embeds": inputs["text_embeds"], "time_ids": inputs["time_ids"]}).sample
    names = list(inputs) + [n for n, _ in model.named_parameters()]
    grads = torch.autograd.grad((out * io["cotangent"].double()).sum(), list(inputs.values()) + list(model.parameters()))
    want = {"sample": out, **{"grad." + n: g for n, g in zip(names, grads)}}
    problems, worst = [], {}
    if set(got) != set(want):
        problems.append(f"tensor names differ: {sorted(set(got) ^ set(want))[:6]}")
    for name, ref in want.items():
        if name not in got:
            continue
        ref = ref.detach()
        mine = got[name].double()
        if mine.shape != ref.shape:
            problems.append(f"{name}: shape {tuple(mine.shape)}, diffusers {tuple(ref.shape)}")
            continue
        scale = ref.abs().max().item()
        error = (mine - ref).abs().max().item() / (scale if scale > 0 else 1.0)
        kind = "output" if name == "sample" else ("input gradient" if name[5:] in inputs else "weight gradient")
        worst[kind] = max(worst.get(kind, 0.0), error)
        if not error <= TOLERANCE:
            problems.append(f"{name}: relative error {error:.3g} > {TOLERANCE}")
    for p in problems:
        print(p)
    print(f"checked {len(want)} tensors; worst relative error: "
          + ", ".join(f"{k} {v:.2e}" for k, v in sorted(worst.items())))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    torch.set_num_threads(2)
    {"make": make, "check": check}[sys.argv[1]](sys.argv[2])
