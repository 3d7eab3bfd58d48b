#!/usr/bin/env python3
"""Tables of ratios and targets: llm.mu against PyTorch on the same GPU (issue 8), from the JSON
files of `mu-bench --json` and `tools/bench_torch.py --json` run at the same preset and shapes.

  python3 tools/bench_compare.py mu.json [torch.json] --commit $(git rev-parse --short HEAD) --out results.md

Rows and the targets of issue 8 (a ratio > 1 means llm.mu is faster):
  training step     tokens/s ours / torch                       >= 1.2, at no more device memory
  attention         SDPA fwd+bwd time / ours (fwd + bwd)        >= 0.8
  Muon step         torch.optim.Muon step time / our whole step  >= 2
  orthogonalization batched Polar Express time / ours batched   >= 1 (same FLOPs per step: ours
                    is timed with NS5, whose iteration costs the same as Polar Express's)
  memory-bound      each kernel's fraction of the measured copy bandwidth >= 0.85

A second table checks the speed targets of issues 4 (CUDA backend) and 5 (Muon), mostly from
mu-bench alone (the torch file is optional; without it the attention row is not measured):
  memory-bound kernels           fraction of the measured copy bandwidth      >= 0.80
  attention fwd+bwd, d=128 T=2048 our speed / SDPA's (SDPA time / ours)      >= 0.5
  training step, llama-3.2-1b    MFU against the dense bf16 peak             >= 0.40 (T = 2048)
  orthogonalization, batched     fraction of the measured bf16 GEMM rate     >= 0.60
  orthogonalization              one-at-a-time time / batched time           >= 2
  whole Muon step                its time / the training step's at 16 x 2048 tokens < 0.05; at
                                 another batch the step is scaled by tokens (marked estimated)
"""
import argparse
import datetime
import json
import sys

MEMORY_BOUND = ("embedding", "rmsnorm", "residual+rmsnorm", "rope", "swiglu", "cross-entropy", "adamw")


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"bench_compare: cannot read {path}: {e}")


def verdict(ratio, target):
    if ratio is None:
        return "not measured"
    return "met" if ratio >= target else "NOT met"


def attention_variants(mu, kind, d):
    """[(variant or None, row)] of mu-bench's attention rows of `kind` (fwd or bwd) at head dim
    d: the default kernel first, then every other tile or schedule it timed (names like
    "attention fwd d=128 (128 rows)", "attention bwd d=64 (dq 128)"), to choose defaults by."""
    kernels = {k["name"]: k for k in mu.get("kernels", []) if k.get("ms")}
    base = f"attention {kind} d={d}"
    out = [(None, kernels[base])] if base in kernels else []
    return out + [(n.split(" ", 3)[3], k) for n, k in sorted(kernels.items()) if n.startswith(base + " ")]


def rows(mu, pt):
    out = []  # (what, ours, torch, ratio, target)
    ms, ps = mu.get("step"), pt.get("step")
    if ms and ps:
        r = ms["tokens_per_s"] / ps["tokens_per_s"]
        out.append(("training step tokens/s", f"{ms['tokens_per_s']:.0f}", f"{ps['tokens_per_s']:.0f}", r, 1.2))
        if ms.get("memory_bytes") and ps.get("memory_bytes"):
            r = ps["memory_bytes"] / ms["memory_bytes"]
            out.append(("training step memory (GiB; ratio torch/ours)", f"{ms['memory_bytes'] / 2**30:.2f}",
                        f"{ps['memory_bytes'] / 2**30:.2f}", r, 1.0))
    kernels = {k["name"]: k for k in mu.get("kernels", [])}
    for a in pt.get("attention", []):
        d = a["name"].split("=")[-1]
        for fname, f in attention_variants(mu, "fwd", d):
            for bname, b in attention_variants(mu, "bwd", d):
                ours = f["ms"] + b["ms"]
                variant = ", ".join(x for x in (fname and f"fwd {fname}", bname and f"bwd {bname}") if x)
                label = f"attention fwd+bwd d={d}" + (f", {variant}" if variant else "") + " (ms)"
                out.append((label, f"{ours:.3f}", f"{a['fwd_bwd_ms']:.3f}", a["fwd_bwd_ms"] / ours, 0.8))
    mm, pm = mu.get("muon"), pt.get("muon")
    if mm and pm:
        if "torch_optim_muon_ms" in pm:
            out.append(("Muon step (ms)", f"{mm['muon_step_ms']:.3f}", f"{pm['torch_optim_muon_ms']:.3f}",
                        pm["torch_optim_muon_ms"] / mm["muon_step_ms"], 2.0))
        out.append(("batched orthogonalization (ms)", f"{mm['ortho_batched_ms']:.3f}",
                    f"{pm['batched_polar_express_ms']:.3f}", pm["batched_polar_express_ms"] / mm["ortho_batched_ms"],
                    1.0))
    for name, k in kernels.items():
        if name.startswith(MEMORY_BOUND) and k.get("fraction_of_ceiling") is not None:
            out.append((f"{name}: fraction of copy bandwidth", f"{k['rate']:.0f} GB/s", "-", k["fraction_of_ceiling"],
                        0.85))
    return out


def best_attention(mu, d):
    """The fastest forward + backward over every tile variant mu-bench timed at head dim d."""
    fwd = [k["ms"] for _, k in attention_variants(mu, "fwd", d)]
    bwd = [k["ms"] for _, k in attention_variants(mu, "bwd", d)]
    return min(fwd) + min(bwd) if fwd and bwd else None


def target_rows(mu, pt):
    """(issue, what, measured, target text, verdict) for the speed targets of issues 4 and 5."""
    out = []
    config, B, T = mu.get("config"), mu.get("batch_size"), mu.get("seq_len")
    at_1b = config == "llama-3.2-1b"
    note_1b = "" if at_1b else f" (measured at {config}; the target is stated at llama-3.2-1b)"

    def at_preset(v):  # a verdict from another preset is not the target's: the verdict says so too
        return v if at_1b or not v.startswith(("met", "NOT met")) else v + " (not at llama-3.2-1b)"

    for k in mu.get("kernels", []):
        if k["name"].startswith(MEMORY_BOUND) and k.get("fraction_of_ceiling") is not None:
            f = k["fraction_of_ceiling"]
            out.append(("4", f"{k['name']}: fraction of copy bandwidth", f"{f:.2f} ({k['rate']:.0f} GB/s)", ">= 0.80",
                        "met" if f >= 0.8 else "NOT met"))
    sdpa = {a["name"]: a for a in (pt or {}).get("attention", [])}.get("attention d=128")
    ours = best_attention(mu, 128)
    what = "attention fwd+bwd d=128: SDPA time / ours (best tiles)"
    if T != 2048:
        what += f" (at T={T}; the target is stated at T=2048)"
    if sdpa and ours:
        r = sdpa["fwd_bwd_ms"] / ours
        out.append(("4", what, f"{r:.2f} ({ours:.3f} vs {sdpa['fwd_bwd_ms']:.3f} ms)", ">= 0.5",
                    "met" if r >= 0.5 else "NOT met"))
    else:
        out.append(("4", what, "-", ">= 0.5", "not measured (needs bench_torch's SDPA time)"))
    step = mu.get("step") or {}
    mfu, peak = step.get("mfu_vs_peak"), mu.get("peak_tflops")
    what = f"training step MFU (6N + attention) at T={T}{note_1b}"
    if mfu and peak:
        out.append(("4", what, f"{mfu:.3f} of {peak:.0f} TFLOP/s ({step['tflops']:.0f} TFLOP/s)", ">= 0.40",
                    at_preset("met" if mfu >= 0.4 else "NOT met")))
    else:
        out.append(("4", what, "-", ">= 0.40", "not measured (no step, or no peak: pass --peak-tflops)"))
    muon = mu.get("muon") or {}
    f, tflops = muon.get("ortho_fraction_of_gemm"), muon.get("ortho_tflops")
    out.append(("5", f"orthogonalization: fraction of the bf16 GEMM rate{note_1b}",
                f"{f:.2f} ({tflops:.0f} TFLOP/s)" if f and tflops else "-", ">= 0.60",
                at_preset(("met" if f >= 0.6 else "NOT met") if f and tflops else "not measured")))
    one, batched = muon.get("ortho_one_by_one_ms"), muon.get("ortho_batched_ms")
    r = one / batched if one and batched else None
    out.append(("5", f"orthogonalization: one at a time / batched{note_1b}",
                f"{r:.2f}x ({batched:.2f} vs {one:.2f} ms)" if r else "-", ">= 2",
                at_preset(("met" if r >= 2 else "NOT met") if r else "not measured")))
    muon_ms = muon.get("muon_step_ms")
    what = f"whole Muon step / training step at 16x2048{note_1b}"
    if muon_ms and step.get("ms") and B and T:
        tokens = B * T
        train_ms = step["ms"] * (16 * 2048) / tokens
        f = muon_ms / train_ms
        exact = tokens == 16 * 2048
        what += "" if exact else f" (estimated: the step at {B}x{T} scaled by tokens)"
        out.append(("5", what, f"{f:.3f} ({muon_ms:.1f} vs {train_ms:.1f} ms)", "< 0.05",
                    at_preset(("met" if f < 0.05 else "NOT met") + ("" if exact else " (estimate)"))))
    else:
        out.append(("5", what, "-", "< 0.05", "not measured"))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mu_json")
    ap.add_argument("torch_json", nargs="?", help="tools/bench_torch.py --json output (optional: without it only "
                    "the issue targets are checked)")
    ap.add_argument("--commit", default="?")
    ap.add_argument("--out", help="also write the tables as markdown here")
    args = ap.parse_args()
    mu = load(args.mu_json)
    pt = load(args.torch_json) if args.torch_json else None
    if pt:
        for key in ("config", "batch_size", "seq_len"):
            if mu.get(key) != pt.get(key):
                sys.exit(f"bench_compare: {key} differs: mu-bench {mu.get(key)} vs bench_torch {pt.get(key)}; "
                         "run both at the same shapes")
    head = (f"# llm.mu{' vs PyTorch' if pt else ''}: {mu.get('config')}, B={mu.get('batch_size')} "
            f"T={mu.get('seq_len')}\n\n"
            f"device {mu.get('device')}, commit {args.commit}, {datetime.date.today().isoformat()}. Ceilings measured "
            f"by mu-bench: copy {mu.get('copy_gbs', 0):.0f} GB/s, bf16 GEMM {mu.get('gemm_tflops', 0):.1f} TFLOP/s; "
            f"peak for MFU {mu.get('peak_tflops') or 0:.0f} TFLOP/s.")
    if pt:
        step = pt.get("step") or {}
        head += (f" PyTorch: {pt.get('device')}, torch {pt.get('torch')}, step {step.get('impl', '-')}, "
                 f"{step.get('precision', '-')}, {'torch.compile' if step.get('compiled') else 'eager'}.")
    text = head + "\n\n"
    if pt:
        text += "## Against PyTorch (issue 8)\n\n"
        text += "| what | llm.mu | PyTorch | ratio (>1: llm.mu faster) | target | |\n|---|---|---|---|---|---|\n"
        for what, ours, theirs, r, target in rows(mu, pt):
            text += f"| {what} | {ours} | {theirs} | {r:.2f} | >= {target} | {verdict(r, target)} |\n"
        text += "\n"
    text += "## Speed targets of issues 4 and 5\n\n| issue | what | measured | target | |\n|---|---|---|---|---|\n"
    for issue, what, measured, target, v in target_rows(mu, pt):
        text += f"| {issue} | {what} | {measured} | {target} | {v} |\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
