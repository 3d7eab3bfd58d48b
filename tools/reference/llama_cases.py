"""The Llama oracle cases: HF model directories plus float64 fixtures.

For each case: build config.json, draw weights (fixed seed), store them in the case's dtype
as a HF directory, READ THAT DIRECTORY BACK, and run the float64 model on exactly the values
that were stored (so bf16/f16 rounding is part of the reference, not an error source).
"""
import json
import os
import shutil

import torch

import hf_dir
import llama_ref
import st_io

BATCH = 2
SEQ_LEN = 11           # T, deliberately not a multiple of anything
MAX_POSITIONS = 64

_STORAGE = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# gqa3_llama3: with head_dim 16 and theta 1e4 the shortest wavelength is 2*pi (i = 0), so
# original_max_position_embeddings must exceed 4*2*pi = 25.1 for a "kept" (high-frequency)
# band to exist; 32 gives high (i=0, 6.3 < 8), medium (i=1, 8 <= 19.9 <= 32) and low (i>=2).
_LLAMA3 = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
           "original_max_position_embeddings": 32, "rope_type": "llama3"}

CASES = [
    dict(name="mha_tied", seed=1001, V=97, C=64, F=160, L=2, H=4, Hkv=4, tied=True,
         theta=10000.0, eps=1e-5, dtype="float32"),
    dict(name="gqa2_untied", seed=1002, V=128, C=64, F=96, L=2, H=4, Hkv=2, tied=False,
         theta=10000.0, eps=1e-5, dtype="float32", head_dim=16),
    dict(name="gqa3_llama3", seed=1003, V=120, C=96, F=128, L=2, H=6, Hkv=2, tied=True,
         theta=10000.0, eps=1e-5, dtype="float32", rope_scaling=_LLAMA3),
    dict(name="awkward", seed=1004, V=300, C=72, F=200, L=3, H=3, Hkv=1, tied=False,
         theta=500000.0, eps=1e-6, dtype="float32"),
    dict(name="v5_headdim", seed=1005, V=111, C=64, F=96, L=2, H=4, Hkv=2, tied=False,
         theta=10000.0, eps=1e-5, dtype="float32", head_dim=32, v5=True),
    dict(name="bf16_sharded", seed=1006, V=128, C=64, F=96, L=2, H=4, Hkv=2, tied=False,
         theta=10000.0, eps=1e-5, dtype="bfloat16", head_dim=16, sharded=True),
    dict(name="f16_tied_with_head", seed=1007, V=97, C=64, F=160, L=2, H=4, Hkv=4, tied=True,
         theta=10000.0, eps=1e-5, dtype="float16", head_in_file=True),
]


def hf_config(case):
    """config.json in the transformers v4 spelling, or v5 (rope_parameters, dtype) when asked."""
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": case["V"],
        "hidden_size": case["C"],
        "intermediate_size": case["F"],
        "num_hidden_layers": case["L"],
        "num_attention_heads": case["H"],
        "num_key_value_heads": case["Hkv"],
        "max_position_embeddings": MAX_POSITIONS,
        "rms_norm_eps": case["eps"],
        "hidden_act": "silu",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "initializer_range": 0.02,
        "pretraining_tp": 1,
        "use_cache": True,
        "tie_word_embeddings": case["tied"],
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    if "head_dim" in case:
        cfg["head_dim"] = case["head_dim"]
    if case.get("v5"):
        rope = {"rope_type": "default", "rope_theta": case["theta"]}
        if case.get("rope_scaling"):
            rope = dict(case["rope_scaling"], rope_theta=case["theta"])
        cfg.update(rope_parameters=rope, dtype=case["dtype"], transformers_version="5.0.0")
    else:
        cfg.update(rope_theta=case["theta"], rope_scaling=case.get("rope_scaling"),
                   torch_dtype=case["dtype"], transformers_version="4.46.3")
    return cfg


def _init_weights(spec, gen):
    """Matrices ~ N(0, 0.02^2); norm gains 1 + 0.1 N(0, 1) so that the gains matter."""
    weights = {}
    for name, shape in llama_ref.param_shapes(spec).items():
        r = torch.randn(shape, generator=gen, dtype=torch.float64)
        weights[name] = 1.0 + 0.1 * r if len(shape) == 1 else 0.02 * r
    return weights


def _shards(names):
    """Two shards: embeddings + the first layer, then everything else."""
    first = [n for n in names if n.startswith("model.embed_tokens.") or n.startswith("model.layers.0.")]
    return [first, [n for n in names if n not in first]]


def _load_params(case_dir):
    """Read the HF directory back: (config, spec parsed from it, float64 parameters)."""
    config, stored = hf_dir.read_model_dir(case_dir)
    spec = llama_ref.spec_from_config(config)
    params = hf_dir.to_f64(stored)
    expected = llama_ref.param_shapes(spec)
    if spec.tied and "lm_head.weight" in params:
        # Tied checkpoints that also save the head: it must be the embedding, and is not a parameter.
        if not torch.equal(params.pop("lm_head.weight"), params["model.embed_tokens.weight"]):
            raise RuntimeError(f"{case_dir}: lm_head.weight differs from the tied embedding")
    if {n: tuple(t.shape) for n, t in params.items()} != expected:
        raise RuntimeError(f"{case_dir}: stored tensors do not match the config's parameter layout")
    return config, spec, params


def run_case(case, out_dir):
    """Writes out_dir/<name>/hf/ and out_dir/<name>/fixture.safetensors; returns the results."""
    case_dir = os.path.join(out_dir, case["name"])
    shutil.rmtree(case_dir, ignore_errors=True)
    hf_path = os.path.join(case_dir, "hf")
    config = hf_config(case)
    spec = llama_ref.spec_from_config(config)
    gen = torch.Generator().manual_seed(case["seed"])
    weights = {n: w.to(_STORAGE[case["dtype"]]) for n, w in _init_weights(spec, gen).items()}
    if case.get("head_in_file"):
        weights["lm_head.weight"] = weights["model.embed_tokens.weight"].clone()
    shards = _shards(list(weights)) if case.get("sharded") else None
    hf_dir.write_model_dir(hf_path, config, weights, shards)
    tokens = torch.randint(0, spec.vocab_size, (BATCH, SEQ_LEN + 1), generator=gen)

    config, spec, params = _load_params(hf_path)
    leaves = {n: p.clone().requires_grad_(True) for n, p in params.items()}
    logits, loss = llama_ref.forward_loss(spec, leaves, tokens)
    loss.backward()
    grads = {n: p.grad.detach() for n, p in leaves.items()}

    fixture = {"tokens": tokens.to(torch.int32), "logits": logits.detach(), "loss": loss.detach()}
    fixture.update({f"grad.{n}": g for n, g in grads.items()})
    fixture.update({f"param.{n}": p for n, p in params.items()})
    metadata = {"case": case["name"], "config": json.dumps(config), "batch": str(BATCH),
                "seq_len": str(SEQ_LEN), "weights_dtype": case["dtype"]}
    st_io.save(os.path.join(case_dir, "fixture.safetensors"), fixture, metadata)
    return dict(case=case, spec=spec, params=params, tokens=tokens.to(torch.int64),
                logits=logits.detach(), loss=loss.item(), grads=grads)


def describe(res):
    s, c = res["spec"], res["case"]
    return (f"{c['name']:<20} V={s.vocab_size} C={s.hidden_size} F={s.intermediate_size} "
            f"L={s.n_layers} H={s.n_heads} Hkv={s.n_kv_heads} D={s.head_dim} "
            f"{'tied' if s.tied else 'untied'} {c['dtype']} loss={res['loss']:.12f}")
