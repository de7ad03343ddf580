#!/usr/bin/env python3
"""Reference for the HDF5 benchmark: what `dmsurgery convert` does between safetensors and HDF5, in h5py.

  to-h5   IN.safetensors OUT.h5 [zstd:LEVEL]   one dataset per tensor at the root, in file order, metadata
                                                as root attributes; with zstd: chunked like dmsurgery
                                                (leading dims halved to <= 1 MiB), shuffle + zstd (hdf5plugin)
  from-h5 IN.h5 OUT.safetensors                every root dataset back to a safetensors file

Tensors go through numpy one at a time (safe_open + get_tensor), like dmsurgery's one-tensor memory bound.
bf16 has no numpy type: it is moved as uint16 bits (a Keras-3-style attribute marks it).
Pinned: h5py 3.16.0, hdf5plugin 7.1.0, numpy 2.4.6, safetensors 0.8.0.
"""
import sys

import h5py
import hdf5plugin
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

CHUNK_BYTES = 1 << 20


def chunk_shape(shape, itemsize):
    chunk = [max(d, 1) for d in shape]
    while int(np.prod(chunk)) * itemsize > CHUNK_BYTES and any(c > 1 for c in chunk):
        i = next(i for i, c in enumerate(chunk) if c > 1)
        chunk[i] = (chunk[i] + 1) // 2
    return tuple(chunk)


def to_h5(src, dst, compress):
    level = int(compress.split(":")[1]) if compress and ":" in compress else 3
    with safe_open(src, framework="pt") as f, h5py.File(dst, "w", track_order=True) as out:
        for k, v in (f.metadata() or {}).items():
            out.attrs[k] = v
        for name in f.keys():
            t = f.get_tensor(name)
            bf16 = str(t.dtype) == "torch.bfloat16"
            a = (t.view(dtype=__import__("torch").int16).numpy().view(np.uint16) if bf16 else t.numpy())
            kwargs = {}
            if compress and a.size and a.ndim:
                kwargs = dict(chunks=chunk_shape(a.shape, a.itemsize), shuffle=a.itemsize > 1, **hdf5plugin.Zstd(clevel=level))
            ds = out.create_dataset(name.replace("/", "%2F"), data=a, **kwargs)
            if bf16:
                ds.attrs["dtype"] = "bfloat16"


def from_h5(src, dst):
    tensors, meta = {}, {}
    with h5py.File(src, "r") as f:
        meta = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in f.attrs.items()}
        for name, ds in f.items():
            tensors[name.replace("%2F", "/")] = ds[()]
    save_file(tensors, dst, metadata=meta or None)


def main():
    mode = sys.argv[1]
    if mode == "to-h5":
        to_h5(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None)
    elif mode == "from-h5":
        from_h5(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
