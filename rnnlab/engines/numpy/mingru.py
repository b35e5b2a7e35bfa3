"""minGRU layer in NumPy with a hand-written backward pass (Feng et al. 2024, "Were RNNs All We Needed?").

The GRU with h_{t-1} taken out of its gates, and the reset gate dropped:

    [k, h~] = W_ih x_t + b_ih                  two (N, H) blocks: the update gate's pre-activation, the candidate
    z = sigmoid(k)
    h_t = (1 - z) * h_{t-1} + z * h~           = a_t * h_{t-1} + b_t with a_t = 1 - z, b_t = z * h~

Nothing in a_t or b_t reads h_{t-1}, so every product covers all N*T rows at once and what is left of the
recurrence is elementwise and linear: a scan (sequence.scan), whose backward is the reverse scan
dh_{t-1} = a_t * dh_t plus the gate derivatives. The candidate has no activation, as in the paper's equations;
its g(x) (x + 0.5 for x >= 0, sigmoid(x) otherwise) only keeps h~ positive for its log-space variant, and the
torch engine's log-space scan handles either sign (rnnlab/engines/torch/cells.py).

Shapes: N streams, T steps, D input size, H hidden. Params p: "weight_ih" (2H, D) and "bias_ih" (2H,), blocks
[z, h~] in rows k*H:(k+1)*H; no weight_hh, no bias_hh (the row of rnnlab/cells.py lists the two). State is the
tuple (h,), h (N, H). x_t is (N, D) floats, or (N,) int ids meaning one-hot vectors of size D (see sequence.py).

The file reads as gru.py does. First the step pair, the equations above as written:
    step_forward(x_t, state, p) -> (state, cache)
    step_backward(dstate, cache) -> (dx_t or None for ids, dstate_prev, grads of this step keyed like p)
Then forward/backward over all T steps (one GEMM, the coefficients of every step, the scan; what training runs);
tests/test_numpy_cells.py proves them equal to the step pair. Last, prepare_step/sample_step for sampling.

    >>> rng = np.random.default_rng(0)
    >>> p = {"weight_ih": rng.normal(size=(4, 3)), "bias_ih": np.zeros(4)}          # H = 2, D = 3
    >>> (h,), cache = step_forward(rng.normal(size=(5, 3)), (np.zeros((5, 2)),), p)
    >>> dx, (dh_prev,), grads = step_backward((np.ones_like(h),), cache)
    >>> dx.shape, sorted(grads)
    ((5, 3), ['bias_ih', 'weight_ih'])
    >>> out, (h,), cache = forward(rng.normal(size=(5, 7, 3)), (np.zeros((5, 2)),), p)
    >>> out.shape, bool(np.array_equal(out[:, -1], h))
    ((5, 7, 2), True)
    >>> dx, (dh0,), grads = backward(np.ones_like(out), None, cache)
    >>> dx.shape, grads["weight_ih"].shape
    ((5, 7, 3), (4, 3))
"""

import numpy as np

from rnnlab.cells import CELLS
from rnnlab.engines.numpy.layers import sigmoid
from rnnlab.engines.numpy.sequence import (apply_table, input_projection, input_projection_backward, input_table,
                                           project, project_backward, scan, scan_backward, time_major)

GATES, STATE_SIZE = CELLS["mingru"].gates, len(CELLS["mingru"].state)    # 2, 1: from the table of cells


def step_forward(x_t, state, p):
    """One step of the equations above. x_t (N, D) or (N,) ids; state = (h_prev,). Returns ((h,), cache)."""
    (h_prev,) = state
    H = h_prev.shape[1]
    g = project(x_t, p["weight_ih"]) + p["bias_ih"]          # (N, 2H) [k, h~]
    z, cand = sigmoid(g[:, :H]), g[:, H:]                    # (N, H) update gate, candidate h~
    h = (1.0 - z) * h_prev + z * cand                        # (N, H)
    return (h,), (x_t, h_prev, z, cand, p)


def step_backward(dstate, cache):
    """Backward of one step. dstate = (dh,), the total grad w.r.t. h_t. Returns (dx_t (N, D) or None for ids,
    (dh_prev,), grads of this step): dh_prev = (1 - z) dh, dh~ = z dh, dk = dh (h~ - h_prev) z (1 - z)."""
    (dh,) = dstate
    x_t, h_prev, z, cand, p = cache
    dg = np.concatenate([dh * (cand - h_prev) * z * (1.0 - z), dh * z], axis=1)   # (N, 2H) grad of [k, h~]
    dx_t, dw_ih = project_backward(dg, x_t, p["weight_ih"])  # (N, D) or None, (2H, D)
    return dx_t, (dh * (1.0 - z),), {"weight_ih": dw_ih, "bias_ih": dg.sum(axis=0)}


def forward(x, state0, p):
    """Run the layer over all T steps. x (N, T, D) floats or (N, T) int ids; state0 = (h0,), h0 (N, H).

    Returns (out (N, T, H) = h_1..h_T, (h_T,), cache). The input projection of all N*T rows is one GEMM (or a
    gather), made time-major so that a_t, b_t and the scan's rows are contiguous; a_t and b_t come out of
    elementwise ops over all T steps at once, the same ops step_forward does, so the two agree bit for bit."""
    w = p["weight_ih"]
    H = w.shape[0] // GATES
    xw = input_projection(time_major(x), w, p["bias_ih"])    # (T, N, 2H) [k, h~], rows paired (t, n)
    z = sigmoid(xw[..., :H])                                 # (T, N, H)
    a = 1.0 - z                                              # (T, N, H) a_t
    b = z * xw[..., H:]                                      # (T, N, H) b_t = z h~
    h0 = np.asarray(state0[0], dtype=w.dtype)                # (N, H)
    hs = scan(a, b, h0)                                      # (T, N, H) h_1..h_T
    hT = hs[-1].copy() if len(hs) else h0.copy()
    return np.ascontiguousarray(hs.transpose(1, 0, 2)), (hT,), (x, h0, xw, z, a, hs, p)


def backward(dout, dstateT, cache):
    """Backprop through time. dout (N, T, H); dstateT = (dh_T,), or None for zeros.

    Returns (dx (N, T, D) or None for ids, (dh0,), grads keyed like p): the reverse scan gives every step's dh_t,
    then the gate derivatives of step_backward for all steps at once and one GEMM for dW_ih and dx."""
    x, h0, xw, z, a, hs, p = cache
    H = h0.shape[1]
    dh, dh0 = scan_backward(a, dout, None if dstateT is None else dstateT[0])   # (T, N, H), (N, H)
    h_prev = np.concatenate([h0[None], hs[:-1]]) if len(hs) else hs             # (T, N, H) h_0..h_{T-1}
    dg = np.empty_like(xw)                                   # (T, N, 2H) grad of [k, h~]
    dg[..., :H] = dh * (xw[..., H:] - h_prev) * z * (1.0 - z)
    dg[..., H:] = dh * z
    dx, dw_ih, db_ih = input_projection_backward(dg, time_major(x), p["weight_ih"])
    return (None if dx is None else dx.transpose(1, 0, 2)), (dh0,), {"weight_ih": dw_ih, "bias_ih": db_ih}


def prepare_step(p, one_hot):
    """Weights laid out once for sample_step: one-hot input, the table W_ih^T + b_ih (D, 2H), one contiguous row
    per symbol; dense input, (W_ih^T, b_ih)."""
    return input_table(p["weight_ih"], p["bias_ih"], one_hot)


def sample_step(x, state, prep, out):
    """step_forward for sampling with prepare_step's weights: x (K,) ids or (K, D) floats, state = (h_prev,), the
    new h written into out = (h,)."""
    (h_prev,) = state
    H = h_prev.shape[1]
    g = apply_table(prep, x)    # (K, 2H) [k, h~]
    z = sigmoid(g[:, :H])
    h = np.multiply(1.0 - z, h_prev, out=out[0])
    h += z * g[:, H:]


# The same step in JavaScript, for the page `rnnlab export --format html` writes (rnnlab/export/page_js.py): it updates
# the layer's state arrays s in place from gx = W_ih x + b_ih (G*H) and gh = W_hh h + b_hh (null without W_hh).
# [z h~]; z = sig(.); h = (1 - z) h + z h~
JS_STEP = r"""
function(gx, gh, s, H) {
    const h = s[0];
    for (let j = 0; j < H; j++) { const z = sig(gx[j]); h[j] = (1 - z) * h[j] + z * gx[H + j]; } }
"""
