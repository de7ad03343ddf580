#!/usr/bin/env python3
"""Make a random-init pipeline shaped like stabilityai/stable-diffusion-2-1-base, for the prompt-driven run.

Pinned versions (fixtures/requirements.txt): torch==2.13.0+cpu, diffusers==0.42.1, transformers, safetensors.

Usage:  HF_HUB_OFFLINE=1 python3 scripts/bench/make_sd21.py OUTDIR [--tiny-tokenizer-from PIPELINE]

Writes OUTDIR/{model_index.json, unet/, text_encoder/, tokenizer/, vae/, scheduler/}: the diffusers and
transformers configs of SD-2.1-base written out literally (nothing downloaded), weights from seeded random
init (f32; UNet 865,910,724 parameters, OpenCLIP ViT-H text tower in its 23-layer transformers form, the
SD AutoencoderKL). The tokenizer folder is copied from PIPELINE's (the real CLIP vocabulary, as
fixtures/clip/tiny_pipeline.py saves it); SD-2.1's own pads with "!" instead of <|endoftext|>, which
changes no timing. Never commit the output (~5 GB); it lives under bench-data/ (ignored).
"""
import json
import os
import shutil
import sys

os.environ["HF_HUB_OFFLINE"] = "1"
sys.modules["torchvision"] = None
import torch  # noqa: E402
import diffusers  # noqa: E402
import transformers  # noqa: E402

UNET = dict(act_fn="silu", attention_head_dim=[5, 10, 20, 20], block_out_channels=[320, 640, 1280, 1280],
            center_input_sample=False, cross_attention_dim=1024,
            down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
            downsample_padding=1, dual_cross_attention=False, flip_sin_to_cos=True, freq_shift=0, in_channels=4,
            layers_per_block=2, mid_block_scale_factor=1, norm_eps=1e-05, norm_num_groups=32, out_channels=4,
            sample_size=64, up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
            use_linear_projection=True)
TEXT = dict(vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
            max_position_embeddings=77, hidden_act="gelu", projection_dim=512, bos_token_id=0, eos_token_id=2,
            pad_token_id=1, layer_norm_eps=1e-5, torch_dtype="float32")
VAE = dict(act_fn="silu", block_out_channels=[128, 256, 512, 512], down_block_types=["DownEncoderBlock2D"] * 4,
           in_channels=3, latent_channels=4, layers_per_block=2, norm_num_groups=32, out_channels=3, sample_size=768,
           up_block_types=["UpDecoderBlock2D"] * 4, scaling_factor=0.18215)
SCHEDULER = dict(_class_name="DDIMScheduler", beta_end=0.012, beta_schedule="scaled_linear", beta_start=0.00085,
                 clip_sample=False, num_train_timesteps=1000, prediction_type="epsilon", set_alpha_to_one=False,
                 skip_prk_steps=True, steps_offset=1, trained_betas=None)
INDEX = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": diffusers.__version__,
         "feature_extractor": [None, None], "requires_safety_checker": False, "safety_checker": [None, None],
         "scheduler": ["diffusers", "DDIMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
         "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
         "vae": ["diffusers", "AutoencoderKL"]}


def main():
    out = sys.argv[1]
    tokenizer_from = sys.argv[sys.argv.index("--tiny-tokenizer-from") + 1] if "--tiny-tokenizer-from" in sys.argv else None
    os.makedirs(os.path.join(out, "scheduler"), exist_ok=True)
    with open(os.path.join(out, "model_index.json"), "w") as f:
        json.dump(INDEX, f, indent=2)
    with open(os.path.join(out, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(SCHEDULER, f, indent=2)
    torch.manual_seed(21)
    with torch.no_grad():
        unet = diffusers.UNet2DConditionModel(**UNET)
        print(f"unet {sum(p.numel() for p in unet.parameters()):,} parameters", flush=True)
        unet.save_pretrained(os.path.join(out, "unet"))
        del unet
        text = transformers.CLIPTextModel(transformers.CLIPTextConfig(**TEXT))
        text.save_pretrained(os.path.join(out, "text_encoder"))
        del text
        diffusers.AutoencoderKL(**VAE).save_pretrained(os.path.join(out, "vae"))
    if tokenizer_from:
        shutil.copytree(os.path.join(tokenizer_from, "tokenizer"), os.path.join(out, "tokenizer"), dirs_exist_ok=True)


if __name__ == "__main__":
    main()
