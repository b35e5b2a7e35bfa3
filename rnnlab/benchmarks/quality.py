"""Time to quality: train the recommended recipe (`--preset shakespeare`) with a wall-clock budget, exactly as
`rnnlab train --preset shakespeare --max-time BUDGET` does, and print the validation curve (nats/char on the last
10% of the text against elapsed seconds) next to the reference points of issue 5.

Elapsed time is the training loop's own clock (rnnlab.train): it starts after the text is encoded and the model
built, and it includes the evaluations along the way (each a full pass over the validation text), so the curve is
what a user waiting on the command sees, not a clock paused for evaluation.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from ..config import PRESETS, ModelConfig, TrainConfig
from ..train import train

# Reference points from issue 5 (same kind of machine: 2 cores, AVX-512), nats/char on the validation split.
REFERENCES = [
    ("min_char_rnn.py (the paper, numpy)", 180, 1.98),
    ("nanoGPT CPU recipe (4-layer 128-wide transformer)", 75, 1.886),
    ("plain PyTorch LSTM H=256, Adam", 75, 1.54),
    ("plain PyTorch LSTM H=512", 300, 1.51),
    ("nanoGPT's best, on an A100 GPU", None, 1.4697),
]
TARGETS = [(75, 1.50), (600, 1.45)]


def configs(data: str, budget: float, preset: str = "shakespeare", **changes):
    """(ModelConfig, TrainConfig) of `preset` on `data` with `budget` seconds; `changes` override (exploration)."""
    values = dict(PRESETS[preset], data=data, max_time=float(budget), **changes)
    values.setdefault("max_steps", 10 ** 9)                  # the budget is the clock, not a step count
    split = lambda cls: {k: v for k, v in values.items() if k in cls.__dataclass_fields__}   # noqa: E731
    return ModelConfig(**split(ModelConfig)), TrainConfig(**split(TrainConfig))


def run(data: str, budget: float, engine: str = "auto", preset: str = "shakespeare", out=None, **changes):
    """Train into `out` (a temporary folder by default); returns the eval rows [(seconds, val nats/char)] and the
    final step count."""
    mcfg, tcfg = configs(data, budget, preset, **changes)
    with tempfile.TemporaryDirectory(prefix="rnnlab-ttq-") as tmp:
        folder = Path(out or tmp) / "run"
        summary = train(mcfg, tcfg, folder, engine, progress=False, log=lambda *a, **k: None,
                        engine_options={"device": "cpu"})
        rows = [json.loads(ln) for ln in (folder / "metrics.jsonl").read_text().splitlines()]
    curve = [(r["time"], r["val_loss"]) for r in rows if "val_loss" in r]
    return curve, summary["step"]


def report(curve, budget: float) -> list:
    """Markdown lines: the curve, then the references and whether each target at or under `budget` holds."""
    lines = ["| elapsed s | val nats/char | val bits/char |", "|---:|---:|---:|"]
    lines += [f"| {t:.0f} | {v:.4f} | {v / 0.6931471805599453:.3f} |" for t, v in curve]
    lines += ["", "| reference (issue 5) | seconds | val nats/char |", "|---|---:|---:|"]
    lines += [f"| {name} | {s if s else '-'} | {v} |" for name, s, v in REFERENCES]
    for limit, goal in TARGETS:
        if limit <= budget + 1e-9:
            best = min((v for t, v in curve if t <= limit * 1.02), default=float("inf"))   # the last eval may
            lines.append(f"\ntarget <= {goal} nats/char within {limit} s: best {best:.4f} -> "   # end a bit late
                         f"{'holds' if best <= goal else 'MISSED'}")
    return lines
