#!/usr/bin/python3
"""The PyTorch oracle: regenerates every fixture the C++ tests read, then checks itself.

  /usr/bin/python3 tools/reference/oracle.py --out DIR

writes DIR/<llama case>/hf/ (a HF model directory) and DIR/<llama case>/fixture.safetensors
for each case in llama_cases.CASES, DIR/adamw/fixture.safetensors and DIR/muon/fixture.safetensors
(muon_case.CASES, every Muon switch). Deterministic (fixed
seeds). Prints one line per case; exits 1 if a self-check fails. See README.md.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # CTest runs this from the source tree: leave no __pycache__ there

import torch  # noqa: E402

import adamw_case  # noqa: E402
import llama_cases  # noqa: E402
import muon_case  # noqa: E402
import selfcheck  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output directory (created; case folders replaced)")
    ap.add_argument("--only", nargs="*", metavar="CASE", help="generate only these cases")
    ap.add_argument("--verbose", action="store_true", help="print self-check numbers")
    args = ap.parse_args()

    torch.set_num_threads(min(2, torch.get_num_threads()))  # the test machines have 2 cores
    t0 = time.time()
    os.makedirs(args.out, exist_ok=True)
    known = [c["name"] for c in llama_cases.CASES] + ["adamw", "muon"]
    wanted = args.only if args.only else known
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        print(f"oracle: unknown case(s) {unknown}; known: {known}", file=sys.stderr)
        return 2
    try:
        selfcheck.check_st_io()
        for case in llama_cases.CASES:
            if case["name"] not in wanted:
                continue
            res = llama_cases.run_case(case, args.out)
            notes = [f"alt {selfcheck.check_alt_forward(res):.1e}"]
            # Per-tensor finite differences on the most featureful case; whole-model for all.
            per_tensor = case["name"] == "gqa3_llama3"
            notes.append(f"fd {selfcheck.check_finite_differences(res, per_tensor):.1e}"
                         + (" (per tensor)" if per_tensor else ""))
            sens = selfcheck.check_sensitivity(res)
            if res["spec"].rope_scaling is not None:
                notes.append("llama3 bands h/m/l %d/%d/%d" % selfcheck.check_llama3_bands(res))
            if args.verbose:
                notes.append("sensitivity " + " ".join(f"{k} {v:.1e}" for k, v in sens.items()))
            print(f"{llama_cases.describe(res)}  [{'; '.join(notes)}]", flush=True)
        if "adamw" in wanted:
            init, grads, after = adamw_case.run_case(args.out)
            err = selfcheck.check_adamw(init, grads, after)
            print(f"{'adamw':<20} w2d(7,5) wd={adamw_case.WEIGHT_DECAY} b1d(5,) wd=0 "
                  f"{len(adamw_case.LRS)} steps, after.5.w2d[0,0]={after[-1]['w2d'][0, 0].item():.15f}"
                  f"  [vs hand-written {err:.1e}]", flush=True)
        if "muon" in wanted:
            n_cases, n_steps, err = muon_case.run_case(args.out)
            if not err <= 1e-10:
                raise selfcheck.CheckFailed(f"muon: quintic iteration vs SVD polynomial / NorMuon norm: {err:.1e}")
            print(f"{'muon':<20} {n_cases} cases, {n_steps} steps (every switch)  [vs SVD polynomial {err:.1e}]",
                  flush=True)
    except selfcheck.CheckFailed as e:
        print(f"oracle: SELF-CHECK FAILED: {e}", file=sys.stderr)
        return 1
    print(f"oracle: wrote {args.out} in {time.time() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
