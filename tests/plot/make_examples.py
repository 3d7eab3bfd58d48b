#!/usr/bin/python3
"""Regenerates the example metrics files in this folder (deterministic; fixed seed).

  /usr/bin/python3 tests/plot/make_examples.py

adamw/metrics.jsonl: 300 steps, val every 50 steps and at the end.
muon/metrics.jsonl:  a run that crashed after step 270, mid-line (a torn last line).
The curves are synthetic (a power law plus noise, shaped like a small Llama on web text),
in the exact format mu-train writes: nlohmann::json dump(), keys sorted, one record a line.
"""
import json
import math
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
TOKENS_PER_STEP = 8 * 512 * 4  # B * T * grad_accum
STEPS = 300


def lr_at(step, peak):
    warm = 20
    if step <= warm:
        return peak * step / warm
    t = (step - warm) / (STEPS - warm)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def write(name, peak_lr, floor, speed, tok_s, crash_after=None, seed=0):
    rng = random.Random(seed)
    lines = []
    for step in range(1, STEPS + 1):
        mean = floor + (math.log(32000) - floor) * (1 + speed * step / 20) ** -0.9
        rec = {"step": step, "loss": round(mean + rng.gauss(0, 0.06), 5), "lr": lr_at(step, peak_lr),
               "grad_norm": round(0.4 + 2.5 / math.sqrt(step) + abs(rng.gauss(0, 0.05)), 4),
               "tokens_per_s": round(tok_s * (1 + rng.gauss(0, 0.02)) * (0.4 if step == 1 else 1), 1),
               "tokens": step * TOKENS_PER_STEP}
        rec["ms"] = round(TOKENS_PER_STEP / rec["tokens_per_s"] * 1e3, 2)
        lines.append(json.dumps(rec, sort_keys=True, separators=(",", ":")))
        if crash_after is not None and step == crash_after + 1:
            lines[-1] = lines[-1][: len(lines[-1]) // 2]  # this record, torn by the crash
            break
        if step % 50 == 0 or step == STEPS:
            val = {"step": step, "val_loss": round(mean + 0.04 + rng.gauss(0, 0.01), 5),
                   "tokens": step * TOKENS_PER_STEP}
            lines.append(json.dumps(val, sort_keys=True, separators=(",", ":")))
    os.makedirs(os.path.join(HERE, name), exist_ok=True)
    with open(os.path.join(HERE, name, "metrics.jsonl"), "w") as f:
        f.write("\n".join(lines[:-1]) + "\n" + lines[-1] + ("" if crash_after else "\n"))


write("adamw", 3e-4, 3.2, 1.0, 52000, seed=1)
write("muon", 0.02, 3.1, 1.35, 49000, crash_after=270, seed=2)
