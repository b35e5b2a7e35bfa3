"""How a training step's time and memory grow with T, H and B (N streams): one factor at a time around a base.

Time is the median of a few steps; memory is the peak of NumPy's allocations during one step of the NumPy engine,
traced by tracemalloc (NumPy reports its buffers to it), so it is the step's own working set: the activations kept
for the backward pass (about T*N*H*(gates+3) floats for an LSTM) plus gradients and optimiser scratch. The torch
engine's memory is not traced this way; the process's peak RSS is printed with the tables.

    >>> rows = scaling_rows("numpy", "rnn", 65, base=(8, 1, 2, 4), grid={"T": [4, 8]}, steps=1)
    >>> [r["T"] for r in rows]
    [4, 8]
"""
from __future__ import annotations

import statistics
import time
import tracemalloc

import numpy as np

from ..config import ModelConfig, TrainConfig
from ..engines import make_engine

BASE = (256, 1, 32, 64)                                   # (H, L, N, T)
GRID = {"T": [32, 64, 128, 256], "H": [128, 256, 512], "B": [8, 32, 128]}


def _step_cost(engine_name, cell, V, H, L, N, T, steps):
    """(median seconds per train_step, traced peak MB of one step or None) on random ids."""
    mcfg = ModelConfig(cell=cell, vocab_size=V, hidden_size=H, num_layers=L)
    tcfg = TrainConfig(batch_size=N, seq_len=T, optimizer="adam", lr=2e-3, clip_norm=5.0, dtype="float32")
    engine = make_engine(engine_name, mcfg, tcfg, device="cpu")
    params = engine.init_params(0)
    opt = engine.init_opt_state(params)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T))
    state = engine.zero_state(N)
    engine.train_step(params, opt, {"x": x, "y": y}, state, 1e-3, rng)               # warm-up
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        engine.train_step(params, opt, {"x": x, "y": y}, state, 1e-3, rng)
        times.append(time.perf_counter() - t0)
    mb = None
    if engine_name == "numpy":
        tracemalloc.start()
        engine.train_step(params, opt, {"x": x, "y": y}, state, 1e-3, rng)
        mb = tracemalloc.get_traced_memory()[1] / 2 ** 20
        tracemalloc.stop()
    return statistics.median(times), mb


def scaling_rows(engine_name, cell, V, base=BASE, grid=GRID, steps=3):
    """One row per value of each factor in `grid`, the others at `base`: dicts with H, L, B, T, ms per step,
    chars/s and traced MB."""
    rows = []
    for factor, values in grid.items():
        for v in values:
            H, L, N, T = base
            H, N, T = (v if factor == "H" else H), (v if factor == "B" else N), (v if factor == "T" else T)
            sec, mb = _step_cost(engine_name, cell, V, H, L, N, T, steps)
            rows.append({"factor": factor, "H": H, "L": L, "B": N, "T": T, "ms": sec * 1e3,
                         "chars_per_s": N * T / sec, "mb": mb})
    return rows
