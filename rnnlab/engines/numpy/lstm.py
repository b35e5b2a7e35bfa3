"""LSTM layer in NumPy with a hand-written backward pass (PyTorch nn.LSTM's equations and parameter layout).

    [i, f, g, o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh        four (N, H) blocks, in this order
    i, f, o = sigmoid(.)      g = tanh(.)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

Shapes: N streams, T steps, D input size, H hidden. Params p: "weight_ih" (4H, D), "weight_hh" (4H, H),
"bias_ih" (4H,), "bias_hh" (4H,), gate k in rows k*H:(k+1)*H. State is the tuple (h, c), each (N, H).

    >>> rng = np.random.default_rng(0)
    >>> p = {"weight_ih": rng.normal(size=(8, 3)), "weight_hh": rng.normal(size=(8, 2)),
    ...      "bias_ih": np.zeros(8), "bias_hh": np.zeros(8)}
    >>> out, (h, c), cache = forward(np.array([[0, 2, 1]]), (np.zeros((1, 2)), np.zeros((1, 2))), p)  # ids, D = 3
    >>> out.shape, bool(np.all(np.abs(out) < 1))
    ((1, 3, 2), True)
    >>> dx, (dh0, dc0), grads = backward(np.ones_like(out), None, cache)
    >>> dx is None, grads["weight_ih"].shape
    (True, (8, 3))
"""

import numpy as np

from rnnlab.engines.numpy.layers import input_projection, input_projection_backward, sigmoid, time_major

GATES = 4
STATE_SIZE = 2


def step_forward(xw, state, w_hh, b_hh):
    """One step. xw (N, 4H) = x_t @ w_ih.T + b_ih; state = (h_prev, c_prev). Returns ((h, c), cache)."""
    h_prev, c_prev = state
    H = h_prev.shape[1]
    gates = h_prev @ w_hh.T                                  # (N, 4H) pre-activations, then activations in place
    gates += xw
    gates += b_hh
    sigmoid(gates[:, :2 * H], out=gates[:, :2 * H])          # i, f
    np.tanh(gates[:, 2 * H:3 * H], out=gates[:, 2 * H:3 * H])  # g
    sigmoid(gates[:, 3 * H:], out=gates[:, 3 * H:])          # o
    i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
    c = f * c_prev                                           # (N, H)
    c += i * g
    tanh_c = np.tanh(c)                                      # (N, H)
    h = o * tanh_c                                           # (N, H)
    return (h, c), (gates, c_prev, tanh_c, w_hh)


def step_backward(dstate, cache):
    """Backward of one step. dstate = (dh, dc), the total grads w.r.t. h_t and c_t.

    Returns (dxw, dgh, (dh_prev, dc_prev)); dxw and dgh are the same (N, 4H) array, the grad of the pre-activations.
    """
    dh, dc = dstate
    gates, c_prev, tanh_c, w_hh = cache
    H = dh.shape[1]
    i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
    # Total grad of c_t: through h = o * tanh(c) it is dh * o * (1 - tanh(c)^2), plus dc carried from step t+1.
    dc_t = tanh_c * tanh_c                                   # (N, H)
    np.subtract(1.0, dc_t, out=dc_t)
    dc_t *= o
    dc_t *= dh
    dc_t += dc
    da = np.empty_like(gates)                                # (N, 4H) grads of i, f, g, o, then of pre-activations
    np.multiply(dc_t, g, out=da[:, :H])                      # di
    np.multiply(dc_t, c_prev, out=da[:, H:2 * H])            # df
    np.multiply(dc_t, i, out=da[:, 2 * H:3 * H])             # dg
    np.multiply(dh, tanh_c, out=da[:, 3 * H:])               # do
    # Through the activations, written with their stored outputs: sigmoid' = s * (1 - s), tanh' = 1 - g^2.
    deriv = np.subtract(1.0, gates)                          # (N, 4H) s * (1 - s) for i, f, o
    deriv *= gates
    np.multiply(g, g, out=deriv[:, 2 * H:3 * H])             # 1 - g * g for g
    np.subtract(1.0, deriv[:, 2 * H:3 * H], out=deriv[:, 2 * H:3 * H])
    da *= deriv
    dh_prev = da @ w_hh                                      # (N, H)
    dc_prev = dc_t * f                                       # (N, H)
    return da, da, (dh_prev, dc_prev)


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
