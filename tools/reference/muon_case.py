"""Muon oracle: every switch of issue 5 in float64 PyTorch, written from the formulas of the issue.

Per logical matrix W (A rows = out features, B cols = in features), gradient G (times the
clipping factor), with lr the Muon group's scheduled LR:

  momentum   sgd: buf = mu*buf + G;             U = G + mu*buf (Nesterov) or buf
             ema: buf = buf + (1-mu)*(G - buf); U = G + mu*(buf - G) (Nesterov) or buf
  ortho      X = U^T if A > B else U
             ns5:           X /= ||X||_F + 1e-7;        every step (3.4445, -4.7750, 2.0315)
             polar_express: X /= ||X||_F * 1.02 + 1e-6; step t uses PE[t], past the table PE[-1]
             step: A' = X X^T; B' = b A' + c A'A'; X = a X + B' X;  O = X^T if A > B else X
  NorMuon    per neuron along the longer side: v = mean(O^2) over cols if A >= B, else over rows;
             S = S + (1-beta2)*(v - S); O' = O / sqrt(max(S, 1e-10)); O' *= ||O||_F / ||O'||_F
             (zero when ||O'||_F is 0)
  LR scale   match_rms_adamw 0.2*sqrt(max(A,B)) | original sqrt(max(1,A/B)) | spectral sqrt(A/B)
             | sqrt_max sqrt(max(A,B)) | none 1
  update     decoupled: W = W*(1 - lr*wd); W = W - lr*scale*O
             cautious:  W = W - lr*wd*[O*W >= 0]*W - lr*scale*O  (mask from W before the step)
             none:      W = W - lr*scale*O

A parameter may be a stack (L, R, C) and its rows may hold several logical matrices ("blocks":
name, rows, head_rows); each is its own W, and with split_heads each head_rows slice of a block
with head_rows > 0 is.

DIR/muon/fixture.safetensors holds, for every case in CASES (all F64): `<case>.init` (the param,
(R, C) or (L, R, C)), and for each step s = 1.. `<case>.grad.<s>` (the raw gradient, before the
step's grad_scale) and `<case>.after.<s>` (the param after step s). Metadata `cases` is the JSON
list CASES: name, shape, blocks ([name, rows, head_rows], empty: the whole param is one matrix),
split_heads, momentum, momentum_kind, nesterov, ortho, ns_steps, normuon, normuon_beta2,
lr_scale, weight_decay, wd_kind, lrs (Muon's LR at each step), grad_scales, zero_grad.
"""
import json
import math
import os

import torch

import st_io

NS5 = (3.4445, -4.7750, 2.0315)
POLAR_EXPRESS = [
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
]
SEED = 5005

BASE = dict(momentum=0.95, momentum_kind="sgd", nesterov=True, ortho="ns5", ns_steps=5, normuon=False,
            normuon_beta2=0.95, lr_scale="match_rms_adamw", weight_decay=0.1, wd_kind="decoupled",
            split_heads=False, blocks=[], lrs=[0.5, 0.3, 0.2], grad_scales=None, zero_grad=False)


def _case(name, shape, **kw):
    c = dict(BASE, name=name, shape=list(shape))
    c.update(kw)
    if c["grad_scales"] is None:
        c["grad_scales"] = [1.0] * len(c["lrs"])
    return c


ONE = [0.5]  # a single step
QKV_BLOCKS = [["q", 8, 4], ["k", 4, 4], ["v", 4, 4]]  # H=2, Hkv=1, head_dim 4, C=6 -> (16, 6) per layer
CASES = [
    # momentum kind x Nesterov, on tall / wide / square
    _case("sgd_nesterov_tall", (12, 5)),
    _case("sgd_plain_wide", (5, 12), nesterov=False),
    _case("ema_nesterov_square", (8, 8), momentum_kind="ema"),
    _case("ema_plain_tall", (12, 5), momentum_kind="ema", nesterov=False, momentum=0.9),
    # orthogonalizers and step counts
    _case("polar_express_wide", (6, 16), ortho="polar_express"),
    _case("polar_express_7_steps_tall", (16, 6), ortho="polar_express", ns_steps=7, lrs=ONE),
    _case("polar_express_3_steps", (8, 8), ortho="polar_express", ns_steps=3, lrs=ONE),
    _case("ns5_3_steps", (5, 12), ns_steps=3, lrs=ONE),
    _case("ns5_8_steps_tall", (9, 7), ns_steps=8, lrs=ONE),
    # NorMuon on each orientation (the wide one as modded-nanogpt: ema + Nesterov + Polar Express)
    _case("normuon_tall", (12, 5), normuon=True),
    _case("normuon_wide_modded", (5, 12), normuon=True, momentum_kind="ema", ortho="polar_express",
          lr_scale="original", wd_kind="cautious", normuon_beta2=0.9),
    _case("normuon_square", (8, 8), normuon=True),
    # LR scales
    _case("scale_original_tall", (12, 5), lr_scale="original", lrs=ONE),
    _case("scale_original_wide", (5, 12), lr_scale="original", lrs=ONE),
    _case("scale_spectral_tall", (12, 5), lr_scale="spectral", lrs=ONE),
    _case("scale_spectral_wide", (5, 12), lr_scale="spectral", lrs=ONE),
    _case("scale_sqrt_max", (6, 10), lr_scale="sqrt_max", lrs=[0.2, 0.1]),
    _case("scale_none", (10, 6), lr_scale="none", lrs=ONE),
    # weight decay kinds
    _case("wd_cautious", (9, 7), wd_kind="cautious", weight_decay=0.3),
    _case("wd_none", (7, 9), wd_kind="none"),
    # degenerate shapes, zero gradients, the clipping factor
    _case("row_1xN", (1, 10)),
    _case("col_Nx1", (10, 1), normuon=True),
    _case("zero_grad", (6, 9), zero_grad=True, normuon=True),
    _case("zero_grad_cautious", (9, 6), zero_grad=True, wd_kind="cautious"),
    _case("grad_scale", (12, 5), grad_scales=[0.5, 0.25, 1.0]),
    # fused storage: logical matrices inside stacked params, whole and per head
    _case("split_qkv", (2, 16, 6), blocks=QKV_BLOCKS),
    _case("split_qkv_heads", (2, 16, 6), blocks=QKV_BLOCKS, split_heads=True, normuon=True),
    _case("split_gate_up", (2, 20, 6), blocks=[["gate", 10, 0], ["up", 10, 0]], normuon=True,
          ortho="polar_express"),
    _case("stacked_whole", (3, 6, 8), lrs=[0.5, 0.3]),
]


# ---------------------------------------------------------------- the formulas

def momentum_update(buf, G, kind, mu, nesterov):
    """Returns (new buf, U)."""
    if kind == "sgd":
        buf = mu * buf + G
        U = G + mu * buf if nesterov else buf
    elif kind == "ema":
        buf = buf + (1 - mu) * (G - buf)
        U = G + mu * (buf - G) if nesterov else buf
    else:
        raise ValueError(kind)
    return buf, U


def coefficients(ortho, steps):
    if ortho == "ns5":
        return [NS5] * steps
    return [POLAR_EXPRESS[min(t, len(POLAR_EXPRESS) - 1)] for t in range(steps)]


def orthogonalize(U, ortho, steps):
    tall = U.shape[0] > U.shape[1]
    X = U.T if tall else U
    if ortho == "ns5":
        X = X / (torch.linalg.norm(X) + 1e-7)
    else:
        X = X / (torch.linalg.norm(X) * 1.02 + 1e-6)
    for a, b, c in coefficients(ortho, steps):
        A = X @ X.T
        B = b * A + c * (A @ A)
        X = a * X + B @ X
    return X.T if tall else X


def normuon(O, S, beta2):
    """Returns (O'', new S). S has max(A, B) entries."""
    A, B = O.shape
    per_row = A >= B
    v = (O * O).mean(dim=1) if per_row else (O * O).mean(dim=0)
    S = S + (1 - beta2) * (v - S)
    d = torch.sqrt(torch.clamp(S, min=1e-10))
    O1 = O / d[:, None] if per_row else O / d[None, :]
    n1 = torch.linalg.norm(O1)
    if n1 == 0:
        return torch.zeros_like(O), S
    return O1 * (torch.linalg.norm(O) / n1), S


def lr_scale(kind, A, B):
    return {"match_rms_adamw": 0.2 * math.sqrt(max(A, B)), "original": math.sqrt(max(1.0, A / B)),
            "spectral": math.sqrt(A / B), "sqrt_max": math.sqrt(max(A, B)), "none": 1.0}[kind]


def apply_update(W, O, lr, scale, wd, kind):
    if kind == "decoupled":
        W = W * (1 - lr * wd)
        return W - lr * scale * O
    if kind == "cautious":
        mask = (O * W >= 0).to(W.dtype)
        return W - lr * wd * mask * W - lr * scale * O
    if kind == "none":
        return W - lr * scale * O
    raise ValueError(kind)


# ---------------------------------------------------------------- the cases

def logical_matrices(case):
    """[(layer or None, row0, rows)] for every logical matrix of the case's parameter."""
    shape = case["shape"]
    layers = shape[0] if len(shape) == 3 else None
    rows_total = shape[-2]
    blocks = case["blocks"] or [["whole", rows_total, 0]]
    if sum(b[1] for b in blocks) != rows_total:
        raise ValueError(f"{case['name']}: blocks do not cover {rows_total} rows")
    out = []
    for layer in (range(layers) if layers is not None else [None]):
        row = 0
        for _, rows, head_rows in blocks:
            if case["split_heads"] and head_rows > 0:
                out += [(layer, row + h * head_rows, head_rows) for h in range(rows // head_rows)]
            else:
                out.append((layer, row, rows))
            row += rows
    return out


def run_trajectory(case, W0, grads):
    """Applies len(grads) Muon steps; returns the params after each step."""
    W = W0.clone()
    buf = torch.zeros_like(W)
    mats = logical_matrices(case)
    S = {i: torch.zeros(max(r, W.shape[-1]), dtype=W.dtype) for i, (_, _, r) in enumerate(mats)}
    after = []
    for lr, gs, G in zip(case["lrs"], case["grad_scales"], grads):
        G = G * gs
        for i, (layer, r0, rows) in enumerate(mats):
            sl = (slice(r0, r0 + rows), slice(None))
            view = (lambda t: t[layer][sl]) if layer is not None else (lambda t: t[sl])
            b_new, U = momentum_update(view(buf), view(G), case["momentum_kind"], case["momentum"],
                                       case["nesterov"])
            view(buf).copy_(b_new)
            O = orthogonalize(U, case["ortho"], case["ns_steps"])
            if case["normuon"]:
                O, S[i] = normuon(O, S[i], case["normuon_beta2"])
            scale = lr_scale(case["lr_scale"], rows, W.shape[-1])
            view(W).copy_(apply_update(view(W), O, lr, scale, case["weight_decay"], case["wd_kind"]))
        after.append(W.clone())
    return after


def _draw(case, gen):
    shape = case["shape"]
    W0 = torch.randn(shape, generator=gen, dtype=torch.float64)
    grads = [torch.randn(shape, generator=gen, dtype=torch.float64) for _ in case["lrs"]]
    if case["zero_grad"]:
        grads = [torch.zeros(shape, dtype=torch.float64) for _ in case["lrs"]]
    return W0, grads


# ---------------------------------------------------------------- self-checks

def self_check():
    """The quintic iteration equals the composed scalar polynomial applied to the singular values
    (an SVD-based second implementation), and NorMuon keeps the Frobenius norm. Returns the worst
    relative deviation; the caller fails above 1e-10."""
    gen = torch.Generator().manual_seed(SEED + 1)
    worst = 0.0
    for shape in [(12, 5), (5, 12), (8, 8), (1, 10)]:
        U = torch.randn(shape, generator=gen, dtype=torch.float64)
        for ortho, steps in [("ns5", 5), ("polar_express", 5), ("polar_express", 7)]:
            u, s, vh = torch.linalg.svd(U, full_matrices=False)
            scale, eps = (1.0, 1e-7) if ortho == "ns5" else (1.02, 1e-6)
            x = s / (torch.linalg.norm(s) * scale + eps)
            for a, b, c in coefficients(ortho, steps):
                x = a * x + b * x ** 3 + c * x ** 5
            want = u @ torch.diag(x) @ vh
            got = orthogonalize(U, ortho, steps)
            worst = max(worst, (torch.linalg.norm(got - want) / torch.linalg.norm(want)).item())
        O = orthogonalize(U, "ns5", 5)
        O2, _ = normuon(O, torch.rand(max(shape), generator=gen, dtype=torch.float64), 0.9)
        worst = max(worst, abs(torch.linalg.norm(O2).item() / torch.linalg.norm(O).item() - 1))
    zero, _ = normuon(torch.zeros(4, 6, dtype=torch.float64), torch.zeros(6, dtype=torch.float64), 0.95)
    if not torch.isfinite(zero).all() or zero.abs().max() != 0:
        return float("inf")
    return worst


def run_case(out_dir):
    """Writes out_dir/muon/fixture.safetensors; returns (number of cases, total steps, self-check error)."""
    gen = torch.Generator().manual_seed(SEED)
    tensors = {}
    steps = 0
    for case in CASES:
        W0, grads = _draw(case, gen)
        after = run_trajectory(case, W0, grads)
        n = case["name"]
        tensors[f"{n}.init"] = W0
        for s, (g, a) in enumerate(zip(grads, after), start=1):
            tensors[f"{n}.grad.{s}"] = g
            tensors[f"{n}.after.{s}"] = a
        steps += len(after)
    os.makedirs(os.path.join(out_dir, "muon"), exist_ok=True)
    st_io.save(os.path.join(out_dir, "muon", "fixture.safetensors"), tensors,
               {"cases": json.dumps(CASES), "case": "muon"})
    return len(CASES), steps, self_check()
