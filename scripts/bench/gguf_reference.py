#!/usr/bin/env python3
"""The reference side of the GGUF benchmark: gguf-py (numpy) converts a safetensors file to GGUF with
the same per-tensor rules as `dmsurgery convert IN OUT.gguf --quant TYPE` (formats/gguf.md) and the same
key order, so the two outputs can be compared byte for byte.

Pinned: gguf 0.19.0, numpy 2.4.6, safetensors 0.8.0 (fixtures/requirements.txt).

    python3 scripts/bench/gguf_reference.py IN.safetensors OUT.gguf TYPE

This is how ComfyUI-GGUF's tools/convert.py and llama.cpp's converters work: each tensor is read,
quantized with `gguf.quants.quantize` and handed to `GGUFWriter`, which keeps every quantized tensor in
memory until `write_tensors_to_file`.
"""
import json
import struct
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from safetensors import safe_open

KEEP = ["time_embedding.", "add_embedding.", "time_in.", "txt_in.", "vector_in.", "img_in.", "guidance_in.", "final_layer."]
FILE_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q8_0": 7, "q5_0": 8, "q5_1": 9, "bf16": 32}


def layout(name, shape, quant):
    qtype = T[quant.upper()]
    n = int(np.prod(shape)) if shape else 1
    if (len(shape) <= 1 or n <= 1024 or (".weight" in name and any(k in name for k in KEEP))) and qtype != T.F32:
        qtype = T.F32
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    stored, orig = tuple(shape), None
    if block > 1 and shape[-1] % block != 0:
        if len(shape) > 1 and n >= 512 and n % 256 == 0:
            stored, orig = (n // 256, 256), tuple(shape)
        else:
            qtype = T.F16
    return qtype, stored, orig


def architecture(names):
    if "down_blocks.0.downsamplers.0.conv.weight" in names:
        return "sdxl" if "add_embedding.linear_1.weight" in names else "sd1"
    return "unet"


def main(src, out, quant):
    with open(src, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    metadata = header.pop("__metadata__", {}) or {}
    names = sorted(header, key=lambda k: header[k]["data_offsets"][0])
    writer = gguf.GGUFWriter(out, architecture(set(names)))
    writer.add_uint32("general.file_type", FILE_TYPES[quant])
    writer.add_uint32("general.quantization_version", gguf.GGML_QUANT_VERSION)
    writer.add_uint32("general.alignment", 32)
    for key, value in metadata.items():
        writer.add_string(key, value)
    plans = {name: layout(name, header[name]["shape"], quant) for name in names}
    for name in names:
        qtype, stored, orig = plans[name]
        if orig is not None:
            writer.add_array(f"comfy.gguf.orig_shape.{name}", list(orig))
    with safe_open(src, framework="numpy") as f:
        for name in names:
            qtype, stored, orig = plans[name]
            data = f.get_tensor(name).astype(np.float32).reshape(stored)
            writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
