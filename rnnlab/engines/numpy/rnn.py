"""Vanilla (Elman) RNN layer in NumPy with a hand-written backward pass.

    h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)

The paper's W_xh is weight_ih, its W_hh is weight_hh and its b_h is bias_ih + bias_hh (two biases, as in PyTorch's
nn.RNN, so the same parameters load into either engine unchanged).

Shapes: N streams, T steps, D input size, H hidden. Params p: "weight_ih" (H, D), "weight_hh" (H, H),
"bias_ih" (H,), "bias_hh" (H,). State is the tuple (h,) with h (N, H). x_t is (N, D) floats, or (N,) int ids
meaning one-hot vectors of size D (then W_ih x_t is a column gather, see sequence.py).

The file reads in three parts. First the step pair, the equation above as written (sequence.sequence_forward runs it
over T steps, with a padding mask if asked):
    step_forward(x_t, state, p) -> (state, cache)
    step_backward(dstate, cache) -> (dx_t or None for ids, dstate_prev, grads of this step keyed like p)
Then forward/backward, the same maths fused over all T steps for speed (what training runs);
tests/test_numpy_cells.py proves the two equal. Last, prepare_step/sample_step: one step with the weights laid out
once, what sampling runs per character (tests/test_numpy_step.py holds it to forward).

    >>> rng = np.random.default_rng(0)
    >>> p = {"weight_ih": rng.normal(size=(4, 3)), "weight_hh": rng.normal(size=(4, 4)),
    ...      "bias_ih": np.zeros(4), "bias_hh": np.zeros(4)}
    >>> (h,), cache = step_forward(np.array([2, 0]), (np.zeros((2, 4)),), p)   # ids, D = 3
    >>> dx, (dh_prev,), grads = step_backward((np.ones_like(h),), cache)
    >>> h.shape, dx, grads["weight_ih"].shape
    ((2, 4), None, (4, 3))
    >>> out, (h,), cache = forward(rng.normal(size=(2, 5, 3)), (np.zeros((2, 4)),), p)
    >>> out.shape, h.shape
    ((2, 5, 4), (2, 4))
    >>> dx, (dh0,), grads = backward(np.ones_like(out), None, cache)
    >>> dx.shape, grads["weight_hh"].shape
    ((2, 5, 3), (4, 4))
"""

import numpy as np

from rnnlab.cells import CELLS
from rnnlab.engines.numpy.sequence import (apply_table, input_projection, input_projection_backward, input_table,
                                           project, project_backward, time_major)

GATES, STATE_SIZE = CELLS["rnn"].gates, len(CELLS["rnn"].state)    # 1, 1: from the table of cells


def step_forward(x_t, state, p):
    """One step: h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh). x_t (N, D) or (N,) ids; state = (h_prev,).

    Returns ((h,), cache)."""
    (h_prev,) = state
    a = project(x_t, p["weight_ih"]) + p["bias_ih"] + h_prev @ p["weight_hh"].T + p["bias_hh"]   # (N, H)
    h = np.tanh(a)                                                                             # (N, H)
    return (h,), (x_t, h_prev, h, p)


def step_backward(dstate, cache):
    """Backward of one step. dstate = (dh,), the total grad w.r.t. h_t (from the output and from step t+1).

    Returns (dx_t (N, D) or None for ids, (dh_prev,), grads): grads holds this step's share of every parameter's
    gradient. Both biases and both products enter the pre-activation a alike, so all four get da.
    """
    (dh,) = dstate
    x_t, h_prev, h, p = cache
    # d tanh(a)/da = 1 - tanh(a)^2 = 1 - h*h. (The paper prints (1 - h) * h, which is the sigmoid's derivative
    # written in terms of its output; it is wrong for tanh.)
    da = dh * (1.0 - h * h)                                  # (N, H) grad of a
    dx_t, dw_ih = project_backward(da, x_t, p["weight_ih"])  # (N, D) or None, (H, D)
    db = da.sum(axis=0)                                      # (H,)
    grads = {"weight_ih": dw_ih, "weight_hh": da.T @ h_prev, "bias_ih": db, "bias_hh": db.copy()}
    return dx_t, (da @ p["weight_hh"],), grads


def forward(x, state0, p):
    """Run the layer over all T steps. x (N, T, D) floats or (N, T) int ids; state0 = (h0,), h0 (N, H).

    Returns (out, stateT, cache): out (N, T, H) holds h_1..h_T and stateT = (h_T,).

    This is step_forward, fused for speed (the paper's batch of one makes every NumPy call count): both biases are
    added to the input projection once for all T steps, and each step is one GEMM, one add and one tanh written
    straight into a time-major buffer. tests/test_numpy_cells.py proves it equal to the step-by-step reference.
    """
    w_hh = p["weight_hh"]
    dtype = w_hh.dtype
    xw = input_projection(x, p["weight_ih"], p["bias_ih"])   # (N, T, H)
    xw += p["bias_hh"]                                       # b_h = b_ih + b_hh, the same at every step
    N, T, H = xw.shape
    h0 = np.asarray(state0[0], dtype=dtype)                  # (N, H)
    hs = np.empty((T, N, H), dtype)                          # time-major: hs[t] is contiguous
    w_hh_t = w_hh.T
    h = h0
    for t in range(T):
        a = h @ w_hh_t                                       # (N, H)
        a += xw[:, t]
        h = np.tanh(a, out=hs[t])                            # h_t = tanh(W_xh x_t + W_hh h_{t-1} + b_h)
    out = hs.transpose(1, 0, 2)                              # (N, T, H) view
    stateT = (hs[-1].copy() if T else h0.copy(),)
    return np.ascontiguousarray(out), stateT, (x, h0, hs, p)


def backward(dout, dstateT, cache):
    """Backprop through time. dout (N, T, H); dstateT = (dh_T,), or None for zeros.

    Returns (dx, (dh0,), grads): dx (N, T, D), or None for ids; grads has the keys and shapes of p.
    step_backward, fused: tanh'(a) = 1 - h*h for all steps in one go, then per step one add, one multiply and one
    GEMM; the weight gradients are single GEMMs over all N*T rows after the loop.
    """
    x, h0, hs, p = cache
    w_hh = p["weight_hh"]
    dtype = w_hh.dtype
    T, N, H = hs.shape
    dout = np.asarray(dout, dtype=dtype)
    da = np.multiply(hs, hs)                                 # (T, N, H), becomes dL/da_t in place
    np.subtract(1.0, da, out=da)                             # 1 - h*h (the paper printed (1 - h) * h: wrong)
    dh_next = np.zeros((N, H), dtype) if dstateT is None else np.asarray(dstateT[0], dtype=dtype)
    for t in range(T - 1, -1, -1):
        dh = dout[:, t] + dh_next                            # (N, H) from the output and from step t+1
        np.multiply(dh, da[t], out=da[t])                    # dL/da_t = dh * (1 - h_t^2)
        dh_next = da[t] @ w_hh                               # (N, H) into h_{t-1}
    dx, dw_ih, db_ih = input_projection_backward(da, time_major(x), p["weight_ih"])   # rows paired (t, n)
    dx = None if dx is None else dx.transpose(1, 0, 2)       # (N, T, D) view
    h_prev = np.empty_like(hs)                               # (T, N, H): h_0..h_{T-1}
    if T:
        h_prev[0] = h0
        h_prev[1:] = hs[:-1]
    grads = {
        "weight_ih": dw_ih,                                  # (H, D)
        "weight_hh": da.reshape(T * N, H).T @ h_prev.reshape(T * N, H),   # (H, H)
        "bias_ih": db_ih,                                    # (H,)
        "bias_hh": db_ih.copy(),                             # (H,) the same sum: both biases enter a_t alike
    }
    return dx, (dh_next,), grads


def prepare_step(p, one_hot):
    """Weights laid out once for sample_step (sampling calls a step per character): (table, w_hh_t).
    One-hot input: table = W_ih^T + b_ih + b_hh (D, H), one contiguous row per symbol; dense input: table =
    (W_ih^T (D, H), b_ih + b_hh). w_hh_t = W_hh^T (H, H), contiguous."""
    return input_table(p["weight_ih"], p["bias_ih"] + p["bias_hh"], one_hot), np.ascontiguousarray(p["weight_hh"].T)


def sample_step(x, state, prep, out):
    """step_forward for sampling with prepare_step's weights: x (K,) ids or (K, D) floats, state = (h_prev,), the
    new h written into out = (h,). tests/test_numpy_step.py holds it to model.forward."""
    table, w_hh_t = prep
    a = state[0] @ w_hh_t                                    # (K, H)
    a += apply_table(table, x)
    np.tanh(a, out=out[0])                                   # h_t = tanh(W_xh x_t + W_hh h_{t-1} + b_h)


# The same step in JavaScript, for the page `rnnlab export --format html` writes (rnnlab/export/page_js.py): it updates
# the layer's state arrays s in place from gx = W_ih x + b_ih (G*H) and gh = W_hh h + b_hh (null without W_hh).
# h = tanh(W_ih x + b_ih + W_hh h + b_hh)
JS_STEP = r"""
function(gx, gh, s, H) { const h = s[0]; for (let j = 0; j < H; j++) h[j] = Math.tanh(gx[j] + gh[j]); }
"""
