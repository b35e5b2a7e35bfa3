"""LSTM layer in NumPy with a hand-written backward pass (PyTorch nn.LSTM's equations and parameter layout).

    [i, f, g, o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh        four (N, H) blocks, in this order
    i, f, o = sigmoid(.)      g = tanh(.)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

Shapes: N streams, T steps, D input size, H hidden. Params p: "weight_ih" (4H, D), "weight_hh" (4H, H),
"bias_ih" (4H,), "bias_hh" (4H,), gate k in rows k*H:(k+1)*H. State is the tuple (h, c), each (N, H). x_t is
(N, D) floats, or (N,) int ids meaning one-hot vectors of size D (then W_ih x_t is a column gather, see sequence.py).

The file reads in three parts. First the step pair, the equations above as written (sequence.sequence_forward runs
it over T steps, with a padding mask if asked):
    step_forward(x_t, state, p) -> (state, cache)
    step_backward(dstate, cache) -> (dx_t or None for ids, dstate_prev, grads of this step keyed like p)
Then prepare_step/sample_step, one step for sampling with the weights laid out once; then forward/backward, the
same maths fused over all T steps for speed (what training runs). tests/test_numpy_cells.py proves them equal.

    >>> rng = np.random.default_rng(0)
    >>> p = {"weight_ih": rng.normal(size=(8, 3)), "weight_hh": rng.normal(size=(8, 2)),
    ...      "bias_ih": np.zeros(8), "bias_hh": np.zeros(8)}
    >>> (h, c), cache = step_forward(rng.normal(size=(1, 3)), (np.zeros((1, 2)), np.zeros((1, 2))), p)
    >>> dx, (dh_prev, dc_prev), grads = step_backward((np.ones_like(h), np.zeros_like(c)), cache)
    >>> dx.shape, grads["weight_hh"].shape
    ((1, 3), (8, 2))
    >>> out, (h, c), cache = forward(np.array([[0, 2, 1]]), (np.zeros((1, 2)), np.zeros((1, 2))), p)  # ids, D = 3
    >>> out.shape, bool(np.all(np.abs(out) < 1))
    ((1, 3, 2), True)
    >>> dx, (dh0, dc0), grads = backward(np.ones_like(out), None, cache)
    >>> dx is None, grads["weight_ih"].shape
    (True, (8, 3))
"""

import numpy as np

from rnnlab.cells import CELLS
from rnnlab.engines.numpy.layers import sigmoid
from rnnlab.engines.numpy.sequence import (input_projection, input_projection_backward, project,
                                           project_backward, time_major)

GATES, STATE_SIZE = CELLS["lstm"].gates, len(CELLS["lstm"].state)    # 4, 2: from the table of cells


def step_forward(x_t, state, p):
    """One step of the equations above. x_t (N, D) or (N,) ids; state = (h_prev, c_prev). Returns ((h, c), cache)."""
    h_prev, c_prev = state
    H = h_prev.shape[1]
    a = project(x_t, p["weight_ih"]) + p["bias_ih"] + h_prev @ p["weight_hh"].T + p["bias_hh"]   # (N, 4H)
    i = sigmoid(a[:, :H])                                    # (N, H) input gate
    f = sigmoid(a[:, H:2 * H])                               # (N, H) forget gate
    g = np.tanh(a[:, 2 * H:3 * H])                           # (N, H) candidate
    o = sigmoid(a[:, 3 * H:])                                # (N, H) output gate
    c = f * c_prev + i * g                                   # (N, H)
    tanh_c = np.tanh(c)                                      # (N, H)
    h = o * tanh_c                                           # (N, H)
    return (h, c), (x_t, h_prev, c_prev, i, f, g, o, tanh_c, p)


def step_backward(dstate, cache):
    """Backward of one step. dstate = (dh, dc), the total grads w.r.t. h_t and c_t (from the output and step t+1).

    Returns (dx_t (N, D) or None for ids, (dh_prev, dc_prev), grads): grads holds this step's share of every
    parameter's gradient. The activations' derivatives are written with their outputs: sigmoid' = s * (1 - s),
    tanh' = 1 - y^2. Both biases and both products enter the pre-activations a alike, so all four get da.
    """
    dh, dc = dstate
    x_t, h_prev, c_prev, i, f, g, o, tanh_c, p = cache
    dc = dc + dh * o * (1.0 - tanh_c * tanh_c)               # (N, H) total grad of c_t: through h_t, plus carried
    da = np.concatenate([dc * g * i * (1.0 - i),             # (N, 4H) grads of the pre-activations of i,
                         dc * c_prev * f * (1.0 - f),        # f,
                         dc * i * (1.0 - g * g),             # g,
                         dh * tanh_c * o * (1.0 - o)], axis=1)   # and o
    dx_t, dw_ih = project_backward(da, x_t, p["weight_ih"])  # (N, D) or None, (4H, D)
    db = da.sum(axis=0)                                      # (4H,)
    grads = {"weight_ih": dw_ih, "weight_hh": da.T @ h_prev, "bias_ih": db, "bias_hh": db.copy()}
    return dx_t, (da @ p["weight_hh"], dc * f), grads


def _act_scale(G, H, full, dtype):
    """Per-row scale k for the pre-activations: 1 on sigmoid gates, 2 on tanh gates (`full` = their slice).

    With a pre-scaled by k, _activate's single formula 1 - k / (exp(a) + 1) is sigmoid(a) on k = 1 rows and
    1 - 2 / (exp(2a) + 1) = tanh(a) on k = 2 rows: one exp and three cheap passes over all gates of a step
    instead of np.tanh (~3 ns per float32 element here, measured 30% slower than this formula on (32, 1024)) and
    slice-wise rescaling. Doubling is exact in binary floating point, so k changes no bits of the inputs."""
    k = np.ones(G * H, dtype)
    k[full] = 2.0
    return k


def _activate(a, k):
    """In place: a (N, G*H), pre-scaled by k (G*H,) -> 1 - k / (exp(a) + 1), i.e. sigmoid or tanh per row.
    exp overflowing to inf gives exactly 1 (the limit), so the caller silences NumPy's overflow warning."""
    np.exp(a, out=a)
    a += 1.0
    np.divide(k, a, out=a)
    np.subtract(1.0, a, out=a)


def prepare_step(p, one_hot):
    """Weights rearranged once for sample_step: (table, w, scale), all in the params' dtype.

    With forward()'s activation scaling folded in (tanh rows doubled, see _act_scale) and both biases summed:
        one-hot input (layer 0 without embedding): table = (W_ih^T + b) * s  (D, 4H), one row per symbol,
                                                   w = W_hh * s  (4H, H)
        dense input:                               table = b * s  (4H,),  w = [W_ih | W_hh] * s  (4H, D + H)
    so a step is a gather (or nothing) plus ONE GEMV per layer, x @ w.T (measured ~30% faster at H=512 than the
    same product over a transposed copy of w).
    scale (4H,) is that k, for _activate.
    """
    w_ih, w_hh = p["weight_ih"], p["weight_hh"]
    dtype = w_hh.dtype
    G4, H = w_hh.shape
    scale = _act_scale(4, H, slice(2 * H, 3 * H), dtype)    # (4H,)
    b = (p["bias_ih"] + p["bias_hh"]) * scale                 # (4H,)
    if one_hot:
        return np.ascontiguousarray(w_ih.T * scale + b), w_hh * scale[:, None], scale
    return b, np.concatenate([w_ih, w_hh], axis=1) * scale[:, None], scale    # (4H, D + H)


def sample_step(x, state, prep, out):
    """One step for sampling with prepare_step's weights: step_forward's maths, a few NumPy calls in all.

    x (K,) int ids (one-hot layer) or (K, D) floats; state = (h_prev, c_prev) (K, H); the new (h, c) are written
    into out = (h, c), fresh (K, H) arrays owned by the caller, who also silences exp's overflow warning (see
    _activate). tests/test_numpy_step.py holds it to model.forward."""
    table, w, scale = prep
    h_prev, c_prev = state
    h, c = out
    H = h_prev.shape[1]
    if x.ndim == 1:
        a = h_prev @ w.T                                     # (K, 4H)
        a += table[x]
    else:
        a = np.concatenate([x, h_prev], axis=1) @ w.T        # (K, 4H) one GEMV for W_ih and W_hh
        a += table
    _activate(a, scale)                                      # i, f, o = sigmoid, g = tanh
    np.multiply(a[:, H:2 * H], c_prev, out=c)                # c_t = f * c_{t-1} + i * g
    c += a[:, :H] * a[:, 2 * H:3 * H]
    np.multiply(a[:, 3 * H:], np.tanh(c), out=h)             # h_t = o * tanh(c_t)


def forward(x, state0, p):
    """Run the layer over all T steps. x (N, T, D) floats or (N, T) int ids; state0 = (h0, c0), each (N, H).

    Returns (out, stateT, cache): out (N, T, H) holds h_1..h_T and stateT = (h_T, c_T).

    step_forward, fused for speed: both biases and the activation scale k (see _act_scale) join the input
    projection once, which is built time-major and then overwritten step by step with the activations (no second
    (T, N, 4H) buffer); W_hh's tanh rows are doubled once, so each step is one GEMM and one _activate over all
    4H pre-activations. tests/test_numpy_cells.py proves it equal to a naive per-gate loop and to PyTorch.
    """
    w_hh = p["weight_hh"]
    dtype = w_hh.dtype
    G4, H = w_hh.shape
    k = _act_scale(4, H, slice(2 * H, 3 * H), dtype)           # (4H,)
    gates = input_projection(time_major(x), p["weight_ih"] * k[:, None], (p["bias_ih"] + p["bias_hh"]) * k)
    w_hh_t = (w_hh * k[:, None]).T                           # (H, 4H), tanh rows doubled
    T, N, _ = gates.shape                                    # (T, N, 4H) pre-activations, then activations
    h0, c0 = (np.asarray(s, dtype=dtype) for s in state0)    # (N, H) each
    cs, tcs, hs = (np.empty((T, N, H), dtype) for _ in range(3))
    h, c = h0, c0
    with np.errstate(over="ignore"):
        for t in range(T):
            a = gates[t]                                     # (N, 4H)
            a += h @ w_hh_t
            _activate(a, k)                                  # i, f, o = sigmoid, g = tanh
            i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
            c = np.multiply(f, c, out=cs[t])                 # c_t = f * c_{t-1} + i * g
            c += i * g
            np.tanh(c, out=tcs[t])
            h = np.multiply(o, tcs[t], out=hs[t])            # h_t = o * tanh(c_t)
    stateT = (h.copy(), c.copy()) if T else (h0.copy(), c0.copy())
    return np.ascontiguousarray(hs.transpose(1, 0, 2)), stateT, (x, h0, c0, gates, cs, tcs, hs, p)


def backward(dout, dstateT, cache):
    """Backprop through time. dout (N, T, H); dstateT = (dh_T, dc_T), or None for zeros.

    Returns (dx, (dh0, dc0), grads): dx (N, T, D), or None for ids; grads has the keys and shapes of p.

    step_backward, fused: with the activations' derivatives written through their stored outputs
    (sigmoid' = s(1 - s), tanh' = 1 - y^2), a step is
        dc = dh * o * (1 - tanh(c_t)^2) + dc_next
        da_i = dc * g * i(1-i)   da_f = dc * c_{t-1} * f(1-f)   da_g = dc * i * (1-g^2)   da_o = dh * tanh(c_t) * o(1-o)
    then one GEMM for dh_{t-1}. Everything is computed per step on (N, 4H) slices that stay in cache (measured
    faster than precomputing the factors for all T steps in passes over (T, N, 4H) arrays); the weight gradients
    are one GEMM each over all steps afterwards.
    """
    x, h0, c0, gates, cs, tcs, hs, p = cache
    w_hh = p["weight_hh"]
    dtype = w_hh.dtype
    T, N, H = hs.shape
    dout = np.asarray(dout, dtype=dtype)
    D = np.empty_like(gates)                                 # (T, N, 4H) dL/da, the pre-activation grads
    if dstateT is None:
        dh_next, dc_next = np.zeros((N, H), dtype), np.zeros((N, H), dtype)
    else:
        dh_next, dc_next = (np.asarray(d, dtype=dtype) for d in dstateT)
    for t in range(T - 1, -1, -1):
        a, tc, Dt = gates[t], tcs[t], D[t]                   # (N, 4H), (N, H), (N, 4H)
        i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        dh = dout[:, t] + dh_next                            # (N, H)
        dc = np.multiply(tc, tc)                             # (N, H) total grad of c_t
        np.subtract(1.0, dc, out=dc)
        dc *= o
        dc *= dh
        dc += dc_next
        np.subtract(1.0, a, out=Dt)                          # s(1 - s) for i, f, o
        Dt *= a
        np.multiply(g, g, out=Dt[:, 2 * H:3 * H])            # 1 - g^2 for g
        np.subtract(1.0, Dt[:, 2 * H:3 * H], out=Dt[:, 2 * H:3 * H])
        Dt[:, :H] *= g
        Dt[:, H:2 * H] *= cs[t - 1] if t else c0
        Dt[:, 2 * H:3 * H] *= i
        Dt[:, 3 * H:] *= tc
        D4 = Dt.reshape(N, 4, H)
        np.multiply(D4[:, :3], dc[:, None, :], out=D4[:, :3])   # i, f, g: times dc
        D4[:, 3] *= dh                                       # o: times dh
        dh_next = Dt @ w_hh                                  # (N, H) into h_{t-1}
        dc_next = np.multiply(dc, f)                         # (N, H) into c_{t-1}
    dx, dw_ih, db_ih = input_projection_backward(D, time_major(x), p["weight_ih"])   # rows paired (t, n)
    dx = None if dx is None else dx.transpose(1, 0, 2)       # (N, T, D) view
    dw_hh = D[0].T @ np.asarray(h0, dtype=dtype) if T else np.zeros_like(w_hh)   # (4H, H): step 0 pairs with h_0,
    if T > 1:                                                                   # step t with h_{t-1}
        dw_hh += D[1:].reshape((T - 1) * N, 4 * H).T @ hs[:-1].reshape((T - 1) * N, H)
    grads = {
        "weight_ih": dw_ih,                                  # (4H, D)
        "weight_hh": dw_hh,                                  # (4H, H)
        "bias_ih": db_ih,                                    # (4H,)
        "bias_hh": db_ih.copy(),                             # (4H,)
    }
    return dx, (dh_next, dc_next), grads


# The same step in JavaScript, for the page `rnnlab export --format html` writes (rnnlab/export/page_js.py): it updates
# the layer's state arrays s in place from gx = W_ih x + b_ih (G*H) and gh = W_hh h + b_hh (null without W_hh).
# [i f g o]; c = f c + i g; h = o tanh(c)
JS_STEP = r"""
function(gx, gh, s, H) {
    const h = s[0], c = s[1];
    for (let j = 0; j < H; j++) {
      const i = sig(gx[j] + gh[j]), f = sig(gx[H + j] + gh[H + j]);
      const g = Math.tanh(gx[2 * H + j] + gh[2 * H + j]), o = sig(gx[3 * H + j] + gh[3 * H + j]);
      c[j] = f * c[j] + i * g;
      h[j] = o * Math.tanh(c[j]);
    } }
"""
