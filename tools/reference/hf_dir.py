"""Write and read Hugging Face model directories (config.json + safetensors weights).

Layouts: one `model.safetensors`, or shards `model-0000k-of-0000n.safetensors` with
`model.safetensors.index.json` = {"metadata": {"total_size": bytes}, "weight_map": {name: file}}.
"""
import json
import os

import torch

import st_io

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
_HF_METADATA = {"format": "pt"}


def shard_name(k, n):
    return f"model-{k:05d}-of-{n:05d}.safetensors"


def write_model_dir(path, config, weights, shards=None):
    """weights: HF name -> tensor in its storage dtype.

    shards: None for a single file, else a list of name lists (one per shard file).
    """
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    if shards is None:
        st_io.save(os.path.join(path, SINGLE_NAME), weights, _HF_METADATA)
        return
    placed = [name for group in shards for name in group]
    if sorted(placed) != sorted(weights):
        raise ValueError(f"hf_dir: shards must place every tensor exactly once ({path})")
    weight_map = {}
    for k, group in enumerate(shards, start=1):
        fname = shard_name(k, len(shards))
        st_io.save(os.path.join(path, fname), {n: weights[n] for n in group}, _HF_METADATA)
        weight_map.update({n: fname for n in group})
    index = {
        "metadata": {"total_size": sum(st_io.tensor_nbytes(t) for t in weights.values())},
        "weight_map": dict(sorted(weight_map.items())),
    }
    with open(os.path.join(path, INDEX_NAME), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")


def read_model_dir(path):
    """Returns (config dict, {HF name: tensor in its stored dtype})."""
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    index_path = os.path.join(path, INDEX_NAME)
    if os.path.exists(index_path):
        with open(index_path) as f:
            weight_map = json.load(f)["weight_map"]
        files = sorted(set(weight_map.values()))
    else:
        weight_map, files = None, [SINGLE_NAME]
    weights = {}
    for fname in files:
        tensors, _ = st_io.load(os.path.join(path, fname))
        for name, t in tensors.items():
            if name in weights:
                raise ValueError(f"hf_dir: {path}: tensor {name} appears in two shards")
            if weight_map is not None and weight_map.get(name) != fname:
                raise ValueError(f"hf_dir: {path}: {name} found in {fname}, index says "
                                 f"{weight_map.get(name)}")
            weights[name] = t
    if weight_map is not None and set(weight_map) != set(weights):
        raise ValueError(f"hf_dir: {path}: index and shard contents differ")
    return config, weights


def to_f64(weights):
    return {name: t.to(torch.float64) for name, t in weights.items()}
