"""Pieces shared by the hand-written NumPy cells (rnn.py, lstm.py, gru.py).

Every cell starts with the same input projection, done once for all T steps before the time loop:

    xw[n, t] = W_ih x[n, t] + b_ih            # (N, T, G*H), G gates (rnn 1, lstm 4, gru 3)

`x` is either a float array (N, T, D), or an int array (N, T) of ids meaning one-hot vectors of size D = W_ih.shape[1].

Why ids are a gather: if x_t = onehot(k) is the vector with a single 1 at position k, then

    (W_ih x_t)[j] = sum_d W_ih[j, d] * x_t[d] = W_ih[j, k]

so W_ih x_t is just column k of W_ih. This *is* the paper's W_xh x_t; we skip building the (N, T, D) one-hot array and
the N*T*D*G*H flop GEMM that would multiply almost all zeros, and read xw = W_ih.T[x] + b_ih instead. The backward of
a gather is a scatter-add: every step that read column k adds its dxw into column k of dW_ih; there is no dx.

    >>> w = np.arange(6.0).reshape(3, 2)                   # G*H = 3, D = 2
    >>> input_projection(np.array([[1, 0]]), w, np.zeros(3))[0]
    array([[1., 3., 5.],
           [0., 2., 4.]])
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


def is_ids(x):
    """True if x holds integer token ids (N, T) rather than float vectors (N, T, D)."""
    return np.issubdtype(np.asarray(x).dtype, np.integer)


def time_major(x):
    """(N, T) ids or (N, T, D) inputs as a (T, N, ...) view, to pair with time-major gradient buffers."""
    return np.swapaxes(np.asarray(x), 0, 1)


def input_projection(x, w_ih, b_ih):
    """xw = x @ w_ih.T + b_ih for all N*T rows at once; returns (N, T, G*H) in w_ih's dtype.

    x: (N, T, D) floats -> one GEMM (N*T, D) @ (D, G*H); or (N, T) int ids in [0, D) -> gather of columns of w_ih.
    w_ih: (G*H, D), b_ih: (G*H,).
    """
    if is_ids(x):
        x = np.asarray(x)
        if x.size and (x.min() < 0 or x.max() >= w_ih.shape[1]):
            raise ValueError(f"token ids must lie in [0, {w_ih.shape[1]}), got [{x.min()}, {x.max()}]")
        return np.take(w_ih.T + b_ih, x, axis=0)            # (N, T, G*H): column x[n, t] of w_ih, plus b_ih
    x = np.asarray(x, dtype=w_ih.dtype)
    N, T, D = x.shape
    xw = (x.reshape(N * T, D) @ w_ih.T).reshape(N, T, w_ih.shape[0])  # (N, T, G*H)
    xw += b_ih
    return xw


def input_projection_backward(dxw, x, w_ih):
    """Grads of xw = x @ w_ih.T + b_ih given dxw (N, T, G*H): returns (dx, dw_ih, db_ih).

    Only the pairing of rows matters, so time-major arrays work too: dxw (T, N, G*H) with x (T, N) or (T, N, D).

    dx (N, T, D), or None when x holds ids (ids have no gradient); dw_ih (G*H, D); db_ih (G*H,).
    """
    N, T, GH = dxw.shape
    dxw2 = dxw.reshape(N * T, GH)                            # (N*T, G*H)
    db_ih = dxw2.sum(axis=0)                                 # (G*H,)
    D = w_ih.shape[1]
    if not is_ids(x):
        x2 = np.asarray(x, dtype=w_ih.dtype).reshape(N * T, D)  # (N*T, D)
        dw_ih = dxw2.T @ x2                                  # (G*H, D)
        dx = (dxw2 @ w_ih).reshape(N, T, D)                  # (N, T, D)
        return dx, dw_ih, db_ih
    ids = np.asarray(x).reshape(N * T)
    D = w_ih.shape[1]
    if D <= 256 or N * T <= 2 * D:
        # A character vocabulary, or few rows: the one-hot GEMM dxw.T @ onehot(ids) is the scatter-add in three
        # NumPy calls, and BLAS runs it faster than any gather; adding the zeros changes nothing.
        onehot = np.zeros((N * T, D), dtype=dxw.dtype)       # (N*T, D)
        onehot[np.arange(N * T), ids] = 1.0
        return None, dxw2.T @ onehot, db_ih
    # Many rows: np.add.at(dw_ih.T, ids, dxw2) says the same thing but is ~5x slower; instead sort the rows by id
    # and sum each id's contiguous block (deterministic order, one Python iteration per distinct id, at most D).
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    rows = np.take(dxw2, order, axis=0)                      # (N*T, G*H), grouped by id
    bounds = np.flatnonzero(np.diff(sorted_ids, prepend=-1, append=-1))  # start of each id's block, then the end
    dw_t = np.zeros((D, GH), dtype=dxw.dtype)                # (D, G*H) = dw_ih.T
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        np.sum(rows[a:b], axis=0, out=dw_t[sorted_ids[a]])
    return None, np.ascontiguousarray(dw_t.T), db_ih


def sequence_forward(step_forward, x, state0, p):
    """Run one cell over all T steps; the `forward` of rnn.py, lstm.py and gru.py.

    The input projection for all steps is one GEMM (or gather) before the loop; the loop only does the recurrent
    part, calling the cell's step_forward(xw_t, state, w_hh, b_hh) -> (state, step_cache) once per step.
    Returns (out (N, T, H) = h_1..h_T, final state tuple, cache for sequence_backward). The cache refers to `out`,
    so treat it as read-only; the final state is a copy, free to modify (e.g. to reset streams).
    """
    w_hh, b_hh = p["weight_hh"], p["bias_hh"]
    xw = input_projection(x, p["weight_ih"], p["bias_ih"])  # (N, T, G*H)
    N, T, _ = xw.shape
    state = tuple(np.asarray(s, dtype=w_hh.dtype) for s in state0)  # each (N, H)
    h0 = state[0]
    out = np.empty((N, T, w_hh.shape[1]), w_hh.dtype)        # (N, T, H)
    steps = [None] * T
    for t in range(T):
        state, steps[t] = step_forward(xw[:, t], state, w_hh, b_hh)
        out[:, t] = state[0]
    return out, tuple(s.copy() for s in state), (x, h0, len(state), out, steps, p)


def sequence_backward(step_backward, dout, dstateT, cache):
    """Backprop through time for sequence_forward; the `backward` of rnn.py, lstm.py and gru.py.

    The loop only carries the state gradient back through step_backward and stores each step's dxw (and dgh, when
    the cell's differs from dxw) into (N, T, G*H) arrays; the weight grads are then single GEMMs over all N*T rows:
        dW_ih = dxw.T @ x          dW_hh = dgh.T @ h_prev          db_ih = sum dxw        db_hh = sum dgh
    Returns (dx or None for ids, dstate0 tuple, grads dict keyed like p).
    """
    x, h0, state_size, out, steps, p = cache
    w_hh = p["weight_hh"]
    dtype = w_hh.dtype
    N, T, H = out.shape
    dout = np.asarray(dout, dtype=dtype)
    if dstateT is None:
        dstate = tuple(np.zeros((N, H), dtype) for _ in range(state_size))
    else:
        dstate = tuple(np.asarray(d, dtype=dtype) for d in dstateT)
    dxws = np.empty((N, T, w_hh.shape[0]), dtype)            # (N, T, G*H)
    dghs = dxws                                              # becomes its own array if the cell's dgh != dxw
    for t in reversed(range(T)):
        dh = dstate[0] + dout[:, t]                          # (N, H) grad from the output and from step t+1
        dxw, dgh, dstate = step_backward((dh,) + dstate[1:], steps[t])
        dxws[:, t] = dxw
        if dgh is not dxw:
            if dghs is dxws:
                dghs = np.empty_like(dxws)                   # (N, T, G*H)
            dghs[:, t] = dgh
    dx, dw_ih, db_ih = input_projection_backward(dxws, x, p["weight_ih"])
    h_prev = np.empty_like(out)                              # (N, T, H): h_0..h_{T-1}
    if T:
        h_prev[:, 0] = h0
        h_prev[:, 1:] = out[:, :-1]
    dghs2 = dghs.reshape(N * T, w_hh.shape[0])               # (N*T, G*H)
    grads = {
        "weight_ih": dw_ih,                                  # (G*H, D)
        "weight_hh": dghs2.T @ h_prev.reshape(N * T, H),     # (G*H, H)
        "bias_ih": db_ih,                                    # (G*H,)
        "bias_hh": db_ih.copy() if dghs is dxws else dghs2.sum(axis=0),  # (G*H,)
    }
    return dx, dstate, grads
