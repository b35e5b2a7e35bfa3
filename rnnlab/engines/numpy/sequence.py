"""The input projection shared by the hand-written NumPy cells (rnn.py, lstm.py, gru.py, ...), the linear scan of
the cells whose gates read x_t only (their recurrence is elementwise), and the plain sequence pass over their step
pairs.

    project / project_backward                     W_ih x_t for one step (the cells' step_forward / step_backward)
    input_projection / input_projection_backward   W_ih x + b_ih for all T steps at once (the fused forward/backward)
    scan / scan_backward                           h_t = a_t * h_{t-1} + b_t over T steps, and its reverse
    sequence_forward / sequence_backward           any cell's step pair over T steps, with an optional padding mask

Every cell starts with the same input projection; the fused passes do it once for all T steps before the time loop:

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


def is_ids(x):
    """True if x holds integer token ids (N, T) rather than float vectors (N, T, D)."""
    return np.issubdtype(np.asarray(x).dtype, np.integer)


def time_major(x):
    """(N, T) ids or (N, T, D) inputs as a (T, N, ...) view, to pair with time-major gradient buffers."""
    return np.swapaxes(np.asarray(x), 0, 1)


def check_ids(x, D):
    """x as an int array, or ValueError if an id lies outside [0, D) (NumPy would wrap negative ids silently)."""
    x = np.asarray(x)
    if x.size and (x.min() < 0 or x.max() >= D):
        raise ValueError(f"token ids must lie in [0, {D}), got [{x.min()}, {x.max()}]")
    return x


def input_projection(x, w_ih, b_ih):
    """xw = x @ w_ih.T + b_ih for all N*T rows at once; returns (N, T, G*H) in w_ih's dtype.

    x: (N, T, D) floats -> one GEMM (N*T, D) @ (D, G*H); or (N, T) int ids in [0, D) -> gather of columns of w_ih.
    w_ih: (G*H, D), b_ih: (G*H,).
    """
    if is_ids(x):
        x = check_ids(x, w_ih.shape[1])
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


def project(x_t, w_ih):
    """W_ih x_t for one step, as the cells' step_forward writes it: x_t (N, D) floats -> x_t @ w_ih.T, or (N,) int
    ids -> column x_t[n] of w_ih (the gather of the module docstring). Returns (N, G*H) in w_ih's dtype.
    Ids are not range-checked here (sampling calls this for every character); sequence_forward checks them."""
    if is_ids(x_t):
        return w_ih.T[x_t]                                   # (N, G*H)
    return np.asarray(x_t, dtype=w_ih.dtype) @ w_ih.T        # (N, G*H)


def project_backward(da, x_t, w_ih):
    """Grads of project(x_t, w_ih) given da (N, G*H): (dx_t, dw_ih). For floats dx_t = da @ w_ih (N, D) and
    dw_ih = da.T @ x_t (G*H, D); for ids dx_t is None and dw_ih the scatter-add of da into the columns read."""
    dx, dw_ih, _ = input_projection_backward(da[None], np.asarray(x_t)[None], w_ih)   # time-major, T = 1
    return (None if dx is None else dx[0]), dw_ih


def scan(a, b, h0):
    """The linear recurrence h_t = a_t * h_{t-1} + b_t, t = 1..T, elementwise: a, b (T, N, H) time-major and
    contiguous, h0 (N, H). Returns hs (T, N, H) = h_1..h_T in b's dtype.

    A loop over T of two in-place ufuncs on contiguous (N, H) rows: every product of the layer is outside it (the
    cells compute a and b for all steps at once), and the loop does the same operations on the same rows however
    T is cut into chunks, so chunks with the state carried equal one pass bit for bit."""
    hs = np.empty_like(b)                                        # (T, N, H)
    h = np.asarray(h0, dtype=b.dtype)
    for t in range(b.shape[0]):
        h = np.multiply(a[t], h, out=hs[t])
        h += b[t]
    return hs


def scan_backward(a, dout, dhT):
    """Backward of scan: the reverse scan dh_{t-1} = dout_{t-1} + a_t * dh_t from dh_T = dout_T + dhT.

    a (T, N, H) time-major; dout (N, T, H) batch-major, the grads of h_1..h_T; dhT (N, H) or None for zeros.
    Returns (dh (T, N, H) the total grad of each h_t, a new array; dh0 (N, H) = a_1 * dh_1). Then da_t = dh_t *
    h_{t-1} and db_t = dh_t, which the cells fold into their gate derivatives for all steps at once."""
    dh = np.array(time_major(dout), dtype=a.dtype, order="C", copy=True)   # (T, N, H), never the caller's dout
    T, N, H = dh.shape
    dh0 = np.zeros((N, H), a.dtype) if dhT is None else np.array(dhT, dtype=a.dtype)
    if not T:
        return dh, dh0
    dh[-1] += dh0
    tmp = np.empty((N, H), a.dtype)
    for t in range(T - 1, 0, -1):
        dh[t - 1] += np.multiply(a[t], dh[t], out=tmp)
    return dh, np.multiply(a[0], dh[0])


def sequence_forward(cell, x, state0, p, mask=None):
    """The plain sequence pass: the cell's step_forward(x_t, state, p) for t = 0..T-1, nothing fused.

    cell: a cell module (rnn, lstm, gru: anything with step_forward/step_backward); x (N, T, D) floats or (N, T) int
    ids; state0 a tuple of (N, H) arrays; p the cell's params. Returns (out (N, T, H) = h_1..h_T, final state tuple,
    cache for sequence_backward). The final state is a copy, free to modify (e.g. to reset streams).

    mask (N, T) bool, when given, says which steps are real: sequences of different lengths share one batch padded
    at the end, and on a padded step the state is carried through unchanged,

        s_t = where(m_t, cell(x_t, s_{t-1}), s_{t-1})          (s = h, and c for the LSTM)

    so the state after step T is each sequence's true last state, and out[:, t] on a padded step is the carried h.
    np.where, not m * a + (1 - m) * b, so a padded batch gives bit for bit the states of its sequences run one by
    one (up to the BLAS's own batch-size-dependent rounding), whatever junk the padded steps compute.
    """
    x = check_ids(x, p["weight_ih"].shape[1]) if is_ids(x) else np.asarray(x)
    dtype = p["weight_ih"].dtype
    N, T = x.shape[:2]
    if mask is not None and np.shape(mask) != (N, T):
        raise ValueError(f"mask must have the shape (N, T) = {(N, T)} of the input, got {np.shape(mask)}")
    state = tuple(np.asarray(s, dtype=dtype) for s in state0)     # each (N, H)
    out = np.empty((N, T, state[0].shape[1]), dtype)             # (N, T, H)
    steps = [None] * T
    for t in range(T):
        new, steps[t] = cell.step_forward(x[:, t], state, p)
        if mask is not None:
            m = np.asarray(mask[:, t, None], bool)                # (N, 1)
            new = tuple(np.where(m, a, b) for a, b in zip(new, state))
        state = new
        out[:, t] = state[0]
    return out, tuple(s.copy() for s in state), (steps, mask, is_ids(x), len(state), out.shape, p)


def sequence_backward(cell, dout, dstateT, cache):
    """Backprop through time for sequence_forward, through the cell's step_backward(dstate, step_cache).

    dout (N, T, H) the grads of out; dstateT the grads of the final state (tuple of (N, H)), or None for zeros.
    Returns (dx (N, T, D), or None for ids; dstate0 tuple of (N, H); grads keyed like p). Step t receives
    dh_t = dout[:, t] + (grad from step t+1); the weight grads are the sum of the steps' grads. With a mask, a
    padded step passes its state gradient to s_{t-1} untouched and adds nothing to dx or to the weight grads.
    """
    steps, mask, ids, state_size, (N, T, H), p = cache
    dtype = p["weight_ih"].dtype
    dout = np.asarray(dout, dtype=dtype)
    if dstateT is None:
        dstate = tuple(np.zeros((N, H), dtype) for _ in range(state_size))
    else:
        dstate = tuple(np.asarray(d, dtype=dtype) for d in dstateT)
    dx = None if ids else np.empty((N, T, p["weight_ih"].shape[1]), dtype)   # (N, T, D)
    grads = {k: np.zeros_like(v) for k, v in p.items()}
    for t in reversed(range(T)):
        ds = (dstate[0] + dout[:, t],) + dstate[1:]               # grad of s_t: from out[:, t] and from step t+1
        if mask is None:
            dx_t, dstate, g = cell.step_backward(ds, steps[t])
        else:
            m = np.asarray(mask[:, t, None], bool)                # (N, 1): real rows through the cell,
            dx_t, dprev, g = cell.step_backward(tuple(np.where(m, d, 0.0) for d in ds), steps[t])
            dstate = tuple(np.where(m, a, d) for a, d in zip(dprev, ds))   # padded rows straight on
        if dx is not None:
            dx[:, t] = dx_t
        for k in grads:
            grads[k] += g[k]
    return dx, dstate, grads


def input_table(w_ih, bias, one_hot: bool):
    """W_ih laid out once for a sampling step (cells' prepare_step): one-hot input, the table W_ih^T + bias (D, G*H),
    one contiguous row per symbol; dense input, (W_ih^T (D, G*H) contiguous, bias)."""
    w_ih_t = np.ascontiguousarray(w_ih.T)
    return w_ih_t + bias if one_hot else (w_ih_t, bias)


def apply_table(table, x):
    """x @ W_ih^T + bias through input_table's result: x (K,) ids -> its rows, (K, D) floats -> one GEMM. (K, G*H)"""
    return table[x] if x.ndim == 1 else x @ table[0] + table[1]
