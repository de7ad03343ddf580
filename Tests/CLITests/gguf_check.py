#!/usr/bin/env python3
"""Checks a GGUF file written by `dmsurgery convert SOURCE OUT.gguf --quant QUANT` with gguf-py.

    python3 gguf_check.py OUT.gguf SOURCE.safetensors QUANT

Reads OUT with gguf-py's GGUFReader and, for every tensor of SOURCE (float32), recomputes on its own
which type, stored shape and original shape ComfyUI-GGUF's rules give (formats/gguf.md), and requires
the stored bytes to equal `gguf.quants.quantize` of the source. Exits 1 with a message on the first
difference.
"""
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from safetensors.numpy import load_file

KEEP = ["time_embedding.", "add_embedding.", "time_in.", "txt_in.", "vector_in.", "img_in.", "guidance_in.", "final_layer."]
FILE_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q8_0": 7, "q5_0": 8, "q5_1": 9, "bf16": 32}


def expected_layout(name, x, quant):
    qtype = T[quant.upper()]
    n = x.size
    if x.ndim <= 1 or n <= 1024 or (".weight" in name and any(k in name for k in KEEP)):
        if qtype != T.F32:
            qtype = T.F32
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    shape, orig = x.shape, None
    if block > 1 and x.shape[-1] % block != 0:
        if x.ndim > 1 and n >= 512 and n % 256 == 0:
            shape, orig = (n // 256, 256), x.shape
        else:
            qtype = T.F16
    return qtype, shape, orig


def main(out, source, quant):
    src = load_file(source)
    reader = gguf.GGUFReader(out)
    fields = reader.fields
    def scalar(key):
        f = fields[key]
        return f.parts[f.data[0]].tolist()[0] if f.types[0] != gguf.GGUFValueType.STRING else bytes(f.parts[f.data[0]]).decode()
    assert scalar("general.quantization_version") == 2
    assert scalar("general.alignment") == 32
    assert scalar("general.file_type") == FILE_TYPES[quant], scalar("general.file_type")
    assert scalar("general.architecture") in ("sd1", "sdxl", "unet")
    tensors = {t.name: t for t in reader.tensors}
    assert set(tensors) == set(src), (sorted(tensors), sorted(src))
    for name, x in src.items():
        t = tensors[name]
        qtype, shape, orig = expected_layout(name, x, quant)
        assert t.tensor_type == qtype, f"{name}: {t.tensor_type.name}, expected {qtype.name}"
        assert tuple(int(d) for d in reversed(t.shape)) == tuple(shape), f"{name}: shape {t.shape}"
        key = "comfy.gguf.orig_shape." + name
        if orig is None:
            assert key not in fields, f"{name}: unexpected original shape"
        else:
            f = fields[key]
            # ComfyUI-GGUF's loader accepts exactly ARRAY of INT32.
            assert f.types == [gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.INT32], f.types
            assert tuple(int(f.parts[i][0]) for i in f.data) == tuple(orig), f"{name}: original shape"
        reference = gguf.quants.quantize(x.reshape(shape), qtype) if qtype != T.BF16 else gguf.quants.quantize(x.reshape(shape), T.BF16)
        ours = np.asarray(t.data).view(np.uint8).ravel()
        if not np.array_equal(ours, reference.view(np.uint8).ravel()):
            raise SystemExit(f"{name}: {qtype.name} bytes differ from gguf.quants.quantize")
        back = gguf.quants.dequantize(np.asarray(t.data), qtype).reshape(x.shape)
        assert np.all(np.isfinite(back))
    print("ok", len(src), "tensors")


if __name__ == "__main__":
    main(*sys.argv[1:4])
