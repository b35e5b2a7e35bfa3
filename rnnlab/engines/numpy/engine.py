"""The NumPy engine class: the engine interface over rnnlab.engines.numpy.model, for every task.

The engine interface (the same for every engine, so the training loop, checkpoints, sampling and the task shapes
are written once):

    init_params(seed) -> params                    dict name -> array, PyTorch names and shapes
    init_opt_state(params) -> opt_state            dict name -> array
    zero_state(n) -> state                         tuple of (L, n, H) arrays
    load_params / load_opt_state / load_state      NumPy arrays from a checkpoint -> the engine's own arrays
    export(arrays) / export_state(state)           the engine's arrays -> NumPy, for checkpoints
    train_step(params, opt_state, batch, state, lr, rng) -> (metrics, state)   updates params/opt_state in place;
                                                   metrics: loss (nats per scored position), grad_norm, ok
    evaluate(params, batch, state) -> (summed loss in nats, state)             no dropout
    logits(params, batch, state=None) -> (logits float64 NumPy, state)         (N, T, V), or (N, C) for classify
    initial_state(params, batch) -> state          where a decoder starts: seq2seq's encoding, a label's state
    step(params, ids, state) -> (logits (K, V) float64, state)                 one time step, for generation
    rank, world_size, max_over_ranks(*ints) -> ints    this process's place in a distributed (torchrun) run and
                                                   the maximum of some ints over its processes; 0, 1 and the ints
                                                   themselves here (only the torch engine trains distributed)

A batch is a dict of NumPy arrays (rnnlab.engines.numpy.model says which keys each task reads); `state` is the lm's
carried state and None for the other tasks. Arrays that cross the interface are NumPy, whatever the engine computes
with. `params` and `opt_state` are the engine's own objects (here dicts of arrays): callers only hand them back to
the engine or to export().

    >>> from rnnlab.config import ModelConfig, TrainConfig
    >>> e = Engine(ModelConfig(cell="rnn", vocab_size=4, hidden_size=3), TrainConfig(dtype="float64"))
    >>> p = e.init_params(0)
    >>> m, state = e.train_step(p, e.init_opt_state(p), {"x": np.array([[1, 2]]), "y": np.array([[2, 3]])},
    ...                         e.zero_state(1), 0.1, None)
    >>> m["ok"], state[0].shape
    (True, (1, 1, 3))
"""
from __future__ import annotations

import math

import numpy as np

from ... import cells
from . import heap, model, optim, step


class Engine:
    """NumPy engine for one (ModelConfig, TrainConfig) pair. Holds the configs and one cache of weights prepared
    for sampling (see step); all state is passed in."""
    name = "numpy"
    device = "cpu"
    rank, world_size = 0, 1

    def __init__(self, mcfg, tcfg):
        self.mcfg, self.tcfg = mcfg, tcfg
        self.dtype = np.dtype(tcfg.dtype)
        self._step_cache = None      # (params, prepared weights) for step(); see there
        self._fast_step = step.has_fast_step(mcfg)   # asked once, not per sampled character
        heap.keep_freed_memory()     # reuse each step's large freed arrays instead of faulting pages back in

    @property
    def state_names(self) -> tuple:
        return cells.get(self.mcfg.cell).state

    def init_params(self, seed: int) -> dict:
        return model.init_params(self.mcfg, seed, self.dtype)

    def init_opt_state(self, params: dict) -> dict:
        return optim.init_state(params, self.tcfg)

    def zero_state(self, n: int) -> tuple:
        return model.zero_state(self.mcfg, n, self.dtype)

    # Moving arrays in and out of the engine (checkpoints hold NumPy). Here: copies in the engine's dtype, the
    # parameters in model.param_shapes' order whatever order they come in (a checkpoint's is alphabetical): the
    # global gradient norm sums in that order, so a resumed run clips exactly as the uninterrupted one.
    def load_params(self, arrays: dict) -> dict:
        return {k: np.array(arrays[k], dtype=self.dtype) for k in model.param_shapes(self.mcfg)}

    def load_opt_state(self, arrays: dict) -> dict:
        return {k: np.array(v, dtype=v.dtype if k == "step" else self.dtype) for k, v in arrays.items()}

    def load_state(self, state: tuple) -> tuple:
        return tuple(np.array(s, dtype=self.dtype) for s in state)

    def export(self, arrays: dict) -> dict:
        return arrays

    def export_state(self, state: tuple) -> tuple:
        return state

    def train_step(self, params, opt_state, batch, state, lr, rng):
        """One step of (truncated) BPTT. A non-finite loss or gradient skips the update (params untouched).
        Overflow is caught by that check, so NumPy's overflow warnings would only be noise on stderr."""
        self._step_cache = None      # params change in place below: step() must prepare them again
        with np.errstate(over="ignore", invalid="ignore"):
            loss, count, grads, state = model.loss_and_grads(params, self.mcfg, batch, state, rng)
            grads = {k: grads[k] for k in params}                   # the parameters' order, in every engine
            norm = optim.global_norm(grads)
        ok = math.isfinite(loss) and math.isfinite(norm)
        if ok:
            with np.errstate(over="ignore", invalid="ignore"):   # an overflowing update: the loop refuses to save it
                optim.clip_(grads, self.tcfg, norm)
                optim.update_(params, grads, opt_state, self.tcfg, lr)
        return {"loss": loss / max(count, 1), "grad_norm": norm, "ok": ok}, state

    def evaluate(self, params, batch, state):
        with np.errstate(over="ignore", invalid="ignore"):     # a diverged model's inf loss is reported, not warned
            loss, _, state = model.score(params, self.mcfg, batch, state)
        return loss, state

    def logits(self, params, batch, state=None):
        with np.errstate(over="ignore", invalid="ignore"):
            logits, state, _ = model.forward(params, self.mcfg, batch, state)
        return logits.astype(np.float64), state

    def initial_state(self, params, batch) -> tuple:
        if self.mcfg.task in ("seq2seq", "conditional"):
            return model.initial_state(params, self.mcfg, batch)[0]
        return self.zero_state(len(batch["x"]))

    def step(self, params, ids, state):
        """One step for generation. A cell with a fast path (the LSTM) goes through step.fast_step with weights
        rearranged once by step.prepare_fast_step and cached here, keyed on the identity of `params` (the dict object itself, held
        so its id cannot be reused). train_step, the one engine call that changes params in place, drops the
        cache; code that edits a params dict by hand between step calls must hand over a new dict (or call
        `self._step_cache = None`). Other cells use step.step, which prepares nothing."""
        ids = np.asarray(ids)
        prefix = "dec." if self.mcfg.task == "seq2seq" else ""
        if not self._fast_step:
            logits, state = step.step(params, self.mcfg, ids, state, prefix)
        else:
            if self._step_cache is None or self._step_cache[0] is not params:
                self._step_cache = (params, step.prepare_fast_step(params, self.mcfg, prefix))
            logits, state = step.fast_step(self._step_cache[1], ids, state)
        return logits.astype(np.float64), state

    def max_over_ranks(self, *values):
        return tuple(int(v) for v in values)
