"""Runs TensorMathBench's shapes through PyTorch (2 threads) and the Swift binary alternately, in one run,
and prints both side by side. Usage: python3 compare_torch.py PATH/TO/TensorMathBench [--md] [--rounds N]

Each side keeps its best time per op over the rounds, so load from other processes on a shared machine
hits both alike and the figure least disturbed by it is reported. ratio = torch time / our time (> 1:
TensorMath is faster).

Torch's backward is aten.convolution_backward (dx, dW, db) for convs and autograd through
scaled_dot_product_attention (fwd+bwd minus fwd) for attention, with FLOPs counted as in main.swift.
"""
import json
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(2)
torch.manual_seed(0)

CONVS = [  # name, batch, inC, outC, size, kernel, stride, padding, paddingEnd
    ("conv3x3 128->128 32x32", 8, 128, 128, 32, 3, 1, 1, 1),
    ("conv3x3 256->128 32x32", 8, 256, 128, 32, 3, 1, 1, 1),
    ("conv3x3 384->128 32x32", 8, 384, 128, 32, 3, 1, 1, 1),
    ("conv3x3 128->256 16x16", 8, 128, 256, 16, 3, 1, 1, 1),
    ("conv3x3 256->256 16x16", 8, 256, 256, 16, 3, 1, 1, 1),
    ("conv3x3 512->256 16x16", 8, 512, 256, 16, 3, 1, 1, 1),
    ("conv3x3 256->256 8x8", 8, 256, 256, 8, 3, 1, 1, 1),
    ("conv3x3 256->256 4x4", 8, 256, 256, 4, 3, 1, 1, 1),
    ("conv3x3s2 128->128 32->16", 8, 128, 128, 32, 3, 2, 0, 1),
    ("conv3x3 3->128 32x32 (conv_in)", 8, 3, 128, 32, 3, 1, 1, 1),
    ("conv3x3 128->3 32x32 (conv_out)", 8, 128, 3, 32, 3, 1, 1, 1),
    ("conv1x1 384->128 32x32", 8, 384, 128, 32, 1, 1, 0, 0),
    ("conv1x1 512->256 8x8", 8, 512, 256, 8, 1, 1, 0, 0),
]
ATTENTION = [  # name, batch, tokens, channels, heads
    ("attention 16x16 c256 1 head", 8, 256, 256, 1),
    ("attention 16x16 c256 8 heads", 8, 256, 256, 8),
    ("attention 64x64 c320 8 heads", 2, 4096, 320, 8),
]


# Every conv of google/ddpm-cifar10-32 at batch 8 (count, inC, outC, kernel, stride, padding, paddingEnd, size).
CIFAR_CONVS = [
    (7, 128, 128, 3, 1, 1, 1, 32), (1, 128, 128, 3, 2, 0, 1, 32), (1, 128, 256, 1, 1, 0, 0, 16),
    (1, 128, 256, 3, 1, 1, 1, 16), (1, 128, 3, 3, 1, 1, 1, 32), (2, 256, 128, 1, 1, 0, 0, 32),
    (2, 256, 128, 3, 1, 1, 1, 32), (7, 256, 256, 3, 1, 1, 1, 16), (1, 256, 256, 3, 1, 1, 1, 32),
    (11, 256, 256, 3, 1, 1, 1, 4), (8, 256, 256, 3, 1, 1, 1, 8), (1, 256, 256, 3, 2, 0, 1, 16),
    (1, 256, 256, 3, 2, 0, 1, 8), (1, 3, 128, 3, 1, 1, 1, 32), (1, 384, 128, 1, 1, 0, 0, 32),
    (1, 384, 128, 3, 1, 1, 1, 32), (1, 384, 256, 1, 1, 0, 0, 16), (1, 384, 256, 3, 1, 1, 1, 16),
    (2, 512, 256, 1, 1, 0, 0, 16), (3, 512, 256, 1, 1, 0, 0, 4), (3, 512, 256, 1, 1, 0, 0, 8),
    (2, 512, 256, 3, 1, 1, 1, 16), (3, 512, 256, 3, 1, 1, 1, 4), (3, 512, 256, 3, 1, 1, 1, 8),
]


def best_time(fn, budget=0.6):
    fn()
    samples, start = [], time.perf_counter()
    while len(samples) < 3 or (time.perf_counter() - start < budget and len(samples) < 50):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return min(samples)


def torch_results():
    out = {}
    with torch.no_grad():
        for name, b, cin, cout, size, k, s, p, pe in CONVS:
            osz = (size + p + pe - k) // s + 1
            flops = 2.0 * b * cout * osz * osz * cin * k * k
            x = torch.randn(b, cin, size, size)
            w = torch.randn(cout, cin, k, k)
            bias = torch.randn(cout)
            dy = torch.randn(b, cout, osz, osz)
            if p != pe:  # diffusers Downsample2D(padding=0): explicit pad, as diffusers runs it
                fwd = lambda: F.conv2d(F.pad(x, (p, pe, p, pe)), w, bias, stride=s)
                xin, pad = F.pad(x, (p, pe, p, pe)), 0
            else:
                fwd = lambda: F.conv2d(x, w, bias, stride=s, padding=p)
                xin, pad = x, p
            bwd = lambda: torch.ops.aten.convolution_backward(dy, xin, w, [cout], [s, s], [pad, pad], [1, 1], False,
                                                              [0, 0], 1, [True, True, True])
            out[(name, "fwd")] = best_time(fwd)
            out[(name, "bwd")] = best_time(bwd)
    for name, b, n, c, h in ATTENTION:
        flops = 4.0 * b * n * n * c
        q, k, v = (torch.randn(b, h, n, c // h, requires_grad=True) for _ in range(3))
        dout = torch.randn(b, h, n, c // h)
        with torch.no_grad():
            tf = best_time(lambda: F.scaled_dot_product_attention(q, k, v))

        def both():
            o = F.scaled_dot_product_attention(q, k, v)
            torch.autograd.grad(o, [q, k, v], dout)

        out[(name, "fwd")] = tf
        out[(name, "bwd")] = max(best_time(both) - tf, 1e-9)
    data, flops = [], 0.0
    for n, cin, cout, k, s, p, pe, size in CIFAR_CONVS:
        osz = (size + p + pe - k) // s + 1
        flops += n * 3 * 2.0 * 8 * cout * osz * osz * cin * k * k
        x = torch.randn(8, cin, size, size)
        xin = F.pad(x, (p, pe, p, pe)) if p != pe else x
        data.append((n, xin, torch.randn(cout, cin, k, k), torch.randn(cout), torch.randn(8, cout, osz, osz), s,
                     0 if p != pe else p))

    def all_convs():
        for n, xin, w, b, dy, s, pad in data:
            for _ in range(n):
                F.conv2d(xin, w, b, stride=s, padding=pad)
                torch.ops.aten.convolution_backward(dy, xin, w, [w.shape[0]], [s, s], [pad, pad], [1, 1], False,
                                                    [0, 0], 1, [True, True, True])

    with torch.no_grad():
        out[("cifar10 UNet all convs", "f+b")] = best_time(all_convs, budget=2)

    x = torch.randn(8, 128, 32, 32, requires_grad=True)
    gn = torch.nn.GroupNorm(32, 128, eps=1e-6)
    dy = torch.randn(8, 128, 32, 32)
    with torch.no_grad():
        tf = best_time(lambda: F.silu(gn(x)))

    def gn_both():
        y = F.silu(gn(x))
        torch.autograd.grad(y, [x] + list(gn.parameters()), dy)

    out[("groupnorm+silu 8x128x32x32", "fwd")] = tf
    out[("groupnorm+silu 8x128x32x32", "bwd")] = max(best_time(gn_both) - tf, 1e-9)
    return out


def main():
    binary = sys.argv[1]
    md = "--md" in sys.argv
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 2
    ref, ours, flops = {}, {}, {}
    for _ in range(rounds):
        for key, t in torch_results().items():
            ref[key] = min(t, ref.get(key, float("inf")))
        lines = subprocess.run([binary, "--json"], check=True, capture_output=True, text=True).stdout.splitlines()
        for line in lines:
            r = json.loads(line)
            key = (r["name"], r["pass"])
            ours[key] = min(r["seconds"], ours.get(key, float("inf")))
            flops[key] = r["gflops"] * r["seconds"]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, best of {rounds} alternating rounds")
    if md:
        print("| op | pass | TensorMath ms | GFLOP/s | torch ms | GFLOP/s | torch/ours |")
        print("|---|---|---:|---:|---:|---:|---:|")
    for key in ours:
        a, t, f = ours[key], ref.get(key, float("nan")), flops[key]
        ga = f"{f / a:.0f}" if f > 0 else "-"
        gt = f"{f / t:.0f}" if f > 0 else "-"
        if md:
            print(f"| {key[0]} | {key[1]} | {a * 1e3:.2f} | {ga} | {t * 1e3:.2f} | {gt} | {t / a:.2f} |")
        else:
            print(f"{key[0]:32s} {key[1]:4s} ours {a * 1e3:8.2f} ms {ga:>5} GF/s  torch {t * 1e3:8.2f} ms "
                  f"{gt:>5} GF/s  torch/ours {t / a:5.2f}")


if __name__ == "__main__":
    main()
