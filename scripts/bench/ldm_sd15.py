#!/usr/bin/env python3
"""SD-1.5-size layout conversions, the reference side and the checkpoint maker (scripts/bench/ldm_run runs all).

Pinned versions (fixtures/requirements.txt): torch==2.13.0+cpu, diffusers==0.42.1, transformers==5.24.0,
safetensors==0.8.0.

  ldm_sd15.py make OUT              SD-1.5-size StableDiffusionPipeline (UNet 859.5M, VAE 83.7M, CLIP ViT-L text
                                    encoder 123.1M), seeded random init, float16, saved by diffusers to OUT
  ldm_sd15.py to-diffusers LDM PIPE OUT
                                    diffusers' own single-file conversion: from_single_file(LDM, config=PIPE,
                                    offline) then save_pretrained(OUT)
  ldm_sd15.py to-ldm PIPE OUT       the Python way to the single file: safetensors load_file of every component,
                                    the renames of diffusers' scripts/convert_diffusers_to_original_stable_diffusion.py
                                    (a dict rename, negligible), safetensors save_file
"""
import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"
try:
    import torchvision  # noqa: F401  (a torchvision built for another torch breaks transformers' imports)
except Exception:
    sys.modules["torchvision"] = None
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def make(out):
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    from make_sd15 import SD15_UNET_CONFIG
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**SD15_UNET_CONFIG).half()
    vae = AutoencoderKL(block_out_channels=[128, 256, 512, 512], down_block_types=["DownEncoderBlock2D"] * 4,
                        up_block_types=["UpDecoderBlock2D"] * 4, latent_channels=4, layers_per_block=2, sample_size=512).half()
    text = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                                        vocab_size=49408, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)).half()
    StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=None, unet=unet, scheduler=PNDMScheduler(skip_prk_steps=True),
                            safety_checker=None, feature_extractor=None, requires_safety_checker=False).save_pretrained(out)


def to_diffusers(ldm, pipe, out):
    from diffusers import StableDiffusionPipeline
    StableDiffusionPipeline.from_single_file(ldm, config=pipe, local_files_only=True, torch_dtype=torch.float16,
                                             tokenizer=None).save_pretrained(out)


def to_ldm(pipe, out):
    from safetensors.torch import load_file, save_file
    state = {}
    for component, prefix, weights in [("unet", "model.diffusion_model.", "diffusion_pytorch_model"),
                                       ("vae", "first_stage_model.", "diffusion_pytorch_model"),
                                       ("text_encoder", "cond_stage_model.transformer.text_model.", "model")]:
        for key, value in load_file(os.path.join(pipe, component, weights + ".safetensors")).items():
            state[prefix + key] = value
    save_file(state, out)


if __name__ == "__main__":
    {"make": make, "to-diffusers": to_diffusers, "to-ldm": to_ldm}[sys.argv[1]](*sys.argv[2:])
