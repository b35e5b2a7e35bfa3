"""The primitives around the recurrent layers of the NumPy engine, each written once with its backward: the
sigmoid the cells use, the embedding lookup, the linear layer, inverted dropout and the softmax cross-entropy.

    >>> linear(np.ones((2, 3)), np.eye(3)[:2], np.array([0.5, -0.5]))
    array([[1.5, 0.5],
           [1.5, 0.5]])
"""

import numpy as np


def sigmoid(a, out=None):
    """Logistic sigmoid 1 / (1 + exp(-a)), computed as 0.5 * (1 + tanh(a / 2)); same dtype as a.

    The identity holds exactly in real numbers; the tanh form never overflows (exp(-a) does for a < -88 in
    float32), and is 4 ufunc calls, which matters at small sizes where per-call overhead dominates. Its error is
    absolute (~eps), not relative, for very negative a: fine for gates, which multiply O(1) values.
    `out` may be `a` itself for an in-place update.
    """
    out = np.multiply(a, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1.0
    out *= 0.5
    return out


def embedding_backward(dx, ids, weight):
    """Gradient of the table lookup x = weight[ids]: dx (N, T, D) scatter-added into the rows of ids (V, D)."""
    dw = np.zeros_like(weight)                                         # (V, D)
    np.add.at(dw, np.asarray(ids).ravel(), dx.reshape(-1, weight.shape[1]))
    return dw


def linear(x, w, b):
    """y = x @ w.T + b over the last axis: x (..., H), w (C, H), b (C,) -> (..., C)."""
    y = x @ w.T                                                        # (..., C)
    y += b
    return y


def linear_backward(dy, x, w):
    """Grads of y = x @ w.T + b given dy (..., C): returns (dx (..., H), dw (C, H), db (C,))."""
    dy2, x2 = dy.reshape(-1, dy.shape[-1]), x.reshape(-1, x.shape[-1])
    return dy @ w, dy2.T @ x2, dy2.sum(axis=0)


def dropout_mask(shape, p: float, dtype, rng):
    """Inverted dropout's multiplier: 1/(1-p) with probability 1-p, else 0; None when off (p = 0 or no rng)."""
    if rng is None or p <= 0:
        return None
    keep = 1.0 - p
    return (rng.random(shape) < keep).astype(dtype) / np.asarray(keep, dtype)


def softmax_cross_entropy(logits, y, scale: float):
    """Summed cross-entropy -sum log softmax(logits)[y] and its gradient times `scale`.

    logits (N, T, V) is overwritten with the gradient (softmax - onehot(y)) * scale to save a copy.
    Returns (loss_sum as a Python float, dlogits)."""
    N, T, V = logits.shape
    flat = logits.reshape(N * T, V)
    rows = np.arange(N * T)
    yy = y.reshape(N * T)
    flat -= flat.max(axis=1, keepdims=True)                            # stable: max logit is 0
    picked = flat[rows, yy].astype(np.float64)
    np.exp(flat, out=flat)
    sums = flat.sum(axis=1, keepdims=True)
    loss = float(np.log(sums.astype(np.float64)).sum() - picked.sum())
    flat /= sums                                                       # softmax
    flat[rows, yy] -= 1.0
    if scale != 1.0:
        flat *= scale
    return loss, logits


def cross_entropy(logits, y, mask, scale: float, grad: bool = True):
    """Cross-entropy summed over the scored positions: logits (N, T, V) with y (N, T) and mask (N, T) bool or None
    (all scored), or logits (N, C) with labels y (N,). Returns (loss in nats, positions scored, dlogits times
    `scale`, zero on unscored positions; None when grad=False). Only scored rows go through the softmax; without
    a mask `logits` is overwritten (see softmax_cross_entropy)."""
    shape = logits.shape
    if logits.ndim == 2:
        logits, y = logits[:, None], y[:, None]                        # (N, 1, C): one scored step per row
    if mask is None:                                                   # logits become the gradient in place
        loss, d = softmax_cross_entropy(logits, y, scale)
        return loss, y.size, d.reshape(shape) if grad else None
    N, T, V = logits.shape
    rows = np.flatnonzero(mask.ravel())                                # (M,) scored positions
    picked = logits.reshape(N * T, V)[rows][None]                      # (1, M, V)
    loss, dpicked = softmax_cross_entropy(picked, y.reshape(N * T)[rows][None], scale)
    if not grad:
        return loss, len(rows), None
    d = np.zeros((N * T, V), logits.dtype)
    d[rows] = dpicked[0]
    return loss, len(rows), d.reshape(N, T, V)


def log_softmax(logits) -> np.ndarray:
    """log softmax over the last axis in float64 (..., V) -> (..., V)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
