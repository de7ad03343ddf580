"""Generates torch_goldens.json: small inputs, outputs and gradients of each TensorMath kernel from PyTorch.

Run from this folder with torch 2.13.0+cpu: `python3 make_goldens.py`. Each case stores named float
tensors as {"shape": [...], "data": [...]}; gradients are of sum(output * cotangent).
The timestep embedding is diffusers' get_timestep_embedding, copied verbatim (diffusers 0.42) so
diffusers is not needed here.
"""
import json
import math

import torch
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_num_threads(1)


def t(x):
    x = x.detach().to(torch.float32).contiguous()
    return {"shape": list(x.shape), "data": [float(v) for v in x.reshape(-1).tolist()]}


def leaf(*shape, scale=1.0):
    return (torch.randn(*shape) * scale).requires_grad_(True)


def vjp(out, inputs, cot):
    grads = torch.autograd.grad(out, inputs, grad_outputs=cot, allow_unused=True)
    return grads


cases = {}

# Linear, with and without bias, 3-D input.
x, w, b = leaf(2, 3, 5), leaf(4, 5), leaf(4)
y = F.linear(x, w, b)
cot = torch.randn_like(y)
dx, dw, db = vjp(y, [x, w, b], cot)
cases["linear"] = dict(x=t(x), weight=t(w), bias=t(b), y=t(y), cot=t(cot), dx=t(dx), dweight=t(dw), dbias=t(db))

# Conv2d at the three UNet geometries.
for name, (cin, cout, k, s, p, hw) in {
    "conv3x3": (3, 4, 3, 1, 1, 5),
    "conv1x1": (5, 3, 1, 1, 0, 4),
    "conv3x3s2": (4, 3, 3, 2, 1, 7),
}.items():
    x, w, b = leaf(2, cin, hw, hw), leaf(cout, cin, k, k, scale=0.3), leaf(cout)
    y = F.conv2d(x, w, b, stride=s, padding=p)
    cot = torch.randn_like(y)
    dx, dw, db = vjp(y, [x, w, b], cot)
    cases[name] = dict(x=t(x), weight=t(w), bias=t(b), y=t(y), cot=t(cot), dx=t(dx), dweight=t(dw), dbias=t(db),
                       stride=s, padding=p)

# diffusers Downsample2D(padding=0): F.pad(x, (0, 1, 0, 1)) then a stride-2 unpadded 3x3 conv.
x, w, b = leaf(2, 3, 6, 6), leaf(4, 3, 3, 3, scale=0.3), leaf(4)
y = F.conv2d(F.pad(x, (0, 1, 0, 1)), w, b, stride=2, padding=0)
cot = torch.randn_like(y)
dx, dw, db = vjp(y, [x, w, b], cot)
cases["conv3x3s2_padend"] = dict(x=t(x), weight=t(w), bias=t(b), y=t(y), cot=t(cot), dx=t(dx), dweight=t(dw),
                                 dbias=t(db), stride=2, padding=0, padding_end=1)

# GroupNorm (affine), 6 channels in 3 groups.
x, w, b = leaf(2, 6, 3, 3, scale=2.0), leaf(6), leaf(6)
y = F.group_norm(x + 0.5, 3, w, b, eps=1e-5)
cot = torch.randn_like(y)
dx, dw, db = vjp(y, [x, w, b], cot)
cases["groupnorm"] = dict(x=t(x + 0.5), weight=t(w), bias=t(b), y=t(y), cot=t(cot), dx=t(dx), dweight=t(dw),
                          dbias=t(db), groups=3, eps=1e-5)

# LayerNorm over the last dim.
x, w, b = leaf(2, 3, 8), leaf(8), leaf(8)
y = F.layer_norm(x, (8,), w, b, eps=1e-5)
cot = torch.randn_like(y)
dx, dw, db = vjp(y, [x, w, b], cot)
cases["layernorm"] = dict(x=t(x), weight=t(w), bias=t(b), y=t(y), cot=t(cot), dx=t(dx), dweight=t(dw), dbias=t(db),
                          eps=1e-5)

# Activations.
for name, fn in {"silu": F.silu, "gelu": F.gelu}.items():
    x = leaf(3, 7, scale=3.0)
    y = fn(x)
    cot = torch.randn_like(y)
    (dx,) = vjp(y, [x], cot)
    cases[name] = dict(x=t(x), y=t(y), cot=t(cot), dx=t(dx))

h = leaf(2, 3, 10, scale=2.0)
hidden, gate = h.chunk(2, dim=-1)
y = hidden * F.gelu(gate)
cot = torch.randn_like(y)
(dh,) = vjp(y, [h], cot)
cases["geglu"] = dict(x=t(h), y=t(y), cot=t(cot), dx=t(dh))

# Attention: self (Sq = Sk) and cross (Sk != Sq), 2 heads of width 3.
for name, (sq, sk) in {"attention_self": (5, 5), "attention_cross": (4, 6)}.items():
    B, H, d = 2, 2, 3
    q, k, v = leaf(B, sq, H * d), leaf(B, sk, H * d), leaf(B, sk, H * d)
    qh = q.view(B, sq, H, d).transpose(1, 2)
    kh = k.view(B, sk, H, d).transpose(1, 2)
    vh = v.view(B, sk, H, d).transpose(1, 2)
    o = F.scaled_dot_product_attention(qh, kh, vh).transpose(1, 2).reshape(B, sq, H * d)
    cot = torch.randn_like(o)
    dq, dk, dv = vjp(o, [q, k, v], cot)
    cases[name] = dict(q=t(q), k=t(k), v=t(v), y=t(o), cot=t(cot), dq=t(dq), dk=t(dk), dv=t(dv), heads=H)

# Nearest 2x upsample.
x = leaf(2, 3, 2, 3)
y = F.interpolate(x, scale_factor=2.0, mode="nearest")
cot = torch.randn_like(y)
(dx,) = vjp(y, [x], cot)
cases["upsample"] = dict(x=t(x), y=t(y), cot=t(cot), dx=t(dx))


def get_timestep_embedding(timesteps, embedding_dim, flip_sin_to_cos=False, downscale_freq_shift=1, scale=1,
                           max_period=10000):
    assert len(timesteps.shape) == 1, "Timesteps should be a 1d-array"
    half_dim = embedding_dim // 2
    exponent = -math.log(max_period) * torch.arange(start=0, end=half_dim, dtype=torch.float32,
                                                    device=timesteps.device)
    exponent = exponent / (half_dim - downscale_freq_shift)
    emb = torch.exp(exponent)
    emb = timesteps[:, None].float() * emb[None, :]
    emb = scale * emb
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half_dim:], emb[:, :half_dim]], dim=-1)
    if embedding_dim % 2 == 1:
        emb = torch.nn.functional.pad(emb, (0, 1, 0, 0))
    return emb


ts = torch.tensor([0.0, 1.0, 17.0, 999.0, 500.5])
for name, (dim, flip, shift) in {
    "timestep_flip_shift0": (32, True, 0.0),
    "timestep_noflip_shift1": (32, False, 1.0),
    "timestep_odd": (7, True, 1.0),
}.items():
    cases[name] = dict(timesteps=t(ts), y=t(get_timestep_embedding(ts, dim, flip, shift)), dim=dim, flip=flip,
                       shift=shift)

# MSE loss and its gradient.
a, b_ = leaf(2, 3, 4), torch.randn(2, 3, 4)
loss = F.mse_loss(a, b_)
(da,) = torch.autograd.grad(loss, [a])
cases["mse"] = dict(x=t(a), target=t(b_), loss=float(loss.detach()), dx=t(da))

# AdamW: three steps with different gradients, non-default hyperparameters.
p = torch.randn(21, requires_grad=True)  # 2 SIMD8 blocks and a tail
p0 = p.detach().clone()
opt = torch.optim.AdamW([p], lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)
grads = [torch.randn(21) for _ in range(3)]
for g in grads:
    p.grad = g.clone()
    opt.step()
cases["adamw"] = dict(p0=t(p0), g0=t(grads[0]), g1=t(grads[1]), g2=t(grads[2]), p3=t(p), lr=0.01, beta1=0.8,
                      beta2=0.95, eps=1e-6, weight_decay=0.1)

with open("torch_goldens.json", "w") as f:
    json.dump({"torch": torch.__version__, "cases": cases}, f, separators=(",", ":"))
