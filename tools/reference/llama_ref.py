"""Hugging Face LlamaForCausalLM math in plain torch, float64 throughout.

Written independently from the published model definition (transformers
models/llama/modeling_llama.py and modeling_rope_utils.py); each function names the piece
of HF behaviour it reproduces. No dropout, no KV cache, positions 0..T-1.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

F64 = torch.float64


@dataclass
class LlamaSpec:
    vocab_size: int
    hidden_size: int          # C
    intermediate_size: int    # F
    n_layers: int             # L
    n_heads: int              # H
    n_kv_heads: int           # Hkv
    head_dim: int             # D
    rms_norm_eps: float
    rope_theta: float
    rope_scaling: dict        # None, or the llama3 parameters
    tied: bool


def spec_from_config(cfg):
    """Parse a config.json dict in either the transformers v4 or v5 spelling.

    v4: rope_theta + rope_scaling (null or {"rope_type": "llama3", ...}; old files say "type").
    v5: rope_parameters {"rope_type": ..., "rope_theta": ..., <scaling fields>}.
    """
    if "rope_parameters" in cfg:
        rp = cfg["rope_parameters"]
        theta = float(rp["rope_theta"])
        rope_type = rp.get("rope_type", "default")
        scaling = rp if rope_type != "default" else None
    else:
        theta = float(cfg.get("rope_theta", 10000.0))
        scaling = cfg.get("rope_scaling")
        rope_type = (scaling.get("rope_type") or scaling.get("type")) if scaling else "default"
    if rope_type not in ("default", "llama3"):
        raise ValueError(f"llama_ref: rope_type {rope_type!r} not implemented")
    n_heads = int(cfg["num_attention_heads"])
    return LlamaSpec(
        vocab_size=int(cfg["vocab_size"]),
        hidden_size=int(cfg["hidden_size"]),
        intermediate_size=int(cfg["intermediate_size"]),
        n_layers=int(cfg["num_hidden_layers"]),
        n_heads=n_heads,
        n_kv_heads=int(cfg.get("num_key_value_heads", n_heads)),
        head_dim=int(cfg.get("head_dim") or cfg["hidden_size"] // n_heads),
        rms_norm_eps=float(cfg["rms_norm_eps"]),
        rope_theta=theta,
        rope_scaling=scaling if rope_type == "llama3" else None,
        tied=bool(cfg.get("tie_word_embeddings", False)),
    )


def param_shapes(s):
    """HF parameter names -> shapes (out_features, in_features), in model order."""
    C, F_, D = s.hidden_size, s.intermediate_size, s.head_dim
    shapes = {"model.embed_tokens.weight": (s.vocab_size, C)}
    for i in range(s.n_layers):
        p = f"model.layers.{i}."
        shapes[p + "input_layernorm.weight"] = (C,)
        shapes[p + "self_attn.q_proj.weight"] = (s.n_heads * D, C)
        shapes[p + "self_attn.k_proj.weight"] = (s.n_kv_heads * D, C)
        shapes[p + "self_attn.v_proj.weight"] = (s.n_kv_heads * D, C)
        shapes[p + "self_attn.o_proj.weight"] = (C, s.n_heads * D)
        shapes[p + "post_attention_layernorm.weight"] = (C,)
        shapes[p + "mlp.gate_proj.weight"] = (F_, C)
        shapes[p + "mlp.up_proj.weight"] = (F_, C)
        shapes[p + "mlp.down_proj.weight"] = (C, F_)
    shapes["model.norm.weight"] = (C,)
    if not s.tied:
        shapes["lm_head.weight"] = (s.vocab_size, C)
    return shapes


# ---- RMSNorm (LlamaRMSNorm): eps inside the sqrt, gain applied after normalising ----------
def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


# ---- RoPE ----------------------------------------------------------------------------------
def rope_inv_freq(s):
    """inv_freq[i] = theta^(-2i/D), i in [0, D/2), then llama3 scaling when configured.

    llama3 follows transformers' _compute_llama3_parameters: wavelengths longer than
    old_ctx/low_freq_factor are slowed by `factor`, shorter than old_ctx/high_freq_factor kept,
    and the band between blended with smooth = (old_ctx/wavelen - low)/(high - low).
    """
    D = s.head_dim
    inv_freq = 1.0 / (s.rope_theta ** (torch.arange(0, D, 2, dtype=F64) / D))
    if s.rope_scaling is None:
        return inv_freq
    r = s.rope_scaling
    factor, low, high = float(r["factor"]), float(r["low_freq_factor"]), float(r["high_freq_factor"])
    old_ctx = float(r["original_max_position_embeddings"])
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > old_ctx / low, inv_freq / factor, inv_freq)
    smooth = (old_ctx / wavelen - low) / (high - low)
    blended = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= old_ctx / high) & (wavelen <= old_ctx / low)
    return torch.where(medium, blended, scaled)


def rope_cos_sin(s, T):
    """cos/sin tables (T, D) for positions 0..T-1, each frequency repeated in both halves."""
    freqs = torch.outer(torch.arange(T, dtype=F64), rope_inv_freq(s))  # (T, D/2)
    emb = torch.cat((freqs, freqs), dim=-1)                               # (T, D)
    return emb.cos(), emb.sin()


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x, cos, sin):
    """x (B, heads, T, D): the half-split ("rotate_half") rotation of apply_rotary_pos_emb."""
    return x * cos + rotate_half(x) * sin


# ---- attention ------------------------------------------------------------------------------
def causal_gqa_attention(q, k, v):
    """q (B, H, T, D), k/v (B, Hkv, T, D) -> (B, H, T, D).

    Query head h reads kv head h // (H/Hkv) (HF repeat_kv); here the query heads are grouped
    as (Hkv, H/Hkv) and K/V broadcast over the group instead of being copied.
    """
    B, H, T, D = q.shape
    Hkv = k.shape[1]
    qg = q.reshape(B, Hkv, H // Hkv, T, D)                                   # (B, Hkv, G, T, D)
    scores = qg @ k.unsqueeze(2).transpose(-1, -2) / math.sqrt(D)            # (B, Hkv, G, T, T)
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    att = scores.masked_fill(future, float("-inf")).softmax(dim=-1)
    return (att @ v.unsqueeze(2)).reshape(B, H, T, D)


# ---- the model ------------------------------------------------------------------------------
def forward(s, params, tokens):
    """tokens (B, T) int64 -> logits (B, T, V). params: HF name -> float64 tensor."""
    B, T = tokens.shape
    H, Hkv, D = s.n_heads, s.n_kv_heads, s.head_dim
    cos, sin = rope_cos_sin(s, T)
    x = params["model.embed_tokens.weight"][tokens]                          # (B, T, C)
    for i in range(s.n_layers):
        p = lambda name: params[f"model.layers.{i}.{name}.weight"]
        n = rms_norm(x, p("input_layernorm"), s.rms_norm_eps)
        q = (n @ p("self_attn.q_proj").T).view(B, T, H, D).transpose(1, 2)     # (B, H, T, D)
        k = (n @ p("self_attn.k_proj").T).view(B, T, Hkv, D).transpose(1, 2)   # (B, Hkv, T, D)
        v = (n @ p("self_attn.v_proj").T).view(B, T, Hkv, D).transpose(1, 2)   # (B, Hkv, T, D)
        y = causal_gqa_attention(apply_rope(q, cos, sin), apply_rope(k, cos, sin), v)
        y = y.transpose(1, 2).reshape(B, T, H * D)                             # (B, T, H*D)
        h = x + y @ p("self_attn.o_proj").T
        n = rms_norm(h, p("post_attention_layernorm"), s.rms_norm_eps)
        mlp = F.silu(n @ p("mlp.gate_proj").T) * (n @ p("mlp.up_proj").T)    # (B, T, F)
        x = h + mlp @ p("mlp.down_proj").T
    x = rms_norm(x, params["model.norm.weight"], s.rms_norm_eps)
    head = params["model.embed_tokens.weight"] if s.tied else params["lm_head.weight"]
    return x @ head.T                                                         # (B, T, V)


def loss_fn(logits, targets):
    """Mean cross-entropy over all B*T positions (LlamaForCausalLM with pre-shifted labels)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def forward_loss(s, params, tokens):
    """tokens (B, T+1): inputs tokens[:, :-1], targets tokens[:, 1:]. Returns (logits, loss)."""
    logits = forward(s, params, tokens[:, :-1])
    return logits, loss_fn(logits, tokens[:, 1:])
