"""Checks dmsurgery's layout conversions with diffusers itself (diffusers 0.42.1, fully offline).

  python3 ldm_check.py folder ORIGINAL_PIPELINE OUR_FOLDER
      every component of OUR_FOLDER loads with from_pretrained with no missing or unexpected keys, the
      whole pipeline loads, and every tensor equals the original pipeline's.
  python3 ldm_check.py single ORIGINAL_PIPELINE OUR_FILE
      diffusers' from_single_file (config= the original folder, so nothing is fetched) reads OUR_FILE back
      to the original tensors.
Prints one line per problem and exits 1 when there is any.
"""
import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"
try:
    import torchvision  # noqa: F401  (a torchvision built for another torch breaks transformers' imports)
except Exception:
    sys.modules["torchvision"] = None
import torch
import diffusers
import transformers

COMPONENTS = ["unet", "vae", "text_encoder", "text_encoder_2"]


def classes(folder):
    import json
    index = json.load(open(os.path.join(folder, "model_index.json")))
    out = {}
    for name in COMPONENTS:
        if name in index and index[name][0]:
            library = diffusers if index[name][0] == "diffusers" else transformers
            out[name] = getattr(library, index[name][1])
    return index["_class_name"], out


def compare(name, original, ours, problems):
    a, b = original.state_dict(), ours.state_dict()
    for key in sorted(set(a) | set(b)):
        if key not in b:
            problems.append(f"{name}: missing {key}")
        elif key not in a:
            problems.append(f"{name}: unexpected {key}")
        elif a[key].shape != b[key].shape or a[key].dtype != b[key].dtype or not torch.equal(a[key], b[key]):
            problems.append(f"{name}: {key} differs ({tuple(a[key].shape)} {a[key].dtype} vs {tuple(b[key].shape)} {b[key].dtype})")


def main():
    mode, original, ours = sys.argv[1:4]
    pipeline_class, components = classes(original)
    problems = []
    if mode == "folder":
        for name, cls in components.items():
            ref = cls.from_pretrained(os.path.join(original, name), local_files_only=True)
            model, info = cls.from_pretrained(os.path.join(ours, name), output_loading_info=True, local_files_only=True)
            for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
                if info.get(kind):
                    problems.append(f"{name}: {kind} {sorted(info[kind])[:5]}")
            compare(name, ref, model, problems)
        # Without a tokenizer folder, StableDiffusionPipeline (whose tokenizer is not optional) needs it passed.
        absent = {t: None for t in ("tokenizer", "tokenizer_2") if not os.path.isdir(os.path.join(ours, t))}
        pipe = getattr(diffusers, pipeline_class).from_pretrained(ours, local_files_only=True, **absent)
        for name in components:
            if getattr(pipe, name, None) is None:
                problems.append(f"pipeline: {name} not loaded")
    else:
        absent = {t: None for t in ("tokenizer", "tokenizer_2") if not os.path.isdir(os.path.join(original, t))}
        pipe = getattr(diffusers, pipeline_class).from_single_file(ours, config=original, local_files_only=True,
                                                                   torch_dtype=torch.float16, **absent)
        for name, cls in components.items():
            ref = cls.from_pretrained(os.path.join(original, name), local_files_only=True, torch_dtype=torch.float16)
            compare(name, ref, getattr(pipe, name), problems)
    for line in problems[:40]:
        print(line)
    print(f"{mode}: {len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
