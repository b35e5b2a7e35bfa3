"""The memory horizon: can the network recall a symbol it saw `lag` steps ago?

The recall task. One sequence has T = lag + 1 inputs and one target, at the last step:

    input   s   d_1  d_2  ...  d_{lag-1}   ?          s   one of K data symbols    (ids 0 .. K-1)
    target  -   -    -    ...  -           s          d_i random distractors      (ids K .. K+M-1)
                                                      ?   the recall marker        (id K+M)

Only the last step has a loss (cross-entropy against s), so the one thing that helps is carrying s across `lag`
steps of distractors: exactly what vanishing gradients make hard. Chance accuracy is 1/K.

All three cells get the same parameter budget P (H is solved per cell: the largest H whose model has at most P
parameters, counted by model.param_shapes) and the same budget of optimiser steps, batch size, learning rate,
and the very same training sequences. Each (cell, lag) is trained from scratch with model.forward/backward and
optim.clip_/update_ (Adam, global-norm clip), then scored on fresh sequences. Shapes: N sequences, T = lag + 1,
V = K + M + 1.

    >>> task = Task(symbols=4, distractors=2)
    >>> x, y = task.batch(np.random.default_rng(0), n=2, lag=3)
    >>> x.shape, y.shape, bool((x[:, -1] == task.marker).all()), bool((x[:, 0] == y).all())
    ((2, 4), (2,), True, True)
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from .. import schedule
from ..config import ModelConfig, TrainConfig
from ..engines.numpy import model, optim

LAGS = (5, 10, 20, 50, 100)
QUICK_LAGS = (5, 10)


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


def hidden_for_budget(cell: str, vocab_size: int, budget: int) -> int:
    """The largest H such that a one-layer `cell` model with one-hot input has at most `budget` parameters."""
    H = 1
    while count_params(ModelConfig(cell=cell, vocab_size=vocab_size, hidden_size=H + 1)) <= budget:
        H += 1
    return H


def last_step_loss(params, cfg, x, y, scale: float):
    """Forward over all steps, cross-entropy at the last only. Returns (summed loss, dlogits (N, T, V), cache,
    logits at the last step (N, V))."""
    logits, _, cache = model.forward(params, cfg, x, model.zero_state(cfg, x.shape[0], params["decoder.bias"].dtype))
    last = logits[:, -1:].copy()                                     # (N, 1, V)
    loss, dlast = model.softmax_cross_entropy(last.copy(), y[:, None], scale)
    dlogits = np.zeros_like(logits)                                  # (N, T, V): no loss before the last step
    dlogits[:, -1:] = dlast
    return loss, dlogits, cache, last[:, 0]


def evaluate(params, cfg, task: Task, lag: int, n: int, seed: int, chunk: int = 500):
    """(accuracy, mean loss in nats) on n fresh sequences; argmax over all V outputs."""
    rng = np.random.default_rng(seed)
    correct, total = 0, 0.0
    for start in range(0, n, chunk):
        x, y = task.batch(rng, min(chunk, n - start), lag)
        loss, _, _, last = last_step_loss(params, cfg, x, y, 1.0)
        correct += int((last.argmax(axis=1) == y).sum())
        total += loss
    return correct / n, total / n


def train_one(cell: str, hidden: int, task: Task, lag: int, steps: int, tcfg: TrainConfig, eval_n: int,
              forget_bias: float = 0.0):
    """Train a fresh model on one lag; returns a dict of what was measured. forget_bias (lstm only) is added to the
    forget gate's b_ih at initialisation (0 = PyTorch's initialisation, what rnnlab train uses)."""
    cfg = ModelConfig(cell=cell, vocab_size=task.vocab_size, hidden_size=hidden)
    params = model.init_params(cfg, tcfg.seed, np.dtype(tcfg.dtype))
    if cell == "lstm" and forget_bias:
        params["rnn.bias_ih_l0"][hidden:2 * hidden] += forget_bias     # gates i, f, g, o: f is the second block
    opt_state = optim.init_state(params, tcfg)
    rng = np.random.default_rng(tcfg.seed + 1000 * lag)              # same data stream for every cell at this lag
    t0, losses = time.perf_counter(), []
    for step in range(steps):
        x, y = task.batch(rng, tcfg.batch_size, lag)                 # (N, T), (N,)
        loss, dlogits, cache, _ = last_step_loss(params, cfg, x, y, 1.0 / tcfg.batch_size)
        grads = model.backward(dlogits, params, cfg, cache)
        norm = optim.global_norm(grads)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            continue                                                 # skip a non-finite step, as train.py does
        optim.clip_(grads, tcfg, norm)
        optim.update_(params, grads, opt_state, tcfg, schedule.learning_rate(tcfg, step))
        losses.append(loss / tcfg.batch_size)
    acc, eval_loss = evaluate(params, cfg, task, lag, eval_n, tcfg.seed + 7919)
    tail = losses[-max(1, len(losses) // 10):]
    return {"cell": cell, "hidden": hidden, "params": count_params(cfg), "lag": lag, "steps": steps,
            "accuracy": acc, "eval_loss": eval_loss, "train_loss": float(np.mean(tail)) if tail else float("nan"),
            "seconds": time.perf_counter() - t0}


def run(cells=("rnn", "lstm", "gru"), lags=LAGS, steps: int = 2000, budget: int = 6500, batch_size: int = 32,
        lr: float = 3e-3, seed: int = 0, task: Task = Task(), eval_n: int = 2000, forget_bias: float = 0.0,
        log=print) -> list:
    """Every (cell, lag) pair; returns the list of result dicts (see train_one)."""
    tcfg = TrainConfig(batch_size=batch_size, seq_len=1, optimizer="adam", lr=lr, clip_norm=1.0, seed=seed,
                       max_steps=steps, dtype="float32")
    hidden = {c: hidden_for_budget(c, task.vocab_size, budget) for c in cells}
    log("recall task: K=%d symbols, %d distractors, chance %.3f | budget %d params: %s | %d Adam steps of %d "
        "sequences, lr %g%s" % (task.symbols, task.distractors, 1 / task.symbols, budget,
                                ", ".join(f"{c} H={h}" for c, h in hidden.items()), steps, batch_size, lr,
                                f" | lstm forget-gate bias +{forget_bias:g}" if forget_bias else ""))
    results = []
    for lag in lags:
        for c in cells:
            r = train_one(c, hidden[c], task, lag, steps, tcfg, eval_n, forget_bias)
            log(f"  {c:<5} H={r['hidden']:<4} at lag {lag:>4}: accuracy {r['accuracy']:.3f}, test loss "
                f"{r['eval_loss']:.3f} nats ({r['seconds']:.1f} s)")
            results.append(r)
    return results


HEADER = ["cell", "hidden", "params", "lag", "steps", "accuracy", "eval_loss", "train_loss", "seconds"]


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
