#!/usr/bin/env python3
"""The PyTorch side of the speed comparison (issue 8): the workloads mu-bench times, in PyTorch,
on the same GPU, with the same timing method (CUDA events after warm-up, median of runs).

  python3 tools/bench_torch.py --config smollm2-135m --batch-size 4 --seq-len 2048 --json torch.json

Workloads (each can be skipped with --skip):
  step       a Llama training step of the preset: forward, backward, fused AdamW; the model is
             transformers' LlamaForCausalLM with SDPA attention when transformers is installed,
             else the compact Llama below (the same math); bf16 autocast over fp32 weights
             (--precision autocast, PyTorch's usual recipe) or bf16 weights (--precision bf16);
             torch.compile unless --no-compile. Reports tokens/s and peak reserved memory.
  attention  scaled_dot_product_attention, causal, forward and forward+backward, at the preset's
             head shape and at head dim 128 (the shapes mu-bench times).
  muon       torch.optim.Muon over the preset's hidden matrices (q, k, v, o, gate, up, down of
             every layer, as separate 2-D parameters), and a batched Polar Express orthogonalization
             of the same matrices (same-shape matrices stacked, bf16 batched matmuls, 5 steps), as
             modded-nanogpt runs it.
On the cpu (--device cpu, for a smoke test) times come from time.perf_counter and features the
installed torch lacks (SDPA, torch.compile, torch.optim.Muon) are skipped and reported so.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
PRESETS = os.path.join(HERE, "..", "model", "configs")
sys.path.insert(0, os.path.join(HERE, "reference"))
import llama_ref  # noqa: E402  (the oracle's float64 HF math: RoPE frequencies, and --selfcheck)
import muon_case  # noqa: E402  (the oracle's Muon constants)

# Polar Express, 5 steps with safety factor 1.02 (arXiv 2505.16932): the oracle's tuples.
POLAR_EXPRESS = muon_case.POLAR_EXPRESS


def load_config(name):
    path = name if name.endswith(".json") else os.path.join(PRESETS, name + ".json")
    if not os.path.exists(path):
        sys.exit(f"bench_torch: no preset or config.json '{name}' ({path})")
    try:
        with open(path) as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"bench_torch: cannot read {path}: {e}")
    cfg.setdefault("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"])
    cfg.setdefault("num_key_value_heads", cfg["num_attention_heads"])
    return cfg


class Timer:
    """Median milliseconds of fn() after warm-up: CUDA events on a GPU, perf_counter on the cpu."""

    def __init__(self, device, warmup, runs):
        self.cuda = device.type == "cuda"
        self.warmup, self.runs = warmup, runs

    def __call__(self, fn):
        for _ in range(self.warmup):
            fn()
        times = []
        for _ in range(self.runs):
            if self.cuda:
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                fn()
                b.record()
                torch.cuda.synchronize()
                times.append(a.elapsed_time(b))
            else:
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)


# ---- a compact Llama (HF LlamaForCausalLM math), for machines without transformers ----------
# --selfcheck compares it in float64 with tools/reference/llama_ref.py.

def up(x):
    """Low-precision values are reduced in fp32; fp32 and fp64 stay as they are."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


def attention(q, k, v):
    """Causal GQA attention on (B, H, T, D) / (B, Hkv, T, D)."""
    rep = q.shape[1] // k.shape[1]
    if hasattr(F, "scaled_dot_product_attention"):
        if rep > 1:
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)  # torch < 2.0
    s = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    T = q.shape[2]
    s = s.masked_fill(torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    return torch.softmax(up(s), dim=-1).to(q.dtype) @ v


class RMSNorm(nn.Module):
    def __init__(self, c, eps):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(c)), eps

    def forward(self, x):
        xf = up(x)
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, H, Hkv, D, Fd = (cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"],
                            cfg["head_dim"], cfg["intermediate_size"])
        self.H, self.Hkv, self.D = H, Hkv, D
        self.ln1, self.ln2 = RMSNorm(C, cfg["rms_norm_eps"]), RMSNorm(C, cfg["rms_norm_eps"])
        self.q, self.k, self.v = (nn.Linear(C, H * D, bias=False), nn.Linear(C, Hkv * D, bias=False),
                                  nn.Linear(C, Hkv * D, bias=False))
        self.o = nn.Linear(H * D, C, bias=False)
        self.gate, self.up, self.down = (nn.Linear(C, Fd, bias=False), nn.Linear(C, Fd, bias=False),
                                         nn.Linear(Fd, C, bias=False))

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        h = self.ln1(x)
        q = self.q(h).view(B, T, self.H, self.D).transpose(1, 2)
        k = self.k(h).view(B, T, self.Hkv, self.D).transpose(1, 2)
        v = self.v(h).view(B, T, self.Hkv, self.D).transpose(1, 2)

        def rope(t):  # HF half-split rotation
            t1, t2 = t[..., : self.D // 2], t[..., self.D // 2:]
            return t * cos + torch.cat((-t2, t1), dim=-1) * sin

        a = attention(rope(q), rope(k), v).transpose(1, 2).reshape(B, T, self.H * self.D)
        x = x + self.o(a)
        h = self.ln2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class CompactLlama(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg["num_hidden_layers"]))
        self.norm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.head = nn.Linear(cfg["hidden_size"], cfg["vocab_size"], bias=False)
        if cfg.get("tie_word_embeddings", False):
            self.head.weight = self.embed.weight
        # theta^(-2i/D) with llama3 scaling when configured, as HF computes them
        self.register_buffer("inv_freq", llama_ref.rope_inv_freq(llama_ref.spec_from_config(cfg)), persistent=False)

    def forward(self, tokens, targets):
        T = tokens.shape[1]
        ang = torch.outer(torch.arange(T, device=tokens.device, dtype=torch.float64), self.inv_freq.double())
        ang = ang.to(self.norm.weight.dtype if self.norm.weight.dtype == torch.float64 else torch.float32)
        cos, sin = torch.cat((ang, ang), -1).cos(), torch.cat((ang, ang), -1).sin()
        x = self.embed(tokens)
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        for layer in self.layers:
            x = layer(x, cos, sin)
        logits = self.head(self.norm(x))
        return F.cross_entropy(up(logits).reshape(-1, logits.shape[-1]), targets.reshape(-1))

    def hf_params(self):
        """This model's weights under Hugging Face's names (for llama_ref)."""
        p = {"model.embed_tokens.weight": self.embed.weight, "model.norm.weight": self.norm.weight}
        if not self.cfg.get("tie_word_embeddings", False):
            p["lm_head.weight"] = self.head.weight
        for i, b in enumerate(self.layers):
            q = f"model.layers.{i}."
            p.update({q + "input_layernorm.weight": b.ln1.weight, q + "post_attention_layernorm.weight": b.ln2.weight,
                      q + "self_attn.q_proj.weight": b.q.weight, q + "self_attn.k_proj.weight": b.k.weight,
                      q + "self_attn.v_proj.weight": b.v.weight, q + "self_attn.o_proj.weight": b.o.weight,
                      q + "mlp.gate_proj.weight": b.gate.weight, q + "mlp.up_proj.weight": b.up.weight,
                      q + "mlp.down_proj.weight": b.down.weight})
        return p


def selfcheck(cfg):
    """The compact model against llama_ref in float64 (tied as configured, and untied): the loss
    must agree to 1e-10 relative, or the PyTorch side would not be timing the same model."""
    worst = 0.0
    for tied in (cfg.get("tie_word_embeddings", False), not cfg.get("tie_word_embeddings", False)):
        c = dict(cfg, tie_word_embeddings=tied)
        torch.manual_seed(7)
        m = CompactLlama(c).double()
        with torch.no_grad():
            for name, w in m.named_parameters():
                w.copy_(1.0 + 0.1 * torch.randn_like(w) if w.dim() == 1 else 0.05 * torch.randn_like(w))
        tokens = torch.randint(0, c["vocab_size"], (2, 13))
        with torch.no_grad():
            ours = m(tokens[:, :-1], tokens[:, 1:]).item()
            params = {k: v.detach() for k, v in m.hf_params().items()}
            _, ref = llama_ref.forward_loss(llama_ref.spec_from_config(c), params, tokens)
        err = abs(ours - ref.item()) / abs(ref.item())
        print(f"selfcheck ({'tied' if tied else 'untied'}): compact {ours:.12f} vs llama_ref {ref.item():.12f}, "
              f"rel {err:.1e}")
        worst = max(worst, err)
    if worst > 1e-10:
        sys.exit(f"bench_torch: --selfcheck failed: the compact Llama differs from llama_ref by {worst:.1e}")


def build_model(cfg, impl, device):
    if impl == "hf":
        from transformers import LlamaConfig, LlamaForCausalLM
        # torch_dtype / dtype would make transformers build the weights in bf16; the precision
        # is --precision's choice here.
        keys = {k: v for k, v in cfg.items() if not k.startswith("_") and k not in ("torch_dtype", "dtype")}
        conf = LlamaConfig(**keys)
        try:
            hf = LlamaForCausalLM._from_config(conf, attn_implementation="sdpa")
        except (TypeError, ValueError):  # older transformers: SDPA is already the default there
            hf = LlamaForCausalLM(conf)
        hf = hf.float().to(device)

        def loss(tokens, targets):
            logits = hf(input_ids=tokens).logits
            return F.cross_entropy(logits.float().view(-1, cfg["vocab_size"]), targets.view(-1))
        return hf, loss
    m = CompactLlama(cfg).to(device)
    return m, m


# ---- workloads --------------------------------------------------------------------------------

def bench_step(cfg, args, device, timer):
    impl = args.model_impl
    if impl == "auto":
        try:
            import transformers  # noqa: F401
            impl = "hf"
        except ImportError:
            impl = "compact"
    try:
        model, loss_fn = build_model(cfg, impl, device)
    except Exception as e:  # noqa: BLE001 - a transformers version that rejects the config
        if args.model_impl != "auto" or impl != "hf":
            raise
        print(f"bench_torch: transformers' LlamaForCausalLM failed ({type(e).__name__}: {e}); "
              "timing the compact Llama (the same math) instead", file=sys.stderr)
        impl = "compact"
        model, loss_fn = build_model(cfg, impl, device)
    if args.precision == "bf16":
        model.to(torch.bfloat16)
    fused = device.type == "cuda"
    try:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=fused)
    except TypeError:  # torch without fused AdamW
        opt, fused = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1), False
    compiled = False
    if args.compile and hasattr(torch, "compile"):
        loss_fn, compiled = torch.compile(loss_fn), True
    B, T = args.batch_size, args.seq_len
    g = torch.Generator().manual_seed(3)
    tokens = torch.randint(0, cfg["vocab_size"], (B, T + 1), generator=g).to(device)
    inputs, targets = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()
    autocast = args.precision == "autocast" and device.type == "cuda"

    def step():
        opt.zero_grad(set_to_none=True)
        if autocast:
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
                loss = loss_fn(inputs, targets)
        else:
            loss = loss_fn(inputs, targets)
        loss.backward()
        opt.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    ms = timer(step)
    tok_s = B * T / (ms * 1e-3)
    mem = torch.cuda.max_memory_reserved() if device.type == "cuda" else 0
    print(f"step ({impl}, {args.precision}, {'compiled' if compiled else 'eager'}, "
          f"{'fused ' if fused else ''}AdamW): {ms:.1f} ms, {tok_s:.0f} tokens/s, "
          f"peak reserved {mem / 2**30:.2f} GiB")
    return {"ms": ms, "tokens_per_s": tok_s, "memory_bytes": mem, "impl": impl, "precision": args.precision,
            "compiled": compiled, "fused_adamw": fused}


def bench_attention(cfg, args, device, timer):
    if not hasattr(F, "scaled_dot_product_attention"):
        print("attention: skipped (this torch has no scaled_dot_product_attention)")
        return []
    B, T = args.batch_size, args.seq_len
    H, Hkv, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    shapes = [(H, Hkv, D)]
    if D != 128:  # mu-bench's second point: head dim 128 with the same width, no GQA
        h = max(1, H * D // 128)
        shapes.append((h, h, 128))
    dt = torch.bfloat16 if device.type == "cuda" else torch.float32
    out = []
    for h, hkv, d in shapes:
        q = torch.randn(B, h, T, d, device=device, dtype=dt, requires_grad=True)
        k = torch.randn(B, hkv, T, d, device=device, dtype=dt, requires_grad=True)
        v = torch.randn(B, hkv, T, d, device=device, dtype=dt, requires_grad=True)
        gqa = {"enable_gqa": True} if hkv != h else {}
        try:
            F.scaled_dot_product_attention(q, k, v, is_causal=True, **gqa)
        except TypeError:  # torch < 2.5: no enable_gqa; expand K/V (a copy the engine does not make)
            gqa = None
        dout = torch.randn(B, h, T, d, device=device, dtype=dt)  # random, as mu-bench's: not ones

        def run(backward):
            kk, vv = (k, v) if gqa is not None else (k.repeat_interleave(h // hkv, 1), v.repeat_interleave(h // hkv, 1))
            o = F.scaled_dot_product_attention(q, kk, vv, is_causal=True, **(gqa or {}))
            if backward:
                o.backward(dout)
        fwd = timer(lambda: run(False))
        both = timer(lambda: run(True))
        name = f"attention d={d}"
        print(f"{name} (B={B} T={T} H={h} Hkv={hkv}): fwd {fwd:.3f} ms, fwd+bwd {both:.3f} ms")
        out.append({"name": name, "shape": [B, T, h, hkv, d], "fwd_ms": fwd, "fwd_bwd_ms": both})
    return out


def hidden_shapes(cfg):
    C, H, Hkv, D, Fd = (cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"],
                        cfg["intermediate_size"])
    per_layer = [(H * D, C), (Hkv * D, C), (Hkv * D, C), (C, H * D), (Fd, C), (Fd, C), (C, Fd)]
    return per_layer * cfg["num_hidden_layers"]


def polar_express_batched(x):
    """x: (k, m, n) bf16 with m <= n; 5 Polar Express steps on each item."""
    x = x / (x.float().norm(dim=(-2, -1), keepdim=True) * 1.02 + 1e-6).to(x.dtype)
    for a, b, c in POLAR_EXPRESS:
        A = x @ x.mT
        Bm = b * A + c * (A @ A)
        x = a * x + Bm @ x
    return x


def bench_muon(cfg, args, device, timer):
    shapes = hidden_shapes(cfg)
    out = {}
    dt = torch.bfloat16 if device.type == "cuda" else torch.float32
    groups = {}
    for r, c in shapes:
        m, n = min(r, c), max(r, c)
        groups[(m, n)] = groups.get((m, n), 0) + 1
    xs = [torch.randn(k, m, n, device=device, dtype=dt) for (m, n), k in groups.items()]
    fn = polar_express_batched
    if args.compile and hasattr(torch, "compile"):
        fn = torch.compile(polar_express_batched)
    out["batched_polar_express_ms"] = timer(lambda: [fn(x) for x in xs])
    flops = sum(k * 5 * (4 * m * m * n + 2 * m ** 3) for (m, n), k in groups.items())
    out["ortho_flops"] = flops
    print(f"batched Polar Express ({len(shapes)} matrices in {len(groups)} shapes): "
          f"{out['batched_polar_express_ms']:.3f} ms, {flops / out['batched_polar_express_ms'] / 1e9:.1f} TFLOP/s")
    if hasattr(torch.optim, "Muon"):
        params = [torch.nn.Parameter(torch.randn(r, c, device=device) * 0.02) for r, c in shapes]
        for p in params:
            p.grad = torch.randn_like(p)
        opt = torch.optim.Muon(params, lr=0.02)
        out["torch_optim_muon_ms"] = timer(opt.step)
        print(f"torch.optim.Muon step: {out['torch_optim_muon_ms']:.3f} ms")
    else:
        print("torch.optim.Muon: skipped (this torch has none; PyTorch >= 2.9)")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--config", default="llama-3.2-1b", help="preset name (model/configs) or config.json")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--runs", type=int, default=10, help="timed runs (the median is reported)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed runs first (torch.compile compiles here)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--precision", choices=["autocast", "bf16"], default="autocast")
    ap.add_argument("--model-impl", choices=["auto", "hf", "compact"], default="auto")
    ap.add_argument("--no-compile", dest="compile", action="store_false")
    ap.add_argument("--skip", default="", help="comma list of workloads to skip: step,attention,muon")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--selfcheck", action="store_true",
                    help="only check the compact model against tools/reference/llama_ref.py in float64, then exit")
    args = ap.parse_args()
    skip = {s for s in args.skip.split(",") if s}
    bad = skip - {"step", "attention", "muon"}
    if bad:
        sys.exit(f"bench_torch: --skip: unknown workload(s) {sorted(bad)}")
    if args.batch_size < 1 or args.seq_len < 1 or args.runs < 1 or args.warmup < 0:
        sys.exit("bench_torch: --batch-size, --seq-len and --runs must be positive, --warmup >= 0")
    cfg = load_config(args.config)
    if args.selfcheck:
        selfcheck(cfg)
        return
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_torch: --device cuda but torch sees no GPU")
    timer = Timer(device, args.warmup, args.runs)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(f"bench_torch: torch {torch.__version__} on {name}, {args.config}, B={args.batch_size} T={args.seq_len}",
          flush=True)
    res = {"device": name, "torch": torch.__version__, "config": args.config, "batch_size": args.batch_size,
           "seq_len": args.seq_len}
    if "step" not in skip:
        res["step"] = bench_step(cfg, args, device, timer)
    if "attention" not in skip:
        res["attention"] = bench_attention(cfg, args, device, timer)
    if "muon" not in skip:
        res["muon"] = bench_muon(cfg, args, device, timer)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
