#!/usr/bin/env python3
"""Give a pipeline folder written without a tokenizer (ldm_sd15.py make) CLIP's own one.

Usage:  python3 scripts/bench/clip_tokenizer_folder.py PIPELINE

Writes PIPELINE/tokenizer/ (vocab.json, merges.txt and transformers' CLIPTokenizer files) from the
vocabulary and merges open_clip's SimpleTokenizer reads from its BPE file (open-clip-torch ships it:
no download), and names it in model_index.json.
Pinned: open-clip-torch and transformers as fixtures/requirements.txt.
"""
import importlib.util
import json
import os
import sys


def main(pipeline):
    # open_clip's package imports torchvision; its tokenizer module alone does not, so load just that file.
    spec = importlib.util.spec_from_file_location("open_clip_tokenizer", os.path.join(
        os.path.dirname(importlib.util.find_spec("open_clip").origin), "tokenizer.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    simple = module.SimpleTokenizer()
    folder = os.path.join(pipeline, "tokenizer")
    os.makedirs(folder, exist_ok=True)
    vocab, merges = os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt")
    with open(vocab, "w", encoding="utf-8") as f:
        # open_clip names the two special tokens <start_of_text>/<end_of_text>; CLIP's files (and
        # transformers) call them <|startoftext|>/<|endoftext|>, at the same ids 49406/49407.
        names = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
        json.dump({names.get(token, token): id for token, id in simple.encoder.items()}, f, ensure_ascii=False)
    with open(merges, "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for pair, _ in sorted(simple.bpe_ranks.items(), key=lambda item: item[1]):
            f.write(" ".join(pair) + "\n")
    from transformers import CLIPTokenizer
    CLIPTokenizer(vocab, merges, pad_token="<|endoftext|>", model_max_length=77).save_pretrained(folder)
    index_path = os.path.join(pipeline, "model_index.json")
    with open(index_path, encoding="utf-8") as f:
        index = json.load(f)
    index["tokenizer"] = ["transformers", "CLIPTokenizer"]
    with open(index_path, "w", encoding="utf-8") as f:
        json.dump(index, f, indent=2)


if __name__ == "__main__":
    main(sys.argv[1])
