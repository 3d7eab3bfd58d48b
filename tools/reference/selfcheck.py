"""Checks of the oracle itself (no transformers here to compare against).

1. A second forward written differently (loop over query heads, K/V copied with
   repeat_interleave, einsum scores, explicit softmax, RoPE as a complex rotation, llama3
   scaling as the scalar if/elif/else of the Llama 3.1 reference) must match llama_ref.
2. Finite differences of the loss along random directions must match the autograd gradient.
3. The fixtures must be able to fail: plausible implementation mistakes (interleaved RoPE,
   no RoPE, no causal mask) must move the logits far beyond the fp32 test tolerance.
4. AdamW: torch.optim.AdamW must equal the hand-written update.
5. st_io round-trips every dtype (scalar and empty shapes too), and its BF16 bytes decode
   by hand (bits << 16 as float32) to the values torch holds.
Each check raises CheckFailed with the numbers.
"""
import json
import math
import os
import tempfile

import numpy as np
import torch

import adamw_case
import llama_ref
import st_io

F64 = torch.float64


class CheckFailed(RuntimeError):
    pass


def _require(ok, what):
    if not ok:
        raise CheckFailed(what)


# ---- 1. the alternative forward ------------------------------------------------------------
def _alt_inv_freq(s):
    D = s.head_dim
    out = []
    for i in range(D // 2):
        f = s.rope_theta ** (-2.0 * i / D)
        r = s.rope_scaling
        if r is not None:
            old = r["original_max_position_embeddings"]
            wavelen = 2 * math.pi / f
            if wavelen < old / r["high_freq_factor"]:
                pass
            elif wavelen > old / r["low_freq_factor"]:
                f = f / r["factor"]
            else:
                smooth = (old / wavelen - r["low_freq_factor"]) / (r["high_freq_factor"] - r["low_freq_factor"])
                f = (1 - smooth) * f / r["factor"] + smooth * f
        out.append(f)
    return torch.tensor(out, dtype=F64)


def _alt_rope(x, s, style):
    """x (B, T, D) for one head; rotation by angle t * inv_freq[i]."""
    if style == "none":
        return x
    T, D = x.shape[1], x.shape[2]
    angle = torch.arange(T, dtype=F64)[:, None] * _alt_inv_freq(s)[None, :]   # (T, D/2)
    turn = torch.polar(torch.ones_like(angle), angle)
    if style == "half":        # HF: pairs (i, i + D/2)
        z = torch.complex(x[..., :D // 2], x[..., D // 2:]) * turn
        return torch.cat((z.real, z.imag), dim=-1)
    z = torch.complex(x[..., 0::2], x[..., 1::2]) * turn   # "interleaved": pairs (2i, 2i+1)
    return torch.stack((z.real, z.imag), dim=-1).reshape(x.shape)


def alt_forward(s, params, tokens, rope="half", causal=True):
    B, T = tokens.shape
    H, Hkv, D = s.n_heads, s.n_kv_heads, s.head_dim

    def norm(x, w):
        return x / torch.sqrt((x * x).sum(-1, keepdim=True) / x.shape[-1] + s.rms_norm_eps) * w

    def linear(x, w):
        return torch.einsum("btc,oc->bto", x, w)

    allowed = torch.tril(torch.ones(T, T, dtype=torch.bool)) if causal else torch.ones(T, T, dtype=torch.bool)
    x = torch.stack([params["model.embed_tokens.weight"][tokens[b]] for b in range(B)])
    for i in range(s.n_layers):
        w = lambda name: params[f"model.layers.{i}.{name}.weight"]
        n = norm(x, w("input_layernorm"))
        q = linear(n, w("self_attn.q_proj")).reshape(B, T, H, D)
        k = linear(n, w("self_attn.k_proj")).reshape(B, T, Hkv, D).repeat_interleave(H // Hkv, dim=2)
        v = linear(n, w("self_attn.v_proj")).reshape(B, T, Hkv, D).repeat_interleave(H // Hkv, dim=2)
        heads = []
        for h in range(H):
            qh, kh = _alt_rope(q[:, :, h], s, rope), _alt_rope(k[:, :, h], s, rope)
            scores = torch.einsum("btd,bsd->bts", qh, kh) / math.sqrt(D)
            scores = torch.where(allowed, scores, torch.tensor(-math.inf, dtype=F64))
            e = torch.exp(scores - scores.max(-1, keepdim=True).values)
            heads.append(torch.einsum("bts,bsd->btd", e / e.sum(-1, keepdim=True), v[:, :, h]))
        h_ = x + linear(torch.cat(heads, dim=-1), w("self_attn.o_proj"))
        n = norm(h_, w("post_attention_layernorm"))
        gate = linear(n, w("mlp.gate_proj"))
        x = h_ + linear(gate / (1 + torch.exp(-gate)) * linear(n, w("mlp.up_proj")), w("mlp.down_proj"))
    x = norm(x, params["model.norm.weight"])
    head = params["lm_head.weight"] if "lm_head.weight" in params else params["model.embed_tokens.weight"]
    return linear(x, head)


def _alt_loss(logits, targets):
    lse = torch.logsumexp(logits, dim=-1)
    picked = torch.gather(logits, -1, targets[..., None])[..., 0]
    return (lse - picked).mean()


def check_alt_forward(res):
    s, tok = res["spec"], res["tokens"]
    alt = alt_forward(s, res["params"], tok[:, :-1])
    scale = res["logits"].abs().max().item()
    err = (alt - res["logits"]).abs().max().item()
    # float64, same math in a different order: agreement to ~1e-15 relative; 1e-12 leaves room.
    _require(err <= 1e-12 * scale, f"{res['case']['name']}: alternative forward differs by {err:.3e} "
                                   f"(logits scale {scale:.3e})")
    lerr = abs(_alt_loss(alt, tok[:, 1:]).item() - res["loss"])
    _require(lerr <= 1e-12 * res["loss"], f"{res['case']['name']}: alternative loss differs by {lerr:.3e}")
    return err / scale


# ---- 2. finite differences -----------------------------------------------------------------
def _directional_fd(s, params, tokens, direction, h):
    """Fourth-order central difference of the loss along `direction` (error O(h^4))."""
    def f(t):
        shifted = {n: p + t * direction[n] if n in direction else p for n, p in params.items()}
        with torch.no_grad():
            return llama_ref.forward_loss(s, shifted, tokens)[1].item()
    return (f(-2 * h) - 8 * f(-h) + 8 * f(h) - f(2 * h)) / (12 * h)


def check_finite_differences(res, per_tensor, seed=7):
    """Whole-model random direction, and (per_tensor) one direction per parameter tensor.

    Directions are g + |g|_rms * noise so the expected derivative is not ~0 by accident.
    Passes when |fd - <g, d>| <= 1e-6 |g| |d| (float64: step 1e-3 gives O(1e-12) truncation).
    """
    s, params, grads, tok = res["spec"], res["params"], res["grads"], res["tokens"]
    gen = torch.Generator().manual_seed(seed)

    def direction(names):
        d = {}
        for n in names:
            g = grads[n]
            rms = g.pow(2).mean().sqrt()
            d[n] = g + rms * torch.randn(g.shape, generator=gen, dtype=F64)
        norm = math.sqrt(sum(t.pow(2).sum().item() for t in d.values()))
        return {n: t / norm for n, t in d.items()}

    groups = [list(params)] + ([[n] for n in params] if per_tensor else [])
    worst = 0.0
    for names in groups:
        d = direction(names)
        analytic = sum((grads[n] * d[n]).sum().item() for n in names)
        gnorm = math.sqrt(sum(grads[n].pow(2).sum().item() for n in names))
        fd = _directional_fd(s, params, tok, d, 1e-3)
        rel = abs(fd - analytic) / gnorm
        worst = max(worst, rel)
        what = "all parameters" if len(names) > 1 else names[0]
        _require(rel <= 1e-6, f"{res['case']['name']}: finite difference along {what}: fd {fd:.15e} vs "
                              f"autograd {analytic:.15e} (relative {rel:.3e})")
    return worst


# ---- 3. the fixtures discriminate ----------------------------------------------------------
def check_sensitivity(res):
    """Returns {mutation: max |logits change| / max |logits|}; each must exceed 1e-3."""
    s, tok, ref = res["spec"], res["tokens"][:, :-1], res["logits"]
    scale = ref.abs().max().item()
    out = {}
    for label, kw in (("interleaved_rope", dict(rope="interleaved")), ("no_rope", dict(rope="none")),
                      ("no_causal_mask", dict(causal=False))):
        change = (alt_forward(s, res["params"], tok, **kw) - ref).abs().max().item() / scale
        # fp32 tests compare at ~1e-5 relative; a mistake must show up 100x above that.
        _require(change > 1e-3, f"{res['case']['name']}: {label} changes logits by only {change:.2e}")
        out[label] = change
    return out


def check_llama3_bands(res):
    """The llama3 case must exercise all three bands (kept, blended, divided by factor)."""
    s = res["spec"]
    r = s.rope_scaling
    D = s.head_dim
    wavelen = [2 * math.pi * s.rope_theta ** (2.0 * i / D) for i in range(D // 2)]
    old = r["original_max_position_embeddings"]
    high = sum(w < old / r["high_freq_factor"] for w in wavelen)
    low = sum(w > old / r["low_freq_factor"] for w in wavelen)
    medium = len(wavelen) - high - low
    _require(high > 0 and medium > 0 and low > 0,
             f"{res['case']['name']}: llama3 bands high/medium/low = {high}/{medium}/{low}; need all three")
    return high, medium, low


# ---- 4. AdamW ------------------------------------------------------------------------------
def check_adamw(init, grads, after):
    manual = adamw_case.manual_trajectory(init, grads)
    worst = 0.0
    for step, (a, m) in enumerate(zip(after, manual), start=1):
        for n in a:
            err = (a[n] - m[n]).abs().max().item()
            worst = max(worst, err)
            # float64, same formula with operations in a different order: ~1e-16 absolute.
            _require(err <= 1e-13, f"adamw: step {step} {n}: torch vs hand-written differ by {err:.3e}")
    return worst


# ---- 5. st_io ------------------------------------------------------------------------------
def check_st_io():
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(3, 5, generator=gen, dtype=F64) * 100
    tensors = {"f64": x, "f32": x.float(), "f16": x.half(), "bf16": x.bfloat16(),
               "i32": torch.arange(-3, 4, dtype=torch.int32), "i64": torch.tensor([-(2 ** 40), 7]),
               "scalar": torch.tensor(2.5, dtype=F64), "empty": torch.zeros(0, 4)}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "t.safetensors")
        st_io.save(path, tensors, {"k": "v"})
        back, meta = st_io.load(path)
        with open(path, "rb") as f:
            blob = f.read()
    _require(meta == {"k": "v"}, f"st_io: metadata round trip gave {meta}")
    for n, t in tensors.items():
        b = back[n]
        _require(b.dtype == t.dtype and b.shape == t.shape and torch.equal(b, t), f"st_io: {n} round trip")
    n = int.from_bytes(blob[:8], "little")
    _require(n % 8 == 0, "st_io: header not padded to 8 bytes")
    begin = 8 + n + json.loads(blob[8:8 + n])["bf16"]["data_offsets"][0]
    bits = np.frombuffer(blob[begin:begin + 30], dtype="<u2").astype(np.uint32) << 16
    _require(np.array_equal(bits.view(np.float32), tensors["bf16"].float().numpy().ravel()),
             "st_io: BF16 bytes do not decode to the tensor's values")

