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

from rnnlab.engines.numpy.layers import _time_major, input_projection, input_projection_backward, sigmoid

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


def _half_scale(G, H, full, dtype):
    """Per-row scale for the pre-activations: 0.5 on sigmoid gates, 1 on tanh gates (`full` = their slice).

    sigmoid(a) = 0.5 * tanh(a / 2) + 0.5, so one tanh over all gates of a step does every activation once the
    sigmoid rows are halved. Halving is exact in binary floating point, so this changes no bits of a / 2."""
    s = np.full(G * H, 0.5, dtype)
    s[full] = 1.0
    return s


def forward(x, state0, p):
    """Run the layer over all T steps. x (N, T, D) floats or (N, T) int ids; state0 = (h0, c0), each (N, H).

    Returns (out, stateT, cache): out (N, T, H) holds h_1..h_T and stateT = (h_T, c_T).

    step_forward, fused for speed: both biases join the input projection once, the sigmoid rows of W_hh and of the
    projection are halved once (see _half_scale) so each step needs a single tanh over all 4H pre-activations,
    and every per-step result is written in place into time-major buffers. tests/test_numpy_cells.py proves it
    equal to a naive per-gate loop and to PyTorch.
    """
    w_hh = p["weight_hh"]
    dtype = w_hh.dtype
    G4, H = w_hh.shape
    scale = _half_scale(4, H, slice(2 * H, 3 * H), dtype)     # (4H,)
    xw = input_projection(x, p["weight_ih"], p["bias_ih"])   # (N, T, 4H)
    xw += p["bias_hh"]
    xw *= scale
    w_hh_t = (w_hh * scale[:, None]).T                       # (H, 4H), sigmoid rows halved
    N, T, _ = xw.shape
    h0, c0 = (np.asarray(s, dtype=dtype) for s in state0)    # (N, H) each
    gates = np.empty((T, N, G4), dtype)                      # activations i, f, g, o per step
    cs, tcs, hs = (np.empty((T, N, H), dtype) for _ in range(3))
    h, c = h0, c0
    for t in range(T):
        a = gates[t]                                         # (N, 4H)
        np.matmul(h, w_hh_t, out=a)
        a += xw[:, t]
        np.tanh(a, out=a)                                    # tanh(a/2) for i, f, o; tanh(a) for g
        for sl in (slice(0, 2 * H), slice(3 * H, G4)):       # i, f, o = 0.5 * tanh(a/2) + 0.5 = sigmoid(a)
            a[:, sl] *= 0.5
            a[:, sl] += 0.5
        i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        c = np.multiply(f, c, out=cs[t])                     # c_t = f * c_{t-1} + i * g
        c += i * g
        np.tanh(c, out=tcs[t])
        h = np.multiply(o, tcs[t], out=hs[t])                # h_t = o * tanh(c_t)
    stateT = (h.copy(), c.copy()) if T else (h0.copy(), c0.copy())
    return np.ascontiguousarray(hs.transpose(1, 0, 2)), stateT, (x, h0, c0, gates, cs, tcs, hs, p)


def backward(dout, dstateT, cache):
    """Backprop through time. dout (N, T, H); dstateT = (dh_T, dc_T), or None for zeros.

    Returns (dx, (dh0, dc0), grads): dx (N, T, D), or None for ids; grads has the keys and shapes of p.

    step_backward, fused: every factor that does not depend on the incoming gradient is computed for all T steps
    at once before the loop (sigmoid' = s(1 - s), tanh' = 1 - y^2, times the other factor of each product):
        D_i = g * i(1-i)    D_f = c_{t-1} * f(1-f)    D_g = i * (1-g^2)    D_o = tanh(c_t) * o(1-o)
        A = o * (1 - tanh(c_t)^2)
    so that a step is: dc = dh * A + dc_next; da_{i,f,g} = dc * D_{i,f,g}; da_o = dh * D_o; then one GEMM.
    """
    x, h0, c0, gates, cs, tcs, hs, p = cache
    w_hh = p["weight_hh"]
    dtype = w_hh.dtype
    T, N, H = hs.shape
    dout = np.asarray(dout, dtype=dtype)
    i, f, g, o = gates[..., :H], gates[..., H:2 * H], gates[..., 2 * H:3 * H], gates[..., 3 * H:]
    c_prev = np.empty_like(cs)                               # (T, N, H): c_0..c_{T-1}
    h_prev = np.empty_like(hs)                               # (T, N, H): h_0..h_{T-1}
    if T:
        c_prev[0], c_prev[1:] = c0, cs[:-1]
        h_prev[0], h_prev[1:] = h0, hs[:-1]
    D = np.subtract(1.0, gates)                              # (T, N, 4H): 1 - s, then the factors above
    D *= gates                                               # s(1 - s) for i, f, o
    D[..., :H] *= g
    D[..., H:2 * H] *= c_prev
    np.multiply(g, g, out=D[..., 2 * H:3 * H])
    np.subtract(1.0, D[..., 2 * H:3 * H], out=D[..., 2 * H:3 * H])
    D[..., 2 * H:3 * H] *= i
    D[..., 3 * H:] *= tcs
    A = np.multiply(tcs, tcs)                                # (T, N, H)
    np.subtract(1.0, A, out=A)
    A *= o
    if dstateT is None:
        dh_next, dc_next = np.zeros((N, H), dtype), np.zeros((N, H), dtype)
    else:
        dh_next, dc_next = (np.asarray(d, dtype=dtype) for d in dstateT)
    for t in range(T - 1, -1, -1):
        dh = dout[:, t] + dh_next                            # (N, H)
        dc = dh * A[t]                                       # (N, H) total grad of c_t
        dc += dc_next
        Dt = D[t].reshape(N, 4, H)                           # becomes dL/da_t in place
        np.multiply(Dt[:, :3], dc[:, None, :], out=Dt[:, :3])  # i, f, g
        np.multiply(Dt[:, 3], dh, out=Dt[:, 3])              # o
        dh_next = D[t] @ w_hh                                # (N, H) into h_{t-1}
        dc_next = np.multiply(dc, f[t])                      # (N, H) into c_{t-1}
    dx, dw_ih, db_ih = input_projection_backward(D, _time_major(x), p["weight_ih"])   # rows paired (t, n)
    dx = None if dx is None else dx.transpose(1, 0, 2)       # (N, T, D) view
    grads = {
        "weight_ih": dw_ih,                                  # (4H, D)
        "weight_hh": D.reshape(T * N, 4 * H).T @ h_prev.reshape(T * N, H),   # (4H, H)
        "bias_ih": db_ih,                                    # (4H,)
        "bias_hh": db_ih.copy(),                             # (4H,)
    }
    return dx, (dh_next, dc_next), grads
