#!/usr/bin/env python3
"""Live cross-check of `dmsurgery prune --depth koala-1b|koala-700m` and `prune --ratio` on an SDXL-shaped
UNet against diffusers (KOALACLITests runs it).

  koala_check.py run DIR   (one process: importing torch and diffusers costs seconds)
      builds DIR/teacher/ (a random-init SDXL-shaped UNet2DConditionModel at reduced widths: SDXL's
      three stages, no attention in the first, transformer depths 1, 2, 10, text_time conditioning)
      and DIR/io.safetensors (sample, timestep, encoder_hidden_states, text_embeds, time_ids); runs
      `$DMS prune --depth V DIR/teacher DIR/V/` and `$DMS forward --blocks` on DIR/V (into
      DIR/V.ours.safetensors) and on the teacher (DIR/teacher.blocks.safetensors) for V in koala-1b,
      koala-700m; then checks each student:
      it loads with from_pretrained with no missing, unexpected or mismatched keys; its config is
      KOALA's (layers_per_block 1, the deepest transformers 6 or 5 blocks deep, no mid block for 700m);
      the dmsurgery.depth copy map is the one this script derives on its own (down stages keep their
      first layer, up stages their first and last, transformers their first blocks) and covers every
      student tensor; every student tensor equals the teacher tensor the map names, byte for byte;
      diffusers' forward on IO (float64) matches dmsurgery's `sample` to 1e-4 relative.
"""
import json
import os
import re
import subprocess
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch
from diffusers import UNet2DConditionModel
from safetensors import safe_open
from safetensors.torch import load_file, save_file

WEIGHTS = "diffusion_pytorch_model.safetensors"
POOLED = 32
CONFIG = dict(
    sample_size=16, in_channels=4, out_channels=4, block_out_channels=(32, 64, 64),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    layers_per_block=2, attention_head_dim=[2, 4, 4], cross_attention_dim=64, norm_num_groups=16,
    transformer_layers_per_block=[1, 2, 10], use_linear_projection=True,
    addition_embed_type="text_time", addition_time_embed_dim=8, projection_class_embeddings_input_dim=POOLED + 6 * 8,
)
KEPT = {"koala-1b": 6, "koala-700m": 5}


def make(directory):
    torch.manual_seed(0)
    model = UNet2DConditionModel(**CONFIG).eval()
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():  # away from diffusers' init: no zero biases or zero output projections
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=gen) / p[0].numel() ** 0.5)
            elif ".norm" in name and name.endswith(".weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    model.save_pretrained(os.path.join(directory, "teacher"), safe_serialization=True)
    io = {
        "sample": torch.randn(2, 4, 16, 16, generator=gen),
        "timestep": torch.tensor([999.0, 261.0]),
        "encoder_hidden_states": torch.randn(2, 7, 64, generator=gen),
        "text_embeds": torch.randn(2, POOLED, generator=gen),
        "time_ids": torch.tensor([[1024.0, 1024.0, 0.0, 0.0, 1024.0, 1024.0], [768.0, 1344.0, 64.0, 16.0, 832.0, 1216.0]]),
    }
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(directory, "io.safetensors"))


def teacher_of(name):
    """The teacher tensor KOALA's student tensor `name` copies, derived from the rule, not from dmsurgery:
    up stages keep their first and last ResNet(+attention) pair, so student layer 1 is teacher layer 2;
    down stages and the kept (first) transformer blocks keep their names."""
    return re.sub(r"^(up_blocks\.\d+\.(resnets|attentions))\.1\.", r"\1.2.", name)


def check(variant, student, teacher, io, ours):
    kept = KEPT[variant]
    model, info = UNet2DConditionModel.from_pretrained(student, output_loading_info=True)
    for key in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        assert not info[key], f"{key}: {info[key]}"
    config = model.config
    assert config.layers_per_block == 1, config.layers_per_block
    assert list(config.transformer_layers_per_block) == [1, 2, kept], config.transformer_layers_per_block
    assert (config.mid_block_type is None) == (variant == "koala-700m"), config.mid_block_type
    with safe_open(os.path.join(student, WEIGHTS), "pt") as f:
        copies = json.loads(f.metadata()["dmsurgery.depth"])["copies"]
    s = load_file(os.path.join(student, WEIGHTS))
    t = load_file(os.path.join(teacher, WEIGHTS))
    assert set(copies) == set(s) == set(model.state_dict()), sorted(set(copies) ^ set(model.state_dict()))
    for name, source in copies.items():
        assert source == teacher_of(name), (name, source)
        a, b = s[name], t[source]
        assert a.dtype == b.dtype and a.shape == b.shape and a.numpy().tobytes() == b.numpy().tobytes(), (name, source)
    deepest = [n for n in s if re.match(r"(down_blocks\.2|up_blocks\.0|mid_block)\.attentions\.\d+\.transformer_blocks\.", n)]
    assert {int(n.split("transformer_blocks.")[1].split(".")[0]) for n in deepest} == set(range(kept)), "deepest transformer blocks"
    x = load_file(io)
    with torch.no_grad():
        want = model.double()(x["sample"].double(), x["timestep"].double(),
                              encoder_hidden_states=x["encoder_hidden_states"].double(),
                              added_cond_kwargs={"text_embeds": x["text_embeds"].double(), "time_ids": x["time_ids"].double()}).sample
    got = load_file(ours)["sample"].double()
    error = ((got - want).abs().max() / want.abs().max().clamp_min(1e-12)).item()
    assert error <= 1e-4, f"forward differs from diffusers by {error}"
    parameters = sum(v.numel() for v in s.values())
    print(f"ok: {variant}: {len(copies)} tensors, {parameters} of {sum(v.numel() for v in t.values())} parameters, forward error {error:.2e}")


def dmsurgery(*arguments):
    run = subprocess.run([os.environ["DMS"], *arguments, "-q"], capture_output=True, text=True)
    assert run.returncode == 0, f"dmsurgery {' '.join(arguments)}: {run.stderr}"


if __name__ == "__main__":
    assert sys.argv[1] == "run", __doc__
    directory = sys.argv[2]
    make(directory)
    teacher, io = os.path.join(directory, "teacher"), os.path.join(directory, "io.safetensors")
    dmsurgery("forward", "--model", teacher, "--inputs", io, "--output", os.path.join(directory, "teacher.blocks.safetensors"), "--blocks")
    for variant in KEPT:
        student = os.path.join(directory, variant)
        dmsurgery("prune", "--depth", variant, teacher, student + "/")
        dmsurgery("forward", "--model", student, "--inputs", io, "--output", student + ".ours.safetensors", "--blocks")
        check(variant, student, teacher, io, student + ".ours.safetensors")
