#!/usr/bin/env python3
"""Live cross-check of `dmsurgery prune --depth` against diffusers (DepthPruneCLITests runs it).

  depth_check.py inputs STUDENT IO [STUDENT IO ...]
      writes sample/timestep(/encoder_hidden_states) for each STUDENT's config
  depth_check.py check STUDENT TEACHER IO OURS [STUDENT TEACHER IO OURS ...]
      STUDENT loads with from_pretrained with no missing, unexpected or mismatched keys; every student
      tensor is byte-equal to the teacher tensor its dmsurgery.depth copy map names, and the map covers
      every student tensor; diffusers' forward on IO (float64) matches OURS' `sample` to 1e-4 (relative
      to the output's largest magnitude).
"""
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch
from diffusers import UNet2DConditionModel, UNet2DModel
from safetensors import safe_open
from safetensors.torch import load_file, save_file

WEIGHTS = "diffusion_pytorch_model.safetensors"


def model_class(folder):
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    return (UNet2DModel if config.get("_class_name") == "UNet2DModel" else UNet2DConditionModel), config


def inputs(student, io):
    cls, config = model_class(student)
    gen = torch.Generator().manual_seed(3)
    size = config.get("sample_size") or 8
    size = size[0] if isinstance(size, list) else size
    tensors = {"sample": torch.randn(2, config.get("in_channels", 4), size, size, generator=gen),
               "timestep": torch.tensor([5.0, 640.0])}
    if cls is UNet2DConditionModel:
        tensors["encoder_hidden_states"] = torch.randn(2, 3, config["cross_attention_dim"], generator=gen)
    save_file(tensors, io)


def check(student, teacher, io, ours):
    cls, _ = model_class(student)
    model, info = cls.from_pretrained(student, output_loading_info=True)
    for key in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        assert not info[key], f"{key}: {info[key]}"
    with safe_open(os.path.join(student, WEIGHTS), "pt") as f:
        copies = json.loads(f.metadata()["dmsurgery.depth"])["copies"]
    s = load_file(os.path.join(student, WEIGHTS))
    t = load_file(os.path.join(teacher, WEIGHTS))
    assert set(copies) == set(s), sorted(set(copies) ^ set(s))
    assert set(s) == set(model.state_dict()), "the weights file and the model differ"
    for name, source in copies.items():
        a, b = s[name], t[source]
        assert a.dtype == b.dtype and a.shape == b.shape and a.numpy().tobytes() == b.numpy().tobytes(), (name, source)
    x = load_file(io)
    args = {"sample": x["sample"].double(), "timestep": x["timestep"].double()}
    if "encoder_hidden_states" in x:
        args["encoder_hidden_states"] = x["encoder_hidden_states"].double()
    with torch.no_grad():
        want = model.double()(**args).sample
    got = load_file(ours)["sample"].double()
    error = ((got - want).abs().max() / want.abs().max().clamp_min(1e-12)).item()
    assert error <= 1e-4, f"forward differs from diffusers by {error}"
    print(f"ok: {len(copies)} tensors, forward error {error:.2e}")


if __name__ == "__main__":
    # One process for many students: importing torch and diffusers costs seconds.
    args = sys.argv[2:]
    if sys.argv[1] == "inputs":
        for k in range(0, len(args), 2):
            inputs(*args[k:k + 2])
    else:
        for k in range(0, len(args), 4):
            print(args[k], end=": ")
            check(*args[k:k + 4])
