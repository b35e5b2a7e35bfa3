"""GRU layer in NumPy with a hand-written backward pass (PyTorch nn.GRU's equations and parameter layout).

    [xr, xz, xn] = W_ih x_t + b_ih         [hr, hz, hn] = W_hh h_{t-1} + b_hh        three (N, H) blocks each
    r = sigmoid(xr + hr)      z = sigmoid(xz + hz)      n = tanh(xn + r * hn)
    h_t = (1 - z) * n + z * h_{t-1}

r multiplies hn *including* b_hn, so the two projections are kept apart (unlike rnn and lstm, whose biases and
products all add into one pre-activation): the grads of [xr, xz, xn] and of [hr, hz, hn] differ in their n block.

Shapes: N streams, T steps, D input size, H hidden. Params p: "weight_ih" (3H, D), "weight_hh" (3H, H),
"bias_ih" (3H,), "bias_hh" (3H,), gate k in rows k*H:(k+1)*H. State is the tuple (h,), h (N, H). x_t is (N, D)
floats, or (N,) int ids meaning one-hot vectors of size D (then W_ih x_t is a column gather, see sequence.py).

The file reads in three parts. First the step pair, the equations above as written (sequence.sequence_forward runs it
over T steps, with a padding mask if asked):
    step_forward(x_t, state, p) -> (state, cache)
    step_backward(dstate, cache) -> (dx_t or None for ids, dstate_prev, grads of this step keyed like p)
Then forward/backward, the same maths fused over all T steps for speed (what training runs);
tests/test_numpy_cells.py proves the two equal. Last, prepare_step/sample_step: one step with the weights laid out
once, what sampling runs per character (tests/test_numpy_step.py holds it to forward).

    >>> rng = np.random.default_rng(0)
    >>> p = {"weight_ih": rng.normal(size=(6, 3)), "weight_hh": rng.normal(size=(6, 2)),
    ...      "bias_ih": np.zeros(6), "bias_hh": np.zeros(6)}
    >>> (h,), cache = step_forward(rng.normal(size=(4, 3)), (np.zeros((4, 2)),), p)
    >>> dx, (dh_prev,), grads = step_backward((np.ones_like(h),), cache)
    >>> dx.shape, grads["bias_hh"].shape
    ((4, 3), (6,))
    >>> out, (h,), cache = forward(rng.normal(size=(4, 5, 3)), (np.zeros((4, 2)),), p)
    >>> out.shape, bool(np.array_equal(out[:, -1], h))
    ((4, 5, 2), True)
    >>> dx, (dh0,), grads = backward(np.ones_like(out), None, cache)
    >>> dx.shape, grads["bias_hh"].shape
    ((4, 5, 3), (6,))
"""

import numpy as np

from rnnlab.cells import CELLS
from rnnlab.engines.numpy.layers import sigmoid
from rnnlab.engines.numpy.sequence import (apply_table, input_projection, input_projection_backward, input_table,
                                           project, project_backward, time_major)

GATES, STATE_SIZE = CELLS["gru"].gates, len(CELLS["gru"].state)    # 3, 1: from the table of cells


def step_forward(x_t, state, p):
    """One step of the equations above. x_t (N, D) or (N,) ids; state = (h_prev,). Returns ((h,), cache)."""
    (h_prev,) = state
    H = h_prev.shape[1]
    gx = project(x_t, p["weight_ih"]) + p["bias_ih"]         # (N, 3H) [xr, xz, xn]
    gh = h_prev @ p["weight_hh"].T + p["bias_hh"]            # (N, 3H) [hr, hz, hn]
    rz = sigmoid(gx[:, :2 * H] + gh[:, :2 * H])              # (N, 2H) both sigmoid gates in one go:
    r, z = rz[:, :H], rz[:, H:]                              # (N, H) reset gate r, update gate z
    hn = gh[:, 2 * H:]                                       # (N, H)
    n = np.tanh(gx[:, 2 * H:] + r * hn)                      # (N, H) candidate
    h = n + z * (h_prev - n)                                 # (N, H) = (1 - z) * n + z * h_prev
    return (h,), (x_t, h_prev, r, z, n, hn, p)


def step_backward(dstate, cache):
    """Backward of one step. dstate = (dh,), the total grad w.r.t. h_t (from the output and from step t+1).

    Returns (dx_t (N, D) or None for ids, (dh_prev,), grads): grads holds this step's share of every parameter's
    gradient. The activations' derivatives are written with their outputs: sigmoid' = s * (1 - s), tanh' = 1 - y^2.
    """
    (dh,) = dstate
    x_t, h_prev, r, z, n, hn, p = cache
    dan = dh * (1.0 - z) * (1.0 - n * n)                     # (N, H) grad of n's pre-activation xn + r * hn
    daz = dh * (h_prev - n) * z * (1.0 - z)                  # (N, H) grad of xz + hz
    dar = dan * hn * r * (1.0 - r)                           # (N, H) grad of xr + hr
    dgx = np.concatenate([dar, daz, dan], axis=1)            # (N, 3H) grad of [xr, xz, xn]
    dgh = np.concatenate([dar, daz, dan * r], axis=1)        # (N, 3H) grad of [hr, hz, hn]: hn enters as r * hn
    dx_t, dw_ih = project_backward(dgx, x_t, p["weight_ih"])  # (N, D) or None, (3H, D)
    grads = {"weight_ih": dw_ih, "weight_hh": dgh.T @ h_prev, "bias_ih": dgx.sum(axis=0), "bias_hh": dgh.sum(axis=0)}
    dh_prev = dh * z + dgh @ p["weight_hh"]                  # (N, H) directly, and through [hr, hz, hn]
    return dx_t, (dh_prev,), grads


def forward(x, state0, p):
    """Run the layer over all T steps. x (N, T, D) floats or (N, T) int ids; state0 = (h0,), h0 (N, H).

    Returns (out, stateT, cache): out (N, T, H) holds h_1..h_T and stateT = (h_T,).

    step_forward, fused for speed: the r and z rows of W_hh, b_hh and the input projection are halved once so that
    one tanh gives both sigmoids (sigmoid(a) = 0.5 * tanh(a/2) + 0.5; halving is exact), and each step writes in
    place into time-major buffers. tests/test_numpy_cells.py proves it equal to a naive loop and to PyTorch.
    """
    w_hh, b_hh = p["weight_hh"], p["bias_hh"]
    dtype = w_hh.dtype
    G3, H = w_hh.shape
    scale = np.full(G3, 0.5, dtype)                          # (3H,): halve r, z; keep n
    scale[2 * H:] = 1.0
    xw = input_projection(x, p["weight_ih"], p["bias_ih"])   # (N, T, 3H)
    xw *= scale
    w_hh_t = (w_hh * scale[:, None]).T                       # (H, 3H)
    b_hh_s = b_hh * scale                                    # (3H,)
    N, T, _ = xw.shape
    h0 = np.asarray(state0[0], dtype=dtype)                  # (N, H)
    gh = np.empty((T, N, G3), dtype)                         # [hr/2, hz/2, hn] = (W_hh h_{t-1} + b_hh), scaled
    rz = np.empty((T, N, 2 * H), dtype)                      # r, z
    ns, hs = np.empty((T, N, H), dtype), np.empty((T, N, H), dtype)
    h = h0
    for t in range(T):
        g = gh[t]                                            # (N, 3H)
        np.matmul(h, w_hh_t, out=g)
        g += b_hh_s
        a = np.add(xw[:, t, :2 * H], g[:, :2 * H], out=rz[t])  # (N, 2H) halved pre-activations of r, z
        np.tanh(a, out=a)
        a *= 0.5
        a += 0.5                                             # r, z = sigmoid(.)
        r, z = a[:, :H], a[:, H:]
        n = np.multiply(r, g[:, 2 * H:], out=ns[t])          # n = tanh(xn + r * hn)
        n += xw[:, t, 2 * H:]
        np.tanh(n, out=n)
        d = h - n                                            # h_t = n + z * (h_{t-1} - n) = (1-z) n + z h_{t-1}
        d *= z
        h = np.add(n, d, out=hs[t])
    stateT = (h.copy(),)
    return np.ascontiguousarray(hs.transpose(1, 0, 2)), stateT, (x, h0, gh, rz, ns, hs, p)


def backward(dout, dstateT, cache):
    """Backprop through time. dout (N, T, H); dstateT = (dh_T,), or None for zeros.

    Returns (dx, (dh0,), grads): dx (N, T, D), or None for ids; grads has the keys and shapes of p.

    step_backward, fused: the factors that do not depend on the incoming gradient are computed for all steps first,
        Dn = (1 - z)(1 - n^2)      Dz = (h_{t-1} - n) z(1 - z)      Dr = hn r(1 - r)
    so a step is: da_n = dh Dn; da_z = dh Dz; da_r = da_n Dr; dgh = [da_r, da_z, da_n r];
    dh_{t-1} = dh z + dgh W_hh. dxw equals dgh except in its n block (da_n, without the r).
    """
    x, h0, gh, rz, ns, hs, p = cache
    w_hh = p["weight_hh"]
    dtype = w_hh.dtype
    T, N, H = hs.shape
    dout = np.asarray(dout, dtype=dtype)
    r, z = rz[..., :H], rz[..., H:]
    h_prev = np.empty_like(hs)                               # (T, N, H): h_0..h_{T-1}
    if T:
        h_prev[0], h_prev[1:] = h0, hs[:-1]
    Dn = np.multiply(ns, ns)                                 # (T, N, H)
    np.subtract(1.0, Dn, out=Dn)
    Dn *= 1.0 - z
    Dz = np.subtract(h_prev, ns)
    Dz *= z
    Dz *= 1.0 - z
    Dr = np.subtract(1.0, r)
    Dr *= r
    Dr *= gh[..., 2 * H:]                                    # hn, unscaled
    dgh = np.empty((T, N, 3 * H), dtype)                     # grads of [hr, hz, hn]
    dan = np.empty((T, N, H), dtype)                         # grad of the n pre-activation
    dh_next = np.zeros((N, H), dtype) if dstateT is None else np.asarray(dstateT[0], dtype=dtype)
    for t in range(T - 1, -1, -1):
        dh = dout[:, t] + dh_next                            # (N, H)
        np.multiply(dh, Dn[t], out=dan[t])
        np.multiply(dh, Dz[t], out=dgh[t, :, H:2 * H])       # da_z
        np.multiply(dan[t], Dr[t], out=dgh[t, :, :H])        # da_r
        np.multiply(dan[t], r[t], out=dgh[t, :, 2 * H:])     # d hn
        dh_next = dgh[t] @ w_hh                              # (N, H)
        dh *= z[t]
        dh_next += dh
    dxw = dgh.copy()                                         # (T, N, 3H)
    dxw[..., 2 * H:] = dan
    dx, dw_ih, db_ih = input_projection_backward(dxw, time_major(x), p["weight_ih"])   # rows paired (t, n)
    dgh2 = dgh.reshape(T * N, 3 * H)
    grads = {
        "weight_ih": dw_ih,                                  # (3H, D)
        "weight_hh": dgh2.T @ h_prev.reshape(T * N, H),      # (3H, H)
        "bias_ih": db_ih,                                    # (3H,)
        "bias_hh": dgh2.sum(axis=0),                         # (3H,)
    }
    return (None if dx is None else dx.transpose(1, 0, 2)), (dh_next,), grads


def prepare_step(p, one_hot):
    """Weights laid out once for sample_step (sampling calls a step per character): (table, w_hh_t, b_hh).
    One-hot input: table = W_ih^T + b_ih (D, 3H), one contiguous row per symbol; dense input: (W_ih^T, b_ih)."""
    return input_table(p["weight_ih"], p["bias_ih"], one_hot), np.ascontiguousarray(p["weight_hh"].T), p["bias_hh"]


def sample_step(x, state, prep, out):
    """step_forward for sampling with prepare_step's weights: x (K,) ids or (K, D) floats, state = (h_prev,), the
    new h written into out = (h,). tests/test_numpy_step.py holds it to model.forward."""
    table, w_hh_t, b_hh = prep
    (h_prev,) = state
    H = h_prev.shape[1]
    gx = apply_table(table, x)                               # (K, 3H) [xr, xz, xn]
    gh = h_prev @ w_hh_t                                     # (K, 3H) [hr, hz, hn]
    gh += b_hh
    rz = gx[:, :2 * H] + gh[:, :2 * H]
    sigmoid(rz, out=rz)                                      # r, z
    n = gh[:, 2 * H:]
    n *= rz[:, :H]
    n += gx[:, 2 * H:]
    np.tanh(n, out=n)                                        # n = tanh(xn + r * hn)
    h = np.subtract(h_prev, n, out=out[0])
    h *= rz[:, H:]
    h += n                                                   # h = n + z * (h_prev - n)


# The same step in JavaScript, for the page `rnnlab export --format html` writes (rnnlab/export/page_js.py): it updates
# the layer's state arrays s in place from gx = W_ih x + b_ih (G*H) and gh = W_hh h + b_hh (null without W_hh).
# [r z n]; n = tanh(xn + r hn); h = (1 - z) n + z h
JS_STEP = r"""
function(gx, gh, s, H) {
    const h = s[0];
    for (let j = 0; j < H; j++) {
      const r = sig(gx[j] + gh[j]), z = sig(gx[H + j] + gh[H + j]);
      const n = Math.tanh(gx[2 * H + j] + r * gh[2 * H + j]);
      h[j] = n + z * (h[j] - n);
    } }
"""
