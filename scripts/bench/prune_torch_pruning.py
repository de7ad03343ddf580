#!/usr/bin/env python3
"""dmsurgery prune against Torch-Pruning (DepGraph) on the same UNet, right after pruning (no fine-tune).

Model: UNet2DModel with the google/ddpm-cifar10-32 config (fixtures/engine/ddpm-cifar10-32), seeded random
weights moved off diffusers' init (as fixtures/engine/generate.py). Inputs: 4 samples 32x32, t = 10, 250,
500, 900. For ratio 0.3 and 0.5 and magnitude p = 1 and 2 it reports parameters and MACs removed
(Torch-Pruning's own counter `tp.utils.count_ops_and_params`, applied to every model alike) and the output
error against the dense model: max |y - y0| / max |y0| and ||y - y0|| / ||y0||.

Rows:
  dmsurgery          `dmsurgery prune --criterion lP --ratio R`; the torch model is rebuilt from the mask
  TP diff-pruning    Torch-Pruning as Diff-Pruning runs it: MagnitudeImportance(p, group_reduction="mean"),
                     every layer but conv_out, GroupNorm-aware (it keeps num_groups), heads removed whole
                     (num_heads, prune_num_heads, prune_head_dims=False, head_pruning_ratio = R); block
                     output widths shrink with the rest
  TP inner-only      the same, with every layer but ResNet conv1 (+ time_emb_proj) and to_q/to_k/to_v ignored as a
                     root: the nearest Torch-Pruning setting to dmsurgery's scope (block outputs kept)

Usage: python3 scripts/bench/prune_torch_pruning.py [--dmsurgery .build/release/dmsurgery] [--md]
Pinned: fixtures/requirements.txt (torch-pruning 1.6.1).
"""
import argparse
import copy
import importlib.util
import json
import os
import shutil
import subprocess
import tempfile

import torch
import torch_pruning as tp
from diffusers import UNet2DModel
from diffusers.models.attention_processor import Attention
from diffusers.models.resnet import Downsample2D, ResnetBlock2D, Upsample2D
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
spec = importlib.util.spec_from_file_location("prune_goldens", os.path.join(ROOT, "fixtures/pruning/generate.py"))
goldens = importlib.util.module_from_spec(spec)
spec.loader.exec_module(goldens)
torch.set_num_threads(2)


def model_and_inputs(folder):
    with open(os.path.join(ROOT, "fixtures/engine/ddpm-cifar10-32/config.json")) as f:
        cfg = json.load(f)
    torch.manual_seed(0)
    model = UNet2DModel(**{k: v for k, v in cfg.items() if not k.startswith("_")}).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=gen) / p[0].numel() ** 0.5)
            elif "norm" in name and name.endswith(".weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    os.makedirs(folder, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(folder, "diffusion_pytorch_model.safetensors"))
    cfg["_class_name"] = "UNet2DModel"
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f)
    inputs = {"sample": torch.randn(4, 3, 32, 32, generator=gen), "timestep": torch.tensor([10, 250, 500, 900])}
    return model, inputs


def measure(model, inputs, dense_out):
    example = {"sample": inputs["sample"][:1], "timestep": inputs["timestep"][:1]}
    macs, params = tp.utils.count_ops_and_params(model, example)
    with torch.no_grad():
        y = model(**inputs).sample
    d = y - dense_out
    return macs, params, (d.abs().max() / dense_out.abs().max()).item(), (d.norm() / dense_out.norm()).item()


def torch_pruning(model, inputs, ratio, p, inner_only):
    model = copy.deepcopy(model)
    example = {"sample": inputs["sample"][:1], "timestep": inputs["timestep"][:1]}
    heads = {}
    head_dims = {}
    for m in model.modules():
        if isinstance(m, Attention):
            for lin in (m.to_q, m.to_k, m.to_v):
                heads[lin] = m.heads
            head_dims[m] = m.to_q.out_features // m.heads
    roots = set()
    if inner_only:
        for m in model.modules():
            if isinstance(m, ResnetBlock2D):
                roots.update([m.conv1, m.time_emb_proj])
            if isinstance(m, Attention):
                roots.update([m.to_q, m.to_k, m.to_v])
        ignored = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m not in roots]
    else:
        ignored = [model.conv_out]
    pruner = tp.pruner.MetaPruner(
        model, example, importance=tp.importance.MagnitudeImportance(p=p, group_reduction="mean"),
        pruning_ratio=ratio, ignored_layers=ignored, num_heads=heads, prune_num_heads=True,
        prune_head_dims=False, head_pruning_ratio=ratio)
    pruner.step()
    for m in model.modules():
        if isinstance(m, Attention):
            m.heads = m.to_q.out_features // head_dims[m]
            m.inner_dim = m.to_q.out_features
        if isinstance(m, (Upsample2D, Downsample2D)):
            m.channels = m.conv.in_channels
            m.out_channels = m.conv.out_channels
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dmsurgery", default=os.path.join(ROOT, ".build/release/dmsurgery"))
    ap.add_argument("--md", action="store_true")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="prune-bench-")
    try:
        run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args, work):
    folder = os.path.join(work, "model")
    model, inputs = model_and_inputs(folder)
    with torch.no_grad():
        dense_out = model(**inputs).sample
    base_macs, base_params, _, _ = measure(model, inputs, dense_out)
    rows = []
    for ratio in (0.3, 0.5):
        for p in (1, 2):
            mask = os.path.join(work, f"mask.{ratio}.{p}.json")
            subprocess.run([args.dmsurgery, "prune", "-q", "--criterion", f"l{p}", "--ratio", str(ratio), folder,
                            "--emit-mask", mask], check=True)
            with open(mask) as f:
                kept = {l["name"]: l["kept"] for l in json.load(f)["layers"]}
            ours = goldens.rebuild(copy.deepcopy(model), kept)
            rows.append(("dmsurgery", ratio, p) + measure(ours, inputs, dense_out))
            for label, inner in (("TP diff-pruning", False), ("TP inner-only", True)):
                try:
                    pruned = torch_pruning(model, inputs, ratio, p, inner)
                    rows.append((label, ratio, p) + measure(pruned, inputs, dense_out))
                except Exception as e:  # report what Torch-Pruning cannot do instead of hiding the row
                    rows.append((label, ratio, p, None, None, None, None))
                    print(f"{label} ratio {ratio} p {p}: {type(e).__name__}: {e}")
    print(f"dense: {base_params / 1e6:.3f} M parameters, {base_macs / 1e9:.4f} GMACs per 32x32 sample")
    header = "| method | ratio | p | params (M) | params removed | GMACs | MACs removed | max rel err | rel L2 err |"
    print(header)
    print("|" + "---|" * 9)
    for label, ratio, p, macs, params, emax, el2 in rows:
        if macs is None:
            print(f"| {label} | {ratio} | {p} | failed | | | | | |")
            continue
        print(f"| {label} | {ratio} | {p} | {params / 1e6:.3f} | {100 * (1 - params / base_params):.1f}% | {macs / 1e9:.4f} | "
              f"{100 * (1 - macs / base_macs):.1f}% | {emax:.3f} | {el2:.3f} |")


if __name__ == "__main__":
    main()
