"""Checks a `convert UNET OUT.gguf --pipeline-layout ldm [--quant Q]` output against ComfyUI-GGUF's route and loader.

usage: gguf_ldm_check.py UNET_FOLDER OURS.gguf:QUANT...    (QUANT: none, f16, f32, bf16, q8_0, q4_0, ...)

1. For none/f16 and the quantized types, the file must equal, byte for byte, what ComfyUI-GGUF's
   tools/convert.py (then its patched llama-quantize) writes from the same UNet with original names
   (fixtures/gguf-ldm/comfy_reference.py, gguf-py doing the bytes); the first difference is named.
2. ComfyUI-GGUF's loader logic must accept it (architecture key, name detection, orig_shape arrays), and
   diffusers' convert_ldm_unet_checkpoint must turn what it loads into a state dict that loads strictly into
   the UNet: for f32 every tensor equal to the original, for the others within the type's error.
"""
import os
import sys
import tempfile

try:
    import torchvision  # noqa: F401
except Exception:
    sys.modules["torchvision"] = None
import gguf
import torch
from diffusers import UNet2DConditionModel
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../fixtures/gguf-ldm"))
import comfy_reference as ref  # noqa: E402


def first_difference(ours, theirs):
    a, b = gguf.GGUFReader(ours), gguf.GGUFReader(theirs)
    fa = [(f.name, f.types, [bytes(p) for p in f.parts]) for f in a.fields.values()]
    fb = [(f.name, f.types, [bytes(p) for p in f.parts]) for f in b.fields.values()]
    for x, y in zip(fa, fb):
        if x != y:
            return f"key/value {x[0]} differs from the reference's {y[0]}"
    if len(fa) != len(fb):
        return f"{len(fa)} key/values, the reference has {len(fb)}"
    for x, y in zip(a.tensors, b.tensors):
        if (x.name, x.tensor_type, list(x.shape)) != (y.name, y.tensor_type, list(y.shape)):
            return f"tensor {x.name} {x.tensor_type.name} {list(x.shape)}, the reference's {y.name} {y.tensor_type.name} {list(y.shape)}"
        if bytes(x.data) != bytes(y.data):
            return f"tensor {x.name} ({x.tensor_type.name}): bytes differ"
    return "the files differ outside keys and tensor data (padding, alignment)"


def check(ours, folder, quant):
    model = UNet2DConditionModel.from_pretrained(folder)
    config = dict(model.config)
    original = {k: v.clone() for k, v in model.state_dict().items()}  # load_state_dict below overwrites the model's own
    failures = []
    if quant not in ("f32", "bf16"):
        with tempfile.TemporaryDirectory() as tmp:
            f16 = os.path.join(tmp, "convert_py.gguf")
            sd = ref.original_state_dict(folder, config)
            ref.convert_py(sd, ref.detect_arch(set(sd)), f16)
            reference = f16
            if quant not in ("none", "f16"):
                reference = os.path.join(tmp, f"{quant}.gguf")
                ref.llama_quantize(f16, reference, quant)
            if open(ours, "rb").read() != open(reference, "rb").read():
                failures.append(f"not ComfyUI-GGUF's bytes: {first_difference(ours, reference)}")
    state, arch = ref.comfy_load(ours)
    if arch != ref.detect_arch(set(state)):
        failures.append(f"general.architecture {arch}, ComfyUI-GGUF detects {ref.detect_arch(set(state))}")
    converted = convert_ldm_unet_checkpoint({"model.diffusion_model." + k: v for k, v in state.items()}, config)
    missing, unexpected = set(original) - set(converted), set(converted) - set(original)
    if missing or unexpected:
        failures.append(f"diffusers' converter: missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}")
    else:
        model.load_state_dict(converted, strict=True)
        bound = {"f32": 0.0, "bf16": 2 ** -8, "none": 2 ** -11, "f16": 2 ** -11, "q8_0": 2 ** -7}.get(quant, 2 ** -3)
        for name, value in original.items():
            scale = value.abs().max().item() or 1.0
            error = (converted[name].float() - value.float()).abs().max().item()
            if error > bound * scale:
                failures.append(f"{name}: max error {error:.3g} beyond {bound:.3g} x max|w| ({quant})")
                break
    return [f"{quant}: {failure}" for failure in failures]


def main():
    folder = sys.argv[1]
    failures = []
    for pair in sys.argv[2:]:
        ours, quant = pair.rsplit(":", 1)
        failures += check(ours, folder, quant)
    for failure in failures:
        print(failure)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
