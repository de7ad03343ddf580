"""The tokenizer folders dmsurgery builds from CLIP's BPE file tokenize as open_clip's SimpleTokenizer does.

  python3 clip_tokenizer_check.py PIPELINE_FOLDER
Loads PIPELINE_FOLDER/tokenizer (and tokenizer_2) with transformers' CLIPTokenizer (offline) and compares the
ids of a few prompts with open_clip.tokenizer.SimpleTokenizer (open-clip-torch, from its own gzipped file);
also loads the whole pipeline with from_pretrained. Exits 1 on any difference.
"""
import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"
try:
    import torchvision  # noqa: F401  (a torchvision built for another torch breaks transformers' imports)
except Exception:
    sys.modules["torchvision"] = None
import importlib.util

# open_clip's package imports torchvision; its tokenizer module alone does not, so load just that file.
_spec = importlib.util.spec_from_file_location("open_clip_tokenizer", os.path.join(
    os.path.dirname(importlib.util.find_spec("open_clip").origin), "tokenizer.py"))
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
SimpleTokenizer = _module.SimpleTokenizer
from transformers import CLIPTokenizer
import diffusers

PROMPTS = ["a photo of an astronaut riding a horse on mars",
           "A Painting, in the style of Van Gogh!!  Starry night; 4k, trending on artstation",
           "naïve café — 東京 🌸 x"]


def main():
    folder = sys.argv[1]
    reference = SimpleTokenizer()
    problems = []
    for name in ("tokenizer", "tokenizer_2"):
        path = os.path.join(folder, name)
        if not os.path.isdir(path):
            continue
        ours = CLIPTokenizer.from_pretrained(path, local_files_only=True)
        if len(ours) != 49408:
            problems.append(f"{name}: {len(ours)} tokens, not 49408")
        for prompt in PROMPTS:
            # SDXL's second tokenizer pads with "!", which transformers then treats as a special token and
            # splits on (so does the tokenizer_2 of stable-diffusion-xl-base-1.0): compare other prompts.
            if name == "tokenizer_2" and "!" in prompt:
                continue
            expected = [reference.sot_token_id] + reference.encode(prompt) + [reference.eot_token_id]
            got = ours(prompt)["input_ids"]
            if got != expected:
                problems.append(f"{name}: {prompt!r}: {got} != {expected}")
    import json
    cls = json.load(open(os.path.join(folder, "model_index.json")))["_class_name"]
    pipe = getattr(diffusers, cls).from_pretrained(folder, local_files_only=True)
    if pipe.tokenizer is None:
        problems.append("pipeline: tokenizer not loaded")
    for line in problems:
        print(line)
    print(f"tokenizer: {len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
