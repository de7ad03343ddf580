"""Checks `dmsurgery convert PIPELINE OUT --dtype f16 --variant fp16` with diffusers itself (0.42.1, offline).

  python3 pipeline_convert_check.py ORIGINAL_PIPELINE OUR_FOLDER VARIANT

OUR_FOLDER must load with DiffusionPipeline.from_pretrained(OUR_FOLDER, variant=VARIANT) with every
component the original has; every weight file of OUR_FOLDER is the VARIANT file and stores float16; every
tensor equals the original's cast to float16 (torch's round-to-nearest-even). Prints one line per problem
and exits 1 when there is any.
"""
import json
import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"
try:
    import torchvision  # noqa: F401  (a torchvision built for another torch breaks transformers' imports)
except Exception:
    sys.modules["torchvision"] = None
import torch
import diffusers
from safetensors import safe_open

original_path, ours_path, variant = sys.argv[1:4]
problems = []
# Without a tokenizer folder, StableDiffusionPipeline (whose tokenizer is not optional) needs it passed.
absent = {t: None for t in ("tokenizer", "tokenizer_2") if not os.path.isdir(os.path.join(original_path, t))}
original = diffusers.DiffusionPipeline.from_pretrained(original_path, local_files_only=True, **absent)
ours = diffusers.DiffusionPipeline.from_pretrained(ours_path, variant=variant, torch_dtype=torch.float16,
                                                   local_files_only=True, **absent)
index = json.load(open(os.path.join(original_path, "model_index.json")))
for name, value in index.items():
    if name.startswith("_") or not isinstance(value, list) or value[0] is None:
        continue
    a, b = getattr(original, name, None), getattr(ours, name, None)
    if a is None:
        continue
    if type(a) is not type(b):
        problems.append(f"{name}: {type(a).__name__} in the original, {type(b).__name__} in ours")
        continue
    if not isinstance(a, torch.nn.Module):
        if getattr(a, "config", None) != getattr(b, "config", None):
            problems.append(f"{name}: config differs")
        continue
    files = [f for f in os.listdir(os.path.join(ours_path, name)) if f.endswith(".safetensors")]
    if not files or any(f".{variant}." not in f for f in files):
        problems.append(f"{name}: weight files {files} are not all {variant} files")
    for f in files:
        with safe_open(os.path.join(ours_path, name, f), framework="pt") as st:
            for key in st.keys():
                t = st.get_slice(key).get_dtype()
                if t not in ("F16", "I64", "I32", "BOOL"):
                    problems.append(f"{name}/{f}: {key} is stored as {t}, not F16")
    sa, sb = a.state_dict(), b.state_dict()
    if set(sa) != set(sb):
        problems.append(f"{name}: keys differ: {sorted(set(sa) ^ set(sb))[:5]}")
    for key in sorted(set(sa) & set(sb)):
        expected = sa[key].to(torch.float16) if sa[key].is_floating_point() else sa[key]
        if expected.dtype != sb[key].dtype or not torch.equal(expected, sb[key]):
            problems.append(f"{name}: {key} differs from the original cast to float16")
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
