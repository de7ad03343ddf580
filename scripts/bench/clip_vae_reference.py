"""Random-init SD-1.5-size CLIP text encoder and VAE, and the reference timings on them.

Run: python3 scripts/bench/clip_vae_reference.py build OUT_DIR    (writes OUT_DIR/text_encoder, OUT_DIR/vae)
     python3 scripts/bench/clip_vae_reference.py time OUT_DIR      (prints JSON medians)
Configs are those of runwayml/stable-diffusion-v1-5 (text_encoder: CLIP ViT-L/14 text tower; vae: SD's
AutoencoderKL), written out here; weights are random (nothing downloaded). Times: transformers
CLIPTextModel forward on 1 x 77 ids (median of 5 after a warm-up), diffusers AutoencoderKL decode of
1 x 4 x 64 x 64 latents (512 x 512 image, median of 3), float32, torch's default CPU threads.
"""
import json
import os
import sys
import time

os.environ["HF_HUB_OFFLINE"] = "1"
sys.modules["torchvision"] = None  # the machine's torchvision does not match its torch; not needed
import torch  # noqa: E402
import transformers  # noqa: E402
import diffusers  # noqa: E402

transformers.logging.set_verbosity_error()

TEXT = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
            max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768, bos_token_id=0, eos_token_id=2,
            pad_token_id=1, layer_norm_eps=1e-5)
VAE = dict(block_out_channels=[128, 256, 512, 512], down_block_types=["DownEncoderBlock2D"] * 4,
           up_block_types=["UpDecoderBlock2D"] * 4, layers_per_block=2, latent_channels=4, norm_num_groups=32,
           sample_size=512, scaling_factor=0.18215)


def median(fn, steps):
    fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def main():
    out = sys.argv[2]
    if sys.argv[1] == "build":
        torch.manual_seed(0)
        transformers.CLIPTextModel(transformers.CLIPTextConfig(**TEXT)).save_pretrained(os.path.join(out, "text_encoder"))
        diffusers.AutoencoderKL(**VAE).save_pretrained(os.path.join(out, "vae"))
        return
    text = transformers.CLIPTextModel.from_pretrained(os.path.join(out, "text_encoder")).eval()
    vae = diffusers.AutoencoderKL.from_pretrained(os.path.join(out, "vae")).eval()
    ids = torch.tensor([[(7919 * 0 + s * 104729) % 49408 for s in range(77)]])
    latents = torch.randn(1, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        t_text = median(lambda: text(input_ids=ids), 5)
        t_vae = median(lambda: vae.decode(latents), 3)
    print(json.dumps({"text_encoder_seconds": t_text, "vae_decode_seconds": t_vae, "torch": torch.__version__,
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
