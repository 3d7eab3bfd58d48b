#!/usr/bin/python3
"""Check a Hugging Face Llama directory with the oracle's own reader and float64 model.

  /usr/bin/python3 tools/reference/check_hf_dir.py --pair DIR TOKENS [--pair DIR TOKENS ...]

For each DIR (e.g. written by `mu-convert --to-hf`): reads it with hf_dir.read_model_dir
(which checks that the index and the shards agree), then checks what transformers relies on:
every safetensors file says __metadata__ {"format": "pt"}; the index's metadata.total_size is
the sum of the tensor bytes; the tensors are exactly the config's parameters (a tied model has
no lm_head.weight, or one equal to the embedding); every tensor is stored in the config's
torch_dtype. Then runs llama_ref's float64 forward on the stored values with the tokens of
TOKENS (a safetensors file with "tokens" I32 (B, T+1), as the fixtures hold) and prints one
JSON line per DIR: {"dir", "loss", "dtype", "tensors", "files"}. Exits 1 on the first failure.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # run from the source tree: leave no __pycache__ there

import torch  # noqa: E402

import hf_dir  # noqa: E402
import llama_ref  # noqa: E402
import st_io  # noqa: E402

_TORCH_DTYPE = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class CheckFailed(Exception):
    pass


def weight_files(path):
    index = os.path.join(path, hf_dir.INDEX_NAME)
    if os.path.exists(index):
        with open(index) as f:
            j = json.load(f)
        return sorted(set(j["weight_map"].values())), j
    return [hf_dir.SINGLE_NAME], None


def check_dir(path, tokens_path):
    config, stored = hf_dir.read_model_dir(path)
    files, index = weight_files(path)
    for fname in files:
        _, metadata = st_io.load(os.path.join(path, fname))
        if metadata.get("format") != "pt":
            raise CheckFailed(f"{path}/{fname}: __metadata__ format is {metadata.get('format')!r}, not 'pt'")
    total = sum(st_io.tensor_nbytes(t) for t in stored.values())
    if index is not None and index.get("metadata", {}).get("total_size") != total:
        raise CheckFailed(f"{path}: index metadata.total_size {index.get('metadata')} != {total} tensor bytes")

    dtype_name = config.get("torch_dtype", config.get("dtype"))
    if dtype_name not in _TORCH_DTYPE:
        raise CheckFailed(f"{path}: config torch_dtype {dtype_name!r} is not one of {sorted(_TORCH_DTYPE)}")
    for name, t in stored.items():
        if t.dtype != _TORCH_DTYPE[dtype_name]:
            raise CheckFailed(f"{path}: {name} is stored as {t.dtype}, config.json says {dtype_name}")

    spec = llama_ref.spec_from_config(config)
    params = hf_dir.to_f64(stored)
    if spec.tied and "lm_head.weight" in params:
        if not torch.equal(params.pop("lm_head.weight"), params["model.embed_tokens.weight"]):
            raise CheckFailed(f"{path}: tied model whose lm_head.weight differs from the embedding")
    want = llama_ref.param_shapes(spec)
    got = {n: tuple(t.shape) for n, t in params.items()}
    if got != want:
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        wrong = sorted(n for n in set(want) & set(got) if want[n] != got[n])
        raise CheckFailed(f"{path}: tensors differ from the config's layout: missing {missing}, "
                          f"unexpected {extra}, wrong shape {wrong}")

    fx, _ = st_io.load(tokens_path)
    tokens = fx["tokens"].to(torch.int64)
    _, loss = llama_ref.forward_loss(spec, params, tokens)
    return {"dir": path, "loss": loss.item(), "dtype": dtype_name, "tensors": len(stored), "files": len(files)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", nargs=2, action="append", required=True, metavar=("DIR", "TOKENS"),
                    help="a HF directory and a safetensors file holding 'tokens' (B, T+1)")
    args = ap.parse_args()
    torch.set_num_threads(1)  # deterministic summation order, and the test machines are small
    try:
        for path, tokens in args.pair:
            print(json.dumps(check_dir(path, tokens)), flush=True)
    except (CheckFailed, ValueError, KeyError, OSError) as e:
        print(f"check_hf_dir: FAILED: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
