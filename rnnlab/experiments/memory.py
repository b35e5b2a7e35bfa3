"""The memory horizon: can the network recall a symbol it saw `lag` steps ago?

The recall task. One sequence has T = lag + 1 inputs and one target, at the last step:

    input   s   d_1  d_2  ...  d_{lag-1}   ?          s   one of K data symbols    (ids 0 .. K-1)
    target  -   -    -    ...  -           s          d_i random distractors      (ids K .. K+M-1)
                                                      ?   the recall marker        (id K+M)

Only the last step has a loss (cross-entropy against s), so the one thing that helps is carrying s across `lag`
steps of distractors: exactly what vanishing gradients make hard. Chance accuracy is 1/K.

All cells get the same parameter budget P (H is solved per cell: the largest H whose model has at most P
parameters, counted by model.param_shapes) and the same budget of optimiser steps, batch size, learning rate,
and the very same training sequences (batch s is drawn from a generator seeded by (seed, lag, s), at the lag the
curriculum gives step s). Each (cell, lag) is a character model trained from scratch by the one training loop
(rnnlab/loop.py, in a temporary run folder; Adam, global-norm clip) with the loss masked to the last step, on any
engine, then scored on fresh sequences at `lag`. Shapes: N sequences, T = lag + 1, V = K + M + 1.

The default setup, and why it is the fair one. Trained from scratch at lag 50 or 100 with PyTorch's
initialisation, a gate that starts near sigmoid(0) = 0.5 keeps s for a few steps only and the loss at the marker
sends no usable gradient back to step 1: measured (docs/paper.md section 6, --init default --no-curriculum), the
LSTM, minGRU and minLSTM sit at chance at lags 50 and 100, below the RNN (0.87 at lag 50), while the GRU recalls.
That measures the initialisation, not the memory horizon. Two standard remedies, both on by default:
  * a curriculum over lags (curriculum_lag), the same for every cell: the lag grows from 5 to `lag` over the first
    half of the steps, so a cell first learns to keep s over short gaps, then longer ones; it is cell-agnostic, so
    it cannot favour one cell, and it helps the RNN too;
  * chrono initialisation of the LSTM (chrono; Tallec & Ollivier 2018) with T_max = lag, the LSTM's own answer to
    long dependencies. Under the curriculum alone the LSTM still failed at lag 50 (0.62), under chrono alone it
    reached 0.87 at lag 50 on a second seed; with both it recalls at every lag. The other gated cells recall at every lag under the curriculum alone, so none is left with a remedy
    it would need; the RNN has no gate to initialise.
--init default and --no-curriculum give the plain setup (PyTorch's initialisation, the target lag from step 0).

    >>> task = Task(symbols=4, distractors=2)
    >>> x, y = task.batch(np.random.default_rng(0), n=2, lag=3)
    >>> x.shape, y.shape, bool((x[:, -1] == task.marker).all()), bool((x[:, 0] == y).all())
    ((2, 4), (2,), True, True)
"""
from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import loop
from ..config import ModelConfig, TrainConfig, replace
from ..engines.numpy import model
from ..vocab import Vocab

LAGS = (5, 10, 20, 50, 100)
QUICK_LAGS = (5, 10)
INITS = ("chrono", "default")   # the LSTM's initialisation (see chrono); the first is the default
CURRICULUM_START = 5            # the curriculum's first lag


@dataclass(frozen=True)
class Task:
    symbols: int = 8        # K data symbols to remember
    distractors: int = 4    # M noise symbols in between

    @property
    def marker(self) -> int:
        return self.symbols + self.distractors

    @property
    def vocab_size(self) -> int:
        return self.symbols + self.distractors + 1

    def batch(self, rng, n: int, lag: int):
        """x (n, lag + 1) ids and y (n,) the symbols to recall at the last step."""
        y = rng.integers(0, self.symbols, n)                                        # (n,)
        x = rng.integers(self.symbols, self.symbols + self.distractors, (n, lag + 1))  # (n, T) distractors
        x[:, 0] = y
        x[:, -1] = self.marker
        return x, y


def count_params(cfg: ModelConfig) -> int:
    return sum(math.prod(s) for s in model.param_shapes(cfg).values())


def hidden_for_budget(cell: str, vocab_size: int, budget: int, num_layers: int = 1, embed_dim: int = 0) -> int:
    """The largest H such that a `cell` model of `num_layers` layers (one-hot input, or an embedding of
    `embed_dim`) has at most `budget` parameters (1 when even H = 1 has more). Bisection: the count grows with H."""
    def fits(H):
        return count_params(ModelConfig(cell=cell, vocab_size=vocab_size, hidden_size=H, num_layers=num_layers,
                                        embed_dim=embed_dim)) <= budget
    lo, hi = 1, 2
    while fits(hi):
        lo, hi = hi, 2 * hi
    while hi - lo > 1:                                                   # fits(lo), not fits(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def last_step_batch(x, y) -> dict:
    """The recall batch for the one model: targets at every step, only the last one scored."""
    targets = np.zeros_like(x)                                       # (N, T)
    targets[:, -1] = y
    mask = np.zeros(x.shape, bool)
    mask[:, -1] = True
    return {"x": x, "y": targets, "mask": mask}


def curriculum_lag(lag: int, step: int, steps: int) -> int:
    """The lag trained on at `step` (0-based) of `steps`: lo = min(5, lag) growing geometrically to `lag` over the
    first half of the steps, lag_s = round(lo * (lag / lo) ** (2 s / steps)), then `lag` for the second half.

    >>> [curriculum_lag(100, s, 2000) for s in (0, 250, 500, 750, 1000, 1999)]
    [5, 11, 22, 47, 100, 100]
    """
    lo = min(CURRICULUM_START, lag)
    return int(round(lo * (lag / lo) ** min(1.0, step / max(1.0, steps / 2))))


def evaluate(engine, params, task: Task, lag: int, n: int, seed: int, chunk: int = 500):
    """(accuracy, mean loss in nats) on n fresh sequences; argmax over all V outputs at the last step."""
    rng = np.random.default_rng(seed)
    correct, total = 0, 0.0
    for start in range(0, n, chunk):
        x, y = task.batch(rng, min(chunk, n - start), lag)
        b = last_step_batch(x, y)
        logits, _ = engine.logits(params, b, engine.zero_state(len(x)))   # (N, T, V)
        correct += int((logits[:, -1].argmax(axis=1) == y).sum())
        total += engine.evaluate(params, b, engine.zero_state(len(x)))[0]
    return correct / n, total / n


def chrono(hidden: int, t_max: float, seed: int):
    """An init hook: chrono initialisation of an LSTM (Tallec & Ollivier 2018, "Can recurrent neural networks warp
    time?"). b_f = log u and b_i = -b_f per unit, u ~ U(1, t_max - 1) (gates i, f, g, o), so at the start unit j's
    forget gate is f_j = u_j / (1 + u_j), a memory of about 1 / (1 - f_j) = 1 + u_j steps, spread over 2 .. t_max,
    instead of PyTorch's f ~ sigmoid(0) = 0.5 (about 2 steps). rnnlab keeps PyTorch's two biases, b_ih + b_hh: the value goes into b_ih's f and
    i blocks and the same blocks of b_hh are set to 0, so the sum the gate sees is exactly the chrono value; the g
    and o blocks keep their initialisation."""
    def init(params: dict) -> dict:
        u = np.random.default_rng([seed, 2018]).uniform(1.0, max(t_max - 1.0, 1.0), hidden)   # (H,)
        params["rnn.bias_ih_l0"][:hidden] = -np.log(u)                  # b_i
        params["rnn.bias_ih_l0"][hidden:2 * hidden] = np.log(u)         # b_f
        params["rnn.bias_hh_l0"][:2 * hidden] = 0.0
        return params
    return init


def _forget_bias(bias: float, hidden: int):
    """An init hook adding `bias` to an LSTM's forget gate (b_ih's second block: gates i, f, g, o)."""
    def init(params: dict) -> dict:
        params["rnn.bias_ih_l0"][hidden:2 * hidden] += bias
        return params
    return init


def lstm_init(cell: str, hidden: int, lag: int, seed: int, init: str, forget_bias: float):
    """The init hook of one run: chrono (T_max = lag), then + forget_bias; None for default or a cell not lstm."""
    hooks = (([chrono(hidden, lag, seed)] if init == "chrono" else [])
             + ([_forget_bias(forget_bias, hidden)] if forget_bias else []))
    if cell != "lstm" or not hooks:
        return None

    def apply(params: dict) -> dict:
        for h in hooks:
            params = h(params)
        return params
    return apply


def train_one(cell: str, hidden: int, task: Task, lag: int, steps: int, tcfg: TrainConfig, eval_n: int,
              forget_bias: float = 0.0, engine: str = "numpy", engine_options: dict | None = None,
              init: str = "chrono", curriculum: bool = True):
    """Train a fresh model for `lag` (on curriculum_lag's lags when `curriculum`, else on `lag` throughout) and score
    it at `lag`; returns a dict of what was measured. init (lstm only): "chrono" (see chrono, T_max = lag) or
    "default" (PyTorch's initialisation, what rnnlab train uses); forget_bias (lstm only) is then added to the
    forget gate's b_ih."""
    cfg = ModelConfig(cell=cell, vocab_size=task.vocab_size, hidden_size=hidden)
    vocab = Vocab([chr(0x100 + i) for i in range(task.vocab_size)])   # the ids have no text: placeholder symbols
    tcfg = replace(tcfg, max_steps=steps, eval_every=steps, log_every=1)

    def prepare(mcfg, tcfg, opts, snap, run):
        def batch(step: int) -> dict:
            at = curriculum_lag(lag, step, steps) if curriculum else lag
            return last_step_batch(*task.batch(np.random.default_rng([tcfg.seed, lag, step]), tcfg.batch_size, at))

        def score(engine, params) -> dict:
            acc, loss = evaluate(engine, params, task, lag, eval_n, tcfg.seed + 7919)
            return {"accuracy": acc, "eval_loss": loss, "score": [acc], "line": f"accuracy {acc:.3f}"}
        return loop.Setup(cfg, vocab, {}, loop.Job(batch, score, tcfg.batch_size), f"recall at lag {lag}",
                          lstm_init(cell, hidden, lag, tcfg.seed, init, forget_bias))

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rnnlab-memory-") as tmp:
        res = loop.train(prepare, cfg, tcfg, Path(tmp) / "run", engine, progress=False, log=lambda *a, **k: None,
                         engine_options=engine_options)
        rows = [json.loads(ln) for ln in open(Path(tmp) / "run" / "metrics.jsonl")]
    losses = [r["loss"] for r in rows if r.get("loss") is not None and "val" not in r and "accuracy" not in r]
    tail = losses[-max(1, len(losses) // 10):]
    return {"cell": cell, "hidden": hidden, "params": count_params(cfg), "lag": lag, "steps": steps,
            "init": init if cell == "lstm" else "default", "curriculum": curriculum,
            "accuracy": res["accuracy"], "eval_loss": res["eval_loss"],
            "train_loss": float(np.mean(tail)) if tail else float("nan"), "seconds": time.perf_counter() - t0}


def run(cells=("rnn", "lstm", "gru"), lags=LAGS, steps: int = 2000, budget: int = 6500, batch_size: int = 32,
        lr: float = 3e-3, seed: int = 0, task: Task = Task(), eval_n: int = 2000, forget_bias: float = 0.0,
        log=print, engine: str = "numpy", engine_options: dict | None = None, init: str = "chrono",
        curriculum: bool = True) -> list:
    """Every (cell, lag) pair; returns the list of result dicts (see train_one)."""
    tcfg = TrainConfig(batch_size=batch_size, seq_len=1, optimizer="adam", lr=lr, clip_norm=1.0, seed=seed,
                       max_steps=steps, dtype="float32")
    hidden = {c: hidden_for_budget(c, task.vocab_size, budget) for c in cells}
    setup = [f"curriculum: lags from {CURRICULUM_START}" if curriculum else "no curriculum",
             *(["lstm init chrono (T_max = lag)"] if init == "chrono" and "lstm" in cells else []),
             *([f"lstm forget-gate bias +{forget_bias:g}"] if forget_bias else [])]
    log("recall task: K=%d symbols, %d distractors, chance %.3f | budget %d params: %s | %d Adam steps of %d "
        "sequences, lr %g | %s" % (task.symbols, task.distractors, 1 / task.symbols, budget,
                                   ", ".join(f"{c} H={h}" for c, h in hidden.items()), steps, batch_size, lr,
                                   " | ".join(setup)))
    results = []
    for lag in lags:
        for c in cells:
            r = train_one(c, hidden[c], task, lag, steps, tcfg, eval_n, forget_bias, engine, engine_options, init,
                          curriculum)
            log(f"  {c:<7} H={r['hidden']:<4} at lag {lag:>4}: accuracy {r['accuracy']:.3f}, test loss "
                f"{r['eval_loss']:.3f} nats ({r['seconds']:.1f} s)")
            results.append(r)
    return results


HEADER = ["cell", "hidden", "params", "lag", "steps", "accuracy", "eval_loss", "train_loss", "seconds", "init",
          "curriculum"]


def table(results: list, chance: float) -> list:
    """Lines of the accuracy-vs-lag table: one row per lag, one column per cell."""
    cells = list(dict.fromkeys(r["cell"] for r in results))
    lags = list(dict.fromkeys(r["lag"] for r in results))
    acc = {(r["cell"], r["lag"]): r["accuracy"] for r in results}
    h = {r["cell"]: r for r in results}
    lines = [f"{'lag':>5}" + "".join(f"{c + ' H=' + str(h[c]['hidden']):>14}" for c in cells),
             f"{'':>5}" + "".join(f"{str(h[c]['params']) + ' params':>14}" for c in cells)]
    for lag in lags:
        lines.append(f"{lag:>5}" + "".join(f"{acc[(c, lag)]:>14.3f}" for c in cells))
    lines.append(f"accuracy on held-out sequences; chance = {chance:.3f}")
    return lines
