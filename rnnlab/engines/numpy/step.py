"""One time step of a trained model for K rows at once: what sampling and greedy/beam decoding call per character.

`step` is model.forward's maths with T = 1 through each cell's readable step_forward: forward's fused sequence
set-up (a transposed copy of W_ih, rescaled W_hh, T-sized buffers) is paid once per call and amortised over T
steps, but sampling calls with T = 1 for every character, where that set-up cost several times the step itself.
A cell whose file offers `prepare_step` and `sample_step` (the LSTM's does) samples through `fast_step`, with its
weights laid out once by `prepare_fast_step` (tests/test_numpy_step.py holds both to model.forward). `prefix` is "dec." for a seq2seq model's decoder, else "".
"""
from __future__ import annotations

import numpy as np

from .layers import linear
from .model import cell_module, layer_params


def step(params: dict, cfg, ids: np.ndarray, state: tuple, prefix: str = ""):
    """ids (K,) -> logits (K, V) and the new state tuple of (L, K, H)."""
    cell = cell_module(cfg.cell)
    emb = params.get(prefix + "encoder.weight")
    x = emb[ids] if emb is not None else ids                          # (K, D), or (K,) ids meaning one-hot
    new_state = []
    for k in range(cfg.num_layers):
        s, _ = cell.step_forward(x, tuple(st[k] for st in state), layer_params(params, cfg, k, prefix))
        new_state.append(s)
        x = s[0]                                                       # (K, H)
    logits = linear(x, params[prefix + "decoder.weight"], params[prefix + "decoder.bias"])   # (K, V)
    return logits, tuple(np.stack([s[i] for s in new_state]) for i in range(len(new_state[0])))


def has_fast_step(cfg) -> bool:
    """Whether cfg's cell file offers the prepared one-step path (prepare_step, sample_step)."""
    return hasattr(cell_module(cfg.cell), "prepare_step")


def prepare_fast_step(params: dict, cfg, prefix: str = ""):
    """The cell's weights laid out once for fast_step (see lstm.prepare_step), plus the decoder transposed."""
    cell = cell_module(cfg.cell)
    layers = [cell.prepare_step(layer_params(params, cfg, k, prefix), one_hot=(k == 0 and not cfg.embed_dim))
              for k in range(cfg.num_layers)]
    dec_t = np.ascontiguousarray(params[prefix + "decoder.weight"].T)                  # (H, V)
    return cell, layers, dec_t, params[prefix + "decoder.bias"], params.get(prefix + "encoder.weight")


def fast_step(prepared, ids: np.ndarray, state: tuple):
    """step() with prepare_fast_step's weights (an LSTM's, for now): one GEMV per layer instead of two plus a transposed
    gather, no per-layer dicts or np.stack; at H=512 L=2 float32 with one character, sampling went from ~3,400 to
    ~4,400-5,000 chars/s, of which ~120 us per character are the three GEMVs streaming ~12 MB of weights. Same
    maths as forward() up to rounding (summation order, lstm._activate)."""
    cell, layers, dec_t, dec_b, emb = prepared
    new = tuple(np.empty_like(s) for s in state)                        # (L, K, H) each
    x = emb[ids] if emb is not None else ids                            # (K, D), or (K,) ids: one-hot
    with np.errstate(over="ignore"):                                    # exp(a) = inf is fine, see lstm._activate
        for k, prep in enumerate(layers):
            cell.sample_step(x, tuple(s[k] for s in state), prep, tuple(s[k] for s in new))
            x = new[0][k]                                               # (K, H)
    logits = x @ dec_t                                                  # (K, V)
    logits += dec_b
    return logits, new
