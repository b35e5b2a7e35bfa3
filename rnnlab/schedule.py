"""Learning-rate schedules: a pure function of the step, so a resumed run gets exactly the same rates."""
from __future__ import annotations

import math


def learning_rate(cfg, step: int) -> float:
    """The learning rate for 0-based optimiser step `step` under TrainConfig `cfg`.

    Linear warmup from lr/warmup to lr over the first `warmup_steps` steps, then:
      constant  lr
      step      lr * gamma ** ((step - warmup) // step_size)
      cosine    from lr down to lr * min_lr_frac at max_steps, along half a cosine
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    k = step - cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "step":
        return cfg.lr * cfg.gamma ** (k // cfg.step_size)
    # cosine
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    frac = min(1.0, k / span)
    lo = cfg.lr * cfg.min_lr_frac
    return lo + 0.5 * (cfg.lr - lo) * (1.0 + math.cos(math.pi * frac))
