"""Optimisers and clipping for the torch engine, equal to rnnlab.engines.numpy.optim rule for rule.

Where torch.optim is used and where not:
  sgd, rmsprop, adam   torch.optim.SGD / RMSprop / Adam with their defaults (no weight decay, no Nesterov, not
                       centred, no AMSGrad). Their update rules are the NumPy engine's term for term (that file says
                       so; the NumPy rules were written after torch's); only the rounding order differs (Adam's
                       exp_avg uses lerp_), about 1e-16 relative per step.
  weight decay         written here, decoupled (AdamW's) for every optimiser: p *= 1 - lr * weight_decay before
                       the update, as the NumPy engine does; with Adam that is torch.optim.AdamW.
  adagrad              written here. torch.optim.Adagrad divides by sqrt(G) + eps; the paper (and our NumPy engine)
                       by sqrt(G + eps), which is what keeps the first steps of the paper's recipe bounded:
                           G += g * g        p -= lr * g / sqrt(G + eps)
                       in the NumPy engine's operation order, so float64 results agree bit for bit.
  clipping             written here, not torch.nn.utils.clip_grad_norm_: the NumPy order (elementwise to
                       [-clip_value, clip_value] first, then the global norm recomputed and scaled by
                       clip_norm / (norm + 1e-6) only when norm > clip_norm). clip_grad_norm_ clamps its factor
                       at 1 instead, which also shrinks norms within 1e-6 below the limit.

The optimiser state is an OptState: a dict with the NumPy engine's keys ("<param>.<slot>" -> tensor on the device,
"step" -> 0-d int64 tensor on the CPU), so checkpoints are the same. torch.optim is handed these very tensors as
its per-parameter state (it updates them in place), built lazily by `bind` on the first step, because the engine
interface loads optimiser state before it sees the parameters it belongs to.

    >>> import torch
    >>> from rnnlab.config import TrainConfig
    >>> p = {"w": torch.nn.Parameter(torch.ones(2, dtype=torch.float64))}
    >>> s = OptState({"w.sum": torch.zeros(2, dtype=torch.float64), "step": torch.tensor(0)})
    >>> p["w"].grad = torch.full((2,), 2.0, dtype=torch.float64)
    >>> update_(p, s, TrainConfig(optimizer="adagrad", eps=1e-8), lr=0.5)
    >>> round(float(p["w"][0]), 6), int(s["step"])
    (0.5, 1)
"""
from __future__ import annotations

import torch


class OptState(dict):
    """name.slot -> tensor and "step" -> int64 tensor; `optimizer` is the torch.optim object once bound."""
    optimizer = None
    bound_to = None


def bind(params: dict, opt_state: OptState, cfg):
    """The torch.optim optimizer over `params` whose state *is* opt_state's tensors (None for adagrad)."""
    if opt_state.bound_to is params:
        return opt_state.optimizer
    names = list(params)
    plist = [params[n] for n in names]
    step = float(opt_state["step"])
    opt = cfg.optimizer
    if opt == "sgd":
        o = torch.optim.SGD(plist, lr=cfg.lr, momentum=cfg.momentum)
        slots = ("momentum_buffer",) if cfg.momentum else ()
    elif opt == "rmsprop":
        o = torch.optim.RMSprop(plist, lr=cfg.lr, alpha=cfg.beta2, eps=cfg.eps)
        slots = ("square_avg",)
    elif opt == "adam":
        o = torch.optim.Adam(plist, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
        slots = ("exp_avg", "exp_avg_sq")
    else:
        o, slots = None, ()
    if o is not None:
        for n, p in zip(names, plist):
            st = {s: opt_state[f"{n}.{s}"] for s in slots}
            if opt != "sgd":            # torch keeps a step count per parameter (a CPU scalar tensor)
                st["step"] = torch.tensor(step, dtype=torch.float32)
            o.state[p] = st             # a zero momentum buffer acts as torch's "first buffer = gradient": 0*m+g = g
    opt_state.optimizer, opt_state.bound_to = o, params
    return o


def global_norm(grads: list) -> torch.Tensor:
    """sqrt(sum of squares of every gradient entry), a 0-d tensor on the device (no host sync)."""
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


def clip_(grads: list, cfg, norm: torch.Tensor) -> None:
    """Clip in place: elementwise to [-clip_value, clip_value], then to global norm clip_norm. `norm` is the norm
    before any clipping. No host sync: the scale is 1.0 (exact) when the norm is within the limit."""
    if cfg.clip_value > 0:
        for g in grads:
            g.clamp_(-cfg.clip_value, cfg.clip_value)
        if cfg.clip_norm > 0:
            norm = global_norm(grads)
    if cfg.clip_norm > 0:
        scale = torch.where(norm > cfg.clip_norm, cfg.clip_norm / (norm + 1e-6), torch.ones_like(norm))
        torch._foreach_mul_(grads, scale)


def update_(params: dict, opt_state: OptState, cfg, lr: float) -> None:
    """One optimiser step on params (their .grad) and opt_state, in place."""
    o = bind(params, opt_state, cfg)
    opt_state["step"] += 1
    if cfg.weight_decay:
        with torch.no_grad():
            torch._foreach_mul_(list(params.values()), 1.0 - lr * cfg.weight_decay)   # decoupled, before the update
    if o is not None:
        for group in o.param_groups:
            group["lr"] = lr
        o.step()
        return
    with torch.no_grad():               # adagrad, the paper's: eps inside the square root
        for name, p in params.items():
            g, mem = p.grad, opt_state[f"{name}.sum"]
            mem.addcmul_(g, g)                                      # G += g * g
            p.sub_(lr * g / (mem + cfg.eps).sqrt())                 # p -= lr * g / sqrt(G + eps)
