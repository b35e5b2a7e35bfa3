"""Optimisers over a dict of NumPy arrays, updated in place.

Parameters, gradients and optimiser state are plain dicts name -> array, so checkpoints are the same for every
engine. Slot names are "<param>.<slot>", plus "step" (a 0-d int64 array: how many updates have been applied).
Update rules follow torch.optim with its defaults (dampening 0, no Nesterov), except Adagrad, which follows the
paper and Duchi et al.: the epsilon sits inside the square root, p -= lr * g / sqrt(G + eps). Weight decay
(--weight-decay, lambda) is decoupled from the gradient, as in AdamW (Loshchilov & Hutter 2019, "Decoupled Weight
Decay Regularization"), for every optimiser: p *= 1 - lr * lambda before the rule's update, so Adam with it is
torch.optim.AdamW term for term (not torch's coupled `weight_decay`, which adds lambda * p to the gradient).
"""
from __future__ import annotations

import numpy as np

SLOTS = {"sgd": ("momentum_buffer",), "adagrad": ("sum",), "rmsprop": ("square_avg",),
         "adam": ("exp_avg", "exp_avg_sq")}


def init_state(params: dict, cfg) -> dict:
    """Zeroed optimiser state for TrainConfig `cfg`: one array per (param, slot) and the step counter."""
    slots = SLOTS[cfg.optimizer]
    if cfg.optimizer == "sgd" and cfg.momentum == 0.0:
        slots = ()
    state = {f"{name}.{slot}": np.zeros_like(p) for name, p in params.items() for slot in slots}
    state["step"] = np.zeros((), dtype=np.int64)
    return state


def global_norm(grads: dict) -> float:
    """sqrt(sum of squares of every gradient entry), accumulated in float64."""
    total = 0.0
    for g in grads.values():
        v = g.ravel()
        total += float(np.dot(v, v))
    return total ** 0.5


def clip_(grads: dict, cfg, norm: float) -> None:
    """Clip in place: elementwise to [-clip_value, clip_value] (the paper's +-5), then by global norm.

    `norm` is the global norm before any clipping (callers compute it once, to log it and to catch NaN)."""
    if cfg.clip_value > 0:
        for g in grads.values():
            np.clip(g, -cfg.clip_value, cfg.clip_value, out=g)
        if cfg.clip_norm > 0:
            norm = global_norm(grads)
    if cfg.clip_norm > 0 and norm > cfg.clip_norm:
        scale = cfg.clip_norm / (norm + 1e-6)
        for g in grads.values():
            g *= scale


def update_(params: dict, grads: dict, state: dict, cfg, lr: float) -> None:
    """One optimiser step in place on `params` and `state`; `grads` may be used as scratch space."""
    state["step"] += 1
    t = int(state["step"])
    opt = cfg.optimizer
    for name, p in params.items():
        g = grads[name]
        if cfg.weight_decay:
            p *= 1.0 - lr * cfg.weight_decay             # decoupled weight decay (AdamW), before the update
        if opt == "sgd":
            if cfg.momentum:
                buf = state[f"{name}.momentum_buffer"]
                if t == 1:                       # torch.optim.SGD: the first buffer is the gradient itself
                    buf[...] = g
                else:
                    buf *= cfg.momentum
                    buf += g
                g = buf
            p -= lr * g
        elif opt == "adagrad":
            mem = state[f"{name}.sum"]
            mem += g * g
            p -= lr * g / np.sqrt(mem + cfg.eps)
        elif opt == "rmsprop":
            sq = state[f"{name}.square_avg"]
            sq *= cfg.beta2
            sq += (1.0 - cfg.beta2) * g * g
            p -= lr * g / (np.sqrt(sq) + cfg.eps)
        else:  # adam
            m, v = state[f"{name}.exp_avg"], state[f"{name}.exp_avg_sq"]
            m *= cfg.beta1
            m += (1.0 - cfg.beta1) * g
            v *= cfg.beta2
            v += (1.0 - cfg.beta2) * g * g
            bc1 = 1.0 - cfg.beta1 ** t
            bc2 = 1.0 - cfg.beta2 ** t
            denom = np.sqrt(v) / (bc2 ** 0.5) + cfg.eps      # torch.optim.Adam's formula, term for term
            p -= (lr / bc1) * m / denom
