"""Time to quality: train a recommended recipe (`--preset shakespeare-quick` for short budgets, `shakespeare`
otherwise) for a budget of training seconds, exactly as `rnnlab train --preset P --max-time BUDGET` does, and print
the validation curve (nats/char on the last 10% of the text against training seconds) next to the reference points
of issue 5 and, optionally, next to the plain PyTorch script of rnnlab.benchmarks.plain run here on the same budget.

The clock is the training loop's own (rnnlab.loop): it starts after the text is encoded and the model built, and
stops while evaluating and writing checkpoints, as the plain script's does; the curve also shows the wall seconds.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from ..config import PRESETS, ModelConfig, TrainConfig
from ..lm import train

# Reference points from issue 5 (measured by the author on 2 AVX-512 cores, not here), nats/char on the
# validation split. The plain PyTorch script measured in this run (--plain) is the comparison to trust.
REFERENCES = [
    ("min_char_rnn.py (the paper, numpy)", 180, 1.98),
    ("nanoGPT CPU recipe (4-layer 128-wide transformer)", 75, 1.886),
    ("plain PyTorch LSTM H=256, Adam", 75, 1.54),
    ("plain PyTorch LSTM H=512", 300, 1.51),
    ("nanoGPT's best, on an A100 GPU", None, 1.4697),
]
TARGETS = [(75, 1.45), (600, 1.40)]                     # issue 13's (issue 5's were 1.50 and 1.45)


def preset_for(budget: float) -> str:
    return "shakespeare-quick" if budget < 300 else "shakespeare"


def configs(data: str, budget: float, preset: str = "shakespeare", **changes):
    """(ModelConfig, TrainConfig) of `preset` on `data` with `budget` training seconds; `changes` override."""
    values = dict(PRESETS[preset], data=data, max_time=float(budget), **changes)
    split = lambda cls: {k: v for k, v in values.items() if k in cls.__dataclass_fields__}   # noqa: E731
    return ModelConfig(**split(ModelConfig)), TrainConfig(**split(TrainConfig))


def run(data: str, budget: float, engine: str = "auto", preset: str = "shakespeare", out=None, **changes):
    """Train into `out` (a temporary folder by default); returns the eval rows [(train s, wall s, val nats/char)]
    and the final step count."""
    mcfg, tcfg = configs(data, budget, preset, **changes)
    with tempfile.TemporaryDirectory(prefix="rnnlab-ttq-") as tmp:
        folder = Path(out or tmp) / "run"
        summary = train(mcfg, tcfg, folder, engine, progress=False, log=lambda *a, **k: None,
                        engine_options={"device": "cpu"})
        rows = [json.loads(ln) for ln in (folder / "metrics.jsonl").read_text().splitlines()]
    curve = [(r["time"], r["wall"], r["val_loss"]) for r in rows if "val_loss" in r]
    return curve, summary["step"]


def report(curve, budget: float, plain: dict | None = None) -> list:
    """Markdown lines: the curve, the plain script's result (when run), the references, and whether the target for
    this budget (75 or 600 s) holds. A target is judged only by a run with that budget: the early points of a
    longer run are on a schedule that has not decayed yet."""
    lines = ["| training s | wall s | val nats/char | val bits/char |", "|---:|---:|---:|---:|"]
    lines += [f"| {t:.0f} | {w:.0f} | {v:.4f} | {v / 0.6931471805599453:.3f} |" for t, w, v in curve]
    if plain is not None:
        lines += ["", "| measured in this run | training s | steps | chars/s | val nats/char |",
                  "|---|---:|---:|---:|---:|",
                  f"| plain PyTorch LSTM script (rnnlab.benchmarks.plain, H={plain['hidden']}) | {budget:.0f} | "
                  f"{plain['steps']:,} | {plain['chars_per_s']:,.0f} | {plain['val']:.4f} |"]
    lines += ["", "| reference (issue 5, its machine) | seconds | val nats/char |", "|---|---:|---:|"]
    lines += [f"| {name} | {s if s else '-'} | {v} |" for name, s, v in REFERENCES]
    for limit, goal in TARGETS:
        if abs(budget - limit) <= 0.02 * limit:
            seen = [v for t, _, v in curve if t <= limit * 1.02]          # the last eval may end a bit late
            best = min(seen, default=float("inf"))
            lines.append(f"\ntarget <= {goal} nats/char within {limit} s: best {best:.4f} -> "
                         f"{'holds' if best <= goal else 'MISSED'}")
    return lines
