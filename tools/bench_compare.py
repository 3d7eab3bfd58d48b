#!/usr/bin/env python3
"""One table of ratios, llm.mu against PyTorch on the same GPU (issue 8), from the JSON files of
`mu-bench --json` and `tools/bench_torch.py --json` run at the same preset and shapes.

  python3 tools/bench_compare.py mu.json torch.json --commit $(git rev-parse --short HEAD) --out results.md

Rows and the targets of issue 8 (a ratio > 1 means llm.mu is faster):
  training step     tokens/s ours / torch                       >= 1.2, at no more device memory
  attention         SDPA fwd+bwd time / ours (fwd + bwd)        >= 0.8
  Muon step         torch.optim.Muon step time / our whole step  >= 2
  orthogonalization batched Polar Express time / ours batched   >= 1 (same FLOPs per step: ours
                    is timed with NS5, whose iteration costs the same as Polar Express's)
  memory-bound      each kernel's fraction of the measured copy bandwidth >= 0.85
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
        # The default kernels first, then every other tile choice mu-bench timed (names like
        # "attention fwd d=128 (128 rows)", "attention bwd d=64 (dq 128)"), to choose defaults by.
        fwds = [(None, kernels.get(f"attention fwd d={d}"))]
        bwds = [(None, kernels.get(f"attention bwd d={d}"))]
        for name, k in sorted(kernels.items()):
            if name.startswith(f"attention fwd d={d} ") and k.get("ms"):
                fwds.append((name.split(" ", 3)[3], k))
            if name.startswith(f"attention bwd d={d} ") and k.get("ms"):
                bwds.append((name.split(" ", 3)[3], k))
        for fname, f in fwds:
            for bname, b in bwds:
                if not (f and b):
                    continue
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mu_json")
    ap.add_argument("torch_json")
    ap.add_argument("--commit", default="?")
    ap.add_argument("--out", help="also write the table as markdown here")
    args = ap.parse_args()
    mu, pt = load(args.mu_json), load(args.torch_json)
    for key in ("config", "batch_size", "seq_len"):
        if mu.get(key) != pt.get(key):
            sys.exit(f"bench_compare: {key} differs: mu-bench {mu.get(key)} vs bench_torch {pt.get(key)}; "
                     "run both at the same shapes")
    head = (f"# llm.mu vs PyTorch: {mu.get('config')}, B={mu.get('batch_size')} T={mu.get('seq_len')}\n\n"
            f"device {mu.get('device')} (torch side: {pt.get('device')}, torch {pt.get('torch')}), commit "
            f"{args.commit}, {datetime.date.today().isoformat()}. Ceilings measured by mu-bench: copy "
            f"{mu.get('copy_gbs', 0):.0f} GB/s, bf16 GEMM {mu.get('gemm_tflops', 0):.1f} TFLOP/s. PyTorch step: "
            f"{(pt.get('step') or {}).get('impl', '-')}, {(pt.get('step') or {}).get('precision', '-')}, "
            f"{'torch.compile' if (pt.get('step') or {}).get('compiled') else 'eager'}.\n\n")
    table = "| what | llm.mu | PyTorch | ratio (>1: llm.mu faster) | target | |\n|---|---|---|---|---|---|\n"
    for what, ours, theirs, r, target in rows(mu, pt):
        table += f"| {what} | {ours} | {theirs} | {r:.2f} | >= {target} | {verdict(r, target)} |\n"
    print(head + table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(head + table)


if __name__ == "__main__":
    main()
