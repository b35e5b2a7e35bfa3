"""Vanishing and exploding gradients, measured with the engine's own backward pass.

For a sequence x_1..x_T, let L_T be the loss at the last step only. We measure, for k = T, T-1, ..., 1,

    g_k = || dL_T / dh_k ||          (the total derivative: every path from h_k to L_T)

By the chain rule, dL_T/dh_k = dL_T/dh_T * prod_{j=k+1..T} dh_j/dh_{j-1}, and for the tanh RNN

    dh_j/dh_{j-1} = diag(1 - h_j^2) W_hh

so g_k shrinks roughly like rho(W_hh)^(T-k) when the spectral radius rho is below 1 (vanishing) and can grow when it
is above 1 (exploding), as long as the units are not saturated. The LSTM's cell path dc_{j-1} = f_j * dc_j has no
W_hh in it at all, which is the paper's argument for it.

Which loss (`loss`):
    "xent"  L_T = cross-entropy of the model's prediction at step T against the next character (the default)
    "proj"  L_T = u . h_T with u a fixed random unit vector (no decoder involved: the recurrence alone)
Each sequence n of the batch has its own loss L_T^(n); its gradient only reaches its own h_k^(n). We report the mean
over the N sequences of ||dL_T^(n)/dh_k^(n)|| (the 2-norm over the H units). With several layers, h_k is the top
layer's state (the only layer whose gradient reaches back through time alone).

The numbers come from the NumPy cells' own step_forward/step_backward: the top layer is run one step_forward at a
time (keeping each step's cache), then step_backward is chained from k = T down to 1, recording each step's dh on
the way (BPTT; the weight gradients each step also returns are not needed here).

`--radius R` rescales each H x H block of every layer's W_hh (one block for rnn, one per gate for lstm and gru) so
that its spectral radius max|eig| is R. Shapes: N sequences, T steps, H hidden, V vocabulary.

    >>> from rnnlab.config import ModelConfig
    >>> cfg = ModelConfig(cell="rnn", vocab_size=10, hidden_size=16)
    >>> p = rescale(model.init_params(cfg, 0, np.float64), cfg, 0.5)
    >>> g = grad_norms(p, cfg, np.random.default_rng(0).integers(0, 10, (4, 31)))["h"]   # (T,) = (30,)
    >>> bool(g[-21] < g[-2])                            # distance 20 vs distance 1: it vanished
    True
"""
from __future__ import annotations

import numpy as np

from ..config import replace
from ..engines.numpy import model
from ..engines.numpy.layers import softmax_cross_entropy


def spectral_radius(w: np.ndarray) -> float:
    """max |eigenvalue| of a square matrix."""
    return float(np.max(np.abs(np.linalg.eigvals(w))))


def rescale(params: dict, cfg, radius: float | None) -> dict:
    """A float64 copy of params; with a radius, every (H, H) gate block of every W_hh scaled to that spectral
    radius (radius None leaves the weights as they are)."""
    out = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    if radius is None:
        return out
    H = cfg.hidden_size
    for k in range(cfg.num_layers):
        w = out[f"rnn.weight_hh_l{k}"]                           # (G*H, H)
        for g in range(w.shape[0] // H):
            block = w[g * H:(g + 1) * H]                         # (H, H) view
            rho = spectral_radius(block)
            if rho > 0:
                block *= radius / rho
    return out


def grad_norms(params: dict, cfg, seqs: np.ndarray, loss: str = "xent", seed: int = 0) -> dict:
    """||dL_T/dh_k|| for k = 1..T, as arrays indexed k - 1.

    seqs: (N, T+1) int ids; inputs are seqs[:, :T], the target of step T is seqs[:, T] (used by loss "xent").
    Returns {"h": (T,) mean over sequences, "h_each": (N, T), and for lstm "c": (T,) the same for dL_T/dc_k}.
    """
    seqs = np.asarray(seqs)
    x, target = seqs[:, :-1], seqs[:, -1]                        # (N, T), (N,)
    N, T = x.shape
    cell = model.cell_module(cfg.cell)
    top = cfg.num_layers - 1
    state0 = model.zero_state(cfg, N, np.float64)                # each (L, N, H)
    if top:                                                      # what the top layer reads: the stack below it
        x_top = model.stack_forward(params, replace(cfg, num_layers=top), x, tuple(s[:top] for s in state0))[0]
    else:                                                        # or the ids (their embeddings)
        x_top = params["encoder.weight"][x] if cfg.embed_dim else x
    p = model.layer_params(params, cfg, top)
    # The top layer, one step_forward at a time, keeping each step's cache for step_backward.
    state, steps = tuple(s[top] for s in state0), []
    for t in range(T):
        state, cache = cell.step_forward(x_top[:, t], state, p)    # x_top[:, t]: (N,) ids or (N, H)
        steps.append(cache)
    h_T = state[0]                                               # (N, H)
    if loss == "xent":
        # L_T = -log softmax(y_T)[target], summed over sequences: dL/dlogits_T = softmax - onehot (N, 1, V).
        logits = h_T @ params["decoder.weight"].T + params["decoder.bias"]   # (N, V) = W_hy h_T + b_y
        _, dlogits = softmax_cross_entropy(logits[:, None], target[:, None], 1.0)
        dh = dlogits[:, 0] @ params["decoder.weight"]             # (N, H)
    elif loss == "proj":
        u = np.random.default_rng(seed).standard_normal(cfg.hidden_size)
        dh = np.tile(u / np.linalg.norm(u), (N, 1))              # (N, H): L_T = u . h_T
    else:
        raise ValueError(f"unknown loss {loss!r}")
    dstate = (dh,) + tuple(np.zeros_like(dh) for _ in state[1:])
    h_each = np.empty((N, T))
    c_each = np.empty((N, T)) if len(state) == 2 else None
    for t in reversed(range(T)):                                 # t = T-1 .. 0 holds k = t + 1
        h_each[:, t] = np.linalg.norm(dstate[0], axis=1)          # ||dL_T/dh_k|| per sequence
        if c_each is not None:
            c_each[:, t] = np.linalg.norm(dstate[1], axis=1)
        _, dstate, _ = cell.step_backward(dstate, steps[t])      # the engine's own BPTT step: grads of step k-1
    out = {"h": h_each.mean(axis=0), "h_each": h_each}
    if c_each is not None:
        out["c"] = c_each.mean(axis=0)
    return out


def sequences(n: int, length: int, vocab_size: int, rng, ids=None) -> np.ndarray:
    """(n, length) ids: random windows of `ids` (a text) when given and long enough, else uniform random ids."""
    if ids is not None and len(ids) > length:
        starts = rng.integers(0, len(ids) - length, n)
        return np.stack([np.asarray(ids[s:s + length], dtype=np.int64) for s in starts])
    return rng.integers(0, vocab_size, (n, length))


def run(configs: list, radii: list, seq_len: int = 50, batch_size: int = 32, loss: str = "xent", seed: int = 0,
        ids=None) -> list:
    """configs: [(label, ModelConfig, params)]; radii: floats or None (as given). The same sequences for all.
    Returns rows [label, cell, radius or "", distance, k, mean ||dL_T/dh_k||, mean ||dL_T/dc_k|| or ""]."""
    rows = []
    vocab_size = configs[0][1].vocab_size
    seqs = sequences(batch_size, seq_len + 1, vocab_size, np.random.default_rng(seed), ids)
    for label, cfg, params in configs:
        for radius in radii:
            g = grad_norms(rescale(params, cfg, radius), cfg, seqs, loss, seed)
            for t in reversed(range(seq_len)):
                k = t + 1
                rows.append([label, cfg.cell, "" if radius is None else radius, seq_len - k, k,
                             float(g["h"][t]), float(g["c"][t]) if "c" in g else ""])
    return rows


HEADER = ["model", "cell", "radius", "distance", "k", "grad_norm_h", "grad_norm_c"]


def summary(rows: list, distances=(1, 10, 20, 50)) -> list:
    """Lines of a table: per (model, radius) the norm at some distances and the ratio g(20)/g(1)."""
    by = {}
    for label, cell, radius, dist, k, gh, gc in rows:
        by.setdefault((label, radius), {})[dist] = gh
    shown = [d for d in distances if any(d in v for v in by.values())]
    lines = [f"{'model':<14}{'radius':>8}" + "".join(f"{'d=' + str(d):>11}" for d in shown) + f"{'g(20)/g(1)':>12}"]
    for (label, radius), v in by.items():
        ratio = f"{v[20] / v[1]:.3g}" if 20 in v and 1 in v and v[1] > 0 else "-"
        lines.append(f"{label:<14}{'as is' if radius == '' else radius:>8}"
                     + "".join(f"{v[d]:>11.3e}" if d in v else f"{'-':>11}" for d in shown) + f"{ratio:>12}")
    return lines
