"""Learning-rate schedules: a pure function of the step (and, for a cosine over a time budget, of the training
seconds so far), so a resumed run counted in steps gets exactly the same rates."""
from __future__ import annotations

import math


def learning_rate(cfg, step: int, seconds: float = 0.0) -> float:
    """The learning rate for 0-based optimiser step `step`, after `seconds` of training, under TrainConfig `cfg`.

    Linear warmup from lr/warmup to lr over the first `warmup_steps` steps, then:
      constant  lr
      step      lr * gamma ** ((step - warmup) // step_size)
      cosine    from lr down to lr * min_lr_frac at max_steps, along half a cosine; with
                schedule_by="time" the progress is seconds / max_time instead (the budget a user actually has:
                the decay ends when the time does, however many steps this machine manages)
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    k = step - cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "step":
        return cfg.lr * cfg.gamma ** (k // cfg.step_size)
    # cosine
    if cfg.schedule_by == "time":
        frac = min(1.0, seconds / cfg.max_time)
    else:
        frac = min(1.0, k / max(1, cfg.max_steps - cfg.warmup_steps))
    lo = cfg.lr * cfg.min_lr_frac
    return lo + 0.5 * (cfg.lr - lo) * (1.0 + math.cos(math.pi * frac))
