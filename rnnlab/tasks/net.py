"""A stack of the core's recurrent cells over padded batches, with masking, for the task shapes.

Sequences of different lengths share one (N, T) batch: each is padded at the end, and mask[n, t] says whether step
t of sequence n is real. On a padded step the state is carried through unchanged,

    s_t = m_t * cell(x_t, s_{t-1}) + (1 - m_t) * s_{t-1}          (s = h, and c for the LSTM; m_t in {0, 1})

so the state after step T is the true last state of every sequence, not the state after its padding. The backward
is the same select: on a real step the gradient goes through the cell; on a padded step it passes to s_{t-1}
untouched, and the step adds nothing to the weight gradients. With m_t exactly 0 or 1 this is np.where, not the
arithmetic form, so a padded batch gives bit-for-bit the states of its sequences run one by one (up to the BLAS's
own batch-size-dependent rounding).

A masked layer runs the core's plain pass over the cell's step pair (layers.sequence_forward / sequence_backward,
which implement the select above); an unmasked one the cell's fused forward / backward.
Parameters use the core model's names without the decoder: "encoder.weight" (V, D) when embed_dim > 0, and
"rnn.weight_ih_l{k}" ... per layer. State is a tuple of (L, N, H) arrays: (h,), or (h, c) for the LSTM.

    >>> from rnnlab.config import ModelConfig
    >>> cfg = ModelConfig(cell="gru", vocab_size=5, hidden_size=3, num_layers=2)
    >>> p = init_params(cfg, 0, np.float64)
    >>> ids, mask = np.array([[1, 2, 0], [3, 0, 0]]), np.array([[1, 1, 0], [1, 0, 0]], bool)
    >>> out, (h,), cache = forward(p, cfg, ids, mask, zero_state(cfg, 2, np.float64))
    >>> out.shape, h.shape, bool(np.array_equal(h[-1, 1], out[1, 0]))      # sequence 1 ends after one step
    ((2, 3, 3), (2, 2, 3), True)
"""
from __future__ import annotations

import numpy as np

from ..engines.numpy import layers, model

CELLS = model.CELLS


def stack_shapes(cfg) -> dict:
    """Names and shapes of the embedding and recurrent layers (the core model's, minus its decoder)."""
    return {k: v for k, v in model.param_shapes(cfg).items() if not k.startswith("decoder.")}


def init_params(cfg, seed: int, dtype) -> dict:
    """The core model's initialisation (model.init_params), minus the decoder."""
    return {k: v for k, v in model.init_params(cfg, seed, dtype).items() if not k.startswith("decoder.")}


def uniform(shape, seed: int, scale: float, dtype) -> np.ndarray:
    """U(-scale, scale) from its own seeded generator (for heads and tables the core model does not have)."""
    return np.random.default_rng(seed).uniform(-scale, scale, shape).astype(dtype)


def zero_state(cfg, n: int, dtype) -> tuple:
    return model.zero_state(cfg, n, dtype)


def forward(params: dict, cfg, ids: np.ndarray, mask, state0: tuple, rng=None):
    """Run the stack over ids (N, T) from state0 (tuple of (L, N, H)). mask (N, T) bool, or None when every step
    is real (or when later steps do not matter, as for a decoder whose padded outputs are never scored).
    With `rng` dropout (cfg.dropout) is applied to each layer's outputs, as in the core model.
    Returns (out (N, T, H) the top layer's h_1..h_T, final state tuple of (L, N, H), cache)."""
    cell = CELLS[cfg.cell]
    x = params["encoder.weight"][ids] if cfg.embed_dim else ids                # (N, T, D) or ids (N, T)
    caches, finals = [], []
    for k in range(cfg.num_layers):
        p = model.layer_params(params, k)
        s0 = tuple(s[k] for s in state0)                                       # each (N, H)
        if mask is None:
            out, sT, c = cell.forward(x, s0, p)                                # (N, T, H)
        else:
            out, sT, c = layers.sequence_forward(cell, x, s0, p, mask)
        drop = None
        if rng is not None and cfg.dropout > 0:
            keep = 1.0 - cfg.dropout
            drop = (rng.random(out.shape) < keep).astype(out.dtype) / np.asarray(keep, out.dtype)
            out = out * drop
        caches.append((c, drop))
        finals.append(sT)
        x = out
    state = tuple(np.stack([f[i] for f in finals]) for i in range(cell.STATE_SIZE))   # each (L, N, H)
    return x, state, (ids, mask, caches)


def backward(dout, dstateT, params: dict, cfg, cache):
    """Gradients given dloss/dout (N, T, H) (or None for zeros) and dloss/dstate_T (tuple of (L, N, H), or None).
    Returns (grads keyed like stack_shapes, dstate0 tuple of (L, N, H)): the gradient reaches the initial state,
    which is how an encoder learns from its decoder and a condition table from the text."""
    cell = CELLS[cfg.cell]
    ids, mask, caches = cache
    N, T = ids.shape
    dtype = params["rnn.weight_hh_l0"].dtype
    dx = np.zeros((N, T, cfg.hidden_size), dtype) if dout is None else dout     # (N, T, H)
    grads, dstate0 = {}, [None] * cfg.num_layers
    for k in reversed(range(cfg.num_layers)):
        c, drop = caches[k]
        if drop is not None:
            dx = dx * drop
        dsT = None if dstateT is None else tuple(d[k] for d in dstateT)
        if mask is None:
            dx, ds0, g = cell.backward(dx, dsT, c)
        else:
            dx, ds0, g = layers.sequence_backward(cell, dx, dsT, c)
        dstate0[k] = ds0
        for name, arr in g.items():
            grads[f"rnn.{name}_l{k}"] = arr
    if cfg.embed_dim:
        demb = np.zeros_like(params["encoder.weight"])                         # (V, D)
        np.add.at(demb, ids.ravel(), dx.reshape(N * T, -1))                    # scatter-add rows
        grads["encoder.weight"] = demb
    return grads, tuple(np.stack([d[i] for d in dstate0]) for i in range(cell.STATE_SIZE))


def linear(x, w, b):
    """y = x @ w.T + b over the last axis: x (..., H), w (C, H), b (C,) -> (..., C)."""
    return x @ w.T + b


def linear_backward(dy, x, w):
    """Grads of y = x @ w.T + b: returns (dx (..., H), dw (C, H), db (C,))."""
    dy2, x2 = dy.reshape(-1, dy.shape[-1]), x.reshape(-1, x.shape[-1])
    return dy @ w, dy2.T @ x2, dy2.sum(axis=0)


def masked_cross_entropy(logits, y, mask, scale: float):
    """Summed cross-entropy over the real positions only, via the core's model.softmax_cross_entropy.

    logits (N, T, V), y (N, T) ints, mask (N, T) bool. Returns (loss summed over real positions, dlogits (N, T, V)
    times `scale`, zero on padding). Only the real rows are gathered, so padding costs no softmax."""
    N, T, V = logits.shape
    rows = np.flatnonzero(mask.ravel())                                        # (M,) real positions
    picked = logits.reshape(N * T, V)[rows][None]                             # (1, M, V)
    loss, dpicked = model.softmax_cross_entropy(picked, y.reshape(N * T)[rows][None], scale)
    dlogits = np.zeros((N * T, V), logits.dtype)
    dlogits[rows] = dpicked[0]
    return loss, dlogits.reshape(N, T, V)


def log_softmax(logits) -> np.ndarray:
    """log softmax over the last axis in float64 (K, V) -> (K, V)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
