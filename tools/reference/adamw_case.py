"""AdamW oracle: torch.optim.AdamW on float64 params, two groups, an LR that changes per step.

Also returns a hand-written AdamW trajectory (the update rule of the torch.optim.AdamW docs)
so the self-check can confirm torch did what the C++ side will be told it did.
"""
import json
import os

import torch

import st_io

BETAS = (0.9, 0.95)
EPS = 1e-8
WEIGHT_DECAY = 0.1       # the decay group (w2d); the no-decay group (b1d) uses 0
LRS = [1e-3, 2e-3, 3e-3, 2e-3, 1e-3]
SEED = 2001


def _draw(gen):
    init = {"w2d": torch.randn(7, 5, generator=gen, dtype=torch.float64),
            "b1d": torch.randn(5, generator=gen, dtype=torch.float64)}
    grads = [{n: torch.randn(t.shape, generator=gen, dtype=torch.float64) for n, t in init.items()}
             for _ in LRS]
    return init, grads


def _torch_trajectory(init, grads):
    params = {n: t.clone().requires_grad_(True) for n, t in init.items()}
    opt = torch.optim.AdamW(
        [{"params": [params["w2d"]], "weight_decay": WEIGHT_DECAY},
         {"params": [params["b1d"]], "weight_decay": 0.0}],
        lr=LRS[0], betas=BETAS, eps=EPS)
    after = []
    for lr, g in zip(LRS, grads):
        for group in opt.param_groups:
            group["lr"] = lr
        for n, p in params.items():
            p.grad = g[n].clone()
        opt.step()
        after.append({n: p.detach().clone() for n, p in params.items()})
    return after


def manual_trajectory(init, grads):
    """Decoupled decay p *= 1 - lr*wd, then the bias-corrected Adam step."""
    wd = {"w2d": WEIGHT_DECAY, "b1d": 0.0}
    b1, b2 = BETAS
    p = {n: t.clone() for n, t in init.items()}
    m = {n: torch.zeros_like(t) for n, t in init.items()}
    v = {n: torch.zeros_like(t) for n, t in init.items()}
    after = []
    for step, (lr, g) in enumerate(zip(LRS, grads), start=1):
        for n in p:
            p[n] = p[n] * (1 - lr * wd[n])
            m[n] = b1 * m[n] + (1 - b1) * g[n]
            v[n] = b2 * v[n] + (1 - b2) * g[n] ** 2
            m_hat = m[n] / (1 - b1 ** step)
            v_hat = v[n] / (1 - b2 ** step)
            p[n] = p[n] - lr * m_hat / (v_hat.sqrt() + EPS)
        after.append({n: t.clone() for n, t in p.items()})
    return after


def run_case(out_dir):
    """Writes out_dir/adamw/fixture.safetensors; returns (init, grads, torch trajectory)."""
    init, grads = _draw(torch.Generator().manual_seed(SEED))
    after = _torch_trajectory(init, grads)
    tensors = {f"init.{n}": t for n, t in init.items()}
    for step, (g, a) in enumerate(zip(grads, after), start=1):
        tensors.update({f"grad.{step}.{n}": t for n, t in g.items()})
        tensors.update({f"after.{step}.{n}": t for n, t in a.items()})
    hparams = {"betas": list(BETAS), "eps": EPS, "weight_decay": WEIGHT_DECAY, "lrs": LRS,
               "decay_params": ["w2d"], "no_decay_params": ["b1d"]}
    os.makedirs(os.path.join(out_dir, "adamw"), exist_ok=True)
    st_io.save(os.path.join(out_dir, "adamw", "fixture.safetensors"), tensors,
               {"hparams": json.dumps(hparams), "case": "adamw"})
    return init, grads, after
