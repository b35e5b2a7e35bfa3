"""minLSTM layer in NumPy with a hand-written backward pass (Feng et al. 2024, "Were RNNs All We Needed?").

The LSTM with h_{t-1} taken out of its gates, the output gate and the cell's tanh dropped, and the forget and input
gates normalised to sum to one (so h stays on the scale of h~ and needs no separate cell state c):

    [k_f, k_i, h~] = W_ih x_t + b_ih           three (N, H) blocks: forget and input pre-activations, candidate
    f = sigmoid(k_f)      i = sigmoid(k_i)      f' = f / (f + i)      i' = i / (f + i)
    h_t = f' * h_{t-1} + i' * h~               = a_t * h_{t-1} + b_t with a_t = f', b_t = i' * h~

f' and i' are computed without the 0 / 0 that f / (f + i) gives when both gates underflow (see _gates). As for
minGRU (mingru.py): nothing in a_t, b_t
reads h_{t-1}, so the recurrence is a linear scan (sequence.scan) and its backward the reverse scan
dh_{t-1} = a_t * dh_t plus the gate derivatives; the candidate has no activation (the paper's g(x) is for its
log-space variant only).

Shapes: N streams, T steps, D input size, H hidden. Params p: "weight_ih" (3H, D) and "bias_ih" (3H,), blocks
[f, i, h~] in rows k*H:(k+1)*H; no weight_hh, no bias_hh. State is the tuple (h,), h (N, H): no c. x_t is (N, D)
floats, or (N,) int ids meaning one-hot vectors of size D (see sequence.py).

The file reads as gru.py does: the step pair (the equations above), then forward/backward over all T steps (one
GEMM, the coefficients of every step, the scan; tests/test_numpy_cells.py proves them equal to the step pair), then
prepare_step/sample_step for sampling.

    >>> rng = np.random.default_rng(0)
    >>> p = {"weight_ih": rng.normal(size=(6, 3)), "bias_ih": np.zeros(6)}          # H = 2, D = 3
    >>> (h,), cache = step_forward(np.array([2, 0, 1]), (np.zeros((3, 2)),), p)   # ids
    >>> dx, (dh_prev,), grads = step_backward((np.ones_like(h),), cache)
    >>> h.shape, dx, grads["weight_ih"].shape
    ((3, 2), None, (6, 3))
    >>> out, (h,), cache = forward(rng.normal(size=(3, 7, 3)), (np.zeros((3, 2)),), p)
    >>> dx, (dh0,), grads = backward(np.ones_like(out), None, cache)
    >>> out.shape, dx.shape, grads["bias_ih"].shape
    ((3, 7, 2), (3, 7, 3), (6,))
"""

import numpy as np

from rnnlab.cells import CELLS
from rnnlab.engines.numpy.layers import sigmoid
from rnnlab.engines.numpy.sequence import (apply_table, input_projection, input_projection_backward, input_table,
                                           project, project_backward, scan, scan_backward, time_major)

GATES, STATE_SIZE = CELLS["minlstm"].gates, len(CELLS["minlstm"].state)    # 3, 1: from the table of cells


def _gates(kf, ki):
    """(f', i') = (f, i) / (f + i) from the pre-activations k_f, k_i (any shape), exact and never 0 / 0.

    With f = 1 / (1 + e^-k_f) and i = 1 / (1 + e^-k_i), f' = (1 + e^-k_i) / (2 + e^-k_f + e^-k_i); numerator and
    denominator times e^m, m = min(k_f, k_i, 0), leave exponents <= 0 (nothing overflows) and one of the terms
    e^m, e^(m - k_f), e^(m - k_i) equal to 1 (the denominator is >= 1). Three exps: ~40x faster than np.logaddexp."""
    m = np.minimum(np.minimum(kf, ki), 0.0)
    em, u, w = np.exp(m), np.exp(m - kf), np.exp(m - ki)    # e^m, e^(m - k_f), e^(m - k_i), each in (0, 1]
    s = em + em + u + w                                      # >= 1
    return (em + w) / s, (em + u) / s


def step_forward(x_t, state, p):
    """One step of the equations above. x_t (N, D) or (N,) ids; state = (h_prev,). Returns ((h,), cache)."""
    (h_prev,) = state
    H = h_prev.shape[1]
    g = project(x_t, p["weight_ih"]) + p["bias_ih"]          # (N, 3H) [k_f, k_i, h~]
    fn, in_ = _gates(g[:, :H], g[:, H:2 * H])                # (N, H) f', i'
    cand = g[:, 2 * H:]                                      # (N, H) h~
    h = fn * h_prev + in_ * cand                             # (N, H)
    return (h,), (x_t, g, h_prev, fn, in_, p)


def step_backward(dstate, cache):
    """Backward of one step. dstate = (dh,), the total grad w.r.t. h_t. Returns (dx_t (N, D) or None for ids,
    (dh_prev,), grads of this step).

    dh_prev = f' dh and dh~ = i' dh. f' = sigmoid(d) with dd/dk_f = 1 - f and dd/dk_i = -(1 - i), and i' = 1 - f', so
    with c = dh (h_prev - h~) f' i':  dk_f = c (1 - f),  dk_i = -c (1 - i)."""
    (dh,) = dstate
    x_t, g, h_prev, fn, in_, p = cache
    H = h_prev.shape[1]
    c = dh * (h_prev - g[:, 2 * H:]) * fn * in_              # (N, H)
    dg = np.concatenate([c * sigmoid(-g[:, :H]), -c * sigmoid(-g[:, H:2 * H]), dh * in_], axis=1)   # (N, 3H)
    dx_t, dw_ih = project_backward(dg, x_t, p["weight_ih"])  # (N, D) or None, (3H, D)
    return dx_t, (fn * dh,), {"weight_ih": dw_ih, "bias_ih": dg.sum(axis=0)}


def forward(x, state0, p):
    """Run the layer over all T steps. x (N, T, D) floats or (N, T) int ids; state0 = (h0,), h0 (N, H).

    Returns (out (N, T, H) = h_1..h_T, (h_T,), cache): one GEMM (or gather) for all N*T rows, time-major; a_t = f'
    and b_t = i' h~ for all T steps at once, with step_forward's ops; then the scan."""
    w = p["weight_ih"]
    H = w.shape[0] // GATES
    xw = input_projection(time_major(x), w, p["bias_ih"])    # (T, N, 3H) [k_f, k_i, h~], rows paired (t, n)
    a, in_ = _gates(xw[..., :H], xw[..., H:2 * H])           # (T, N, H) a_t = f', and i'
    b = in_ * xw[..., 2 * H:]                                # (T, N, H) b_t = i' h~
    h0 = np.asarray(state0[0], dtype=w.dtype)                # (N, H)
    hs = scan(a, b, h0)                                      # (T, N, H) h_1..h_T
    hT = hs[-1].copy() if len(hs) else h0.copy()
    return np.ascontiguousarray(hs.transpose(1, 0, 2)), (hT,), (x, h0, xw, a, in_, hs, p)


def backward(dout, dstateT, cache):
    """Backprop through time. dout (N, T, H); dstateT = (dh_T,), or None for zeros.

    Returns (dx (N, T, D) or None for ids, (dh0,), grads keyed like p): the reverse scan gives every step's dh_t,
    then step_backward's gate derivatives for all steps at once and one GEMM for dW_ih and dx."""
    x, h0, xw, a, in_, hs, p = cache
    H = h0.shape[1]
    dh, dh0 = scan_backward(a, dout, None if dstateT is None else dstateT[0])   # (T, N, H), (N, H)
    h_prev = np.concatenate([h0[None], hs[:-1]]) if len(hs) else hs             # (T, N, H) h_0..h_{T-1}
    c = dh * (h_prev - xw[..., 2 * H:]) * a * in_            # (T, N, H)
    dg = np.empty_like(xw)                                   # (T, N, 3H) grad of [k_f, k_i, h~]
    dg[..., :H] = c * sigmoid(-xw[..., :H])
    dg[..., H:2 * H] = -c * sigmoid(-xw[..., H:2 * H])
    dg[..., 2 * H:] = dh * in_
    dx, dw_ih, db_ih = input_projection_backward(dg, time_major(x), p["weight_ih"])
    return (None if dx is None else dx.transpose(1, 0, 2)), (dh0,), {"weight_ih": dw_ih, "bias_ih": db_ih}


def prepare_step(p, one_hot):
    """Weights laid out once for sample_step: one-hot input, the table W_ih^T + b_ih (D, 3H), one contiguous row
    per symbol; dense input, (W_ih^T, b_ih)."""
    return input_table(p["weight_ih"], p["bias_ih"], one_hot)


def sample_step(x, state, prep, out):
    """step_forward for sampling with prepare_step's weights: x (K,) ids or (K, D) floats, state = (h_prev,), the
    new h written into out = (h,)."""
    (h_prev,) = state
    H = h_prev.shape[1]
    g = apply_table(prep, x)    # (K, 3H) [k_f, k_i, h~]
    fn, in_ = _gates(g[:, :H], g[:, H:2 * H])
    h = np.multiply(fn, h_prev, out=out[0])
    h += in_ * g[:, 2 * H:]


# The same step in JavaScript, for the page `rnnlab export --format html` writes (rnnlab/export/page_js.py): it updates
# the layer's state arrays s in place from gx = W_ih x + b_ih (G*H) and gh = W_hh h + b_hh (null without W_hh).
# [f i h~]; h = f/(f+i) h + i/(f+i) h~
JS_STEP = r"""
function(gx, gh, s, H) {
    const h = s[0];
    for (let j = 0; j < H; j++) {
      const f = sig(gx[j]), i = sig(gx[H + j]), t = f + i;
      h[j] = (f / t) * h[j] + (i / t) * gx[2 * H + j];
    } }
"""
