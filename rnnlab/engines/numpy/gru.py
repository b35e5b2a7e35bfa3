"""GRU layer in NumPy with a hand-written backward pass (PyTorch nn.GRU's equations and parameter layout).

    [xr, xz, xn] = W_ih x_t + b_ih         [hr, hz, hn] = W_hh h_{t-1} + b_hh        three (N, H) blocks each
    r = sigmoid(xr + hr)      z = sigmoid(xz + hz)      n = tanh(xn + r * hn)
    h_t = (1 - z) * n + z * h_{t-1}

r multiplies hn *including* b_hn, so b_hh cannot be folded into the input projection as for rnn and lstm; that is
why step_backward returns a dgh (the grad of [hr, hz, hn]) that differs from dxw in its n block.

Shapes: N streams, T steps, D input size, H hidden. Params p: "weight_ih" (3H, D), "weight_hh" (3H, H),
"bias_ih" (3H,), "bias_hh" (3H,), gate k in rows k*H:(k+1)*H. State is the tuple (h,), h (N, H).

    >>> rng = np.random.default_rng(0)
    >>> p = {"weight_ih": rng.normal(size=(6, 3)), "weight_hh": rng.normal(size=(6, 2)),
    ...      "bias_ih": np.zeros(6), "bias_hh": np.zeros(6)}
    >>> out, (h,), cache = forward(rng.normal(size=(4, 5, 3)), (np.zeros((4, 2)),), p)
    >>> out.shape, bool(np.array_equal(out[:, -1], h))
    ((4, 5, 2), True)
    >>> dx, (dh0,), grads = backward(np.ones_like(out), None, cache)
    >>> dx.shape, grads["bias_hh"].shape
    ((4, 5, 3), (6,))
"""

import numpy as np

from rnnlab.engines.numpy.layers import input_projection, input_projection_backward, sigmoid, time_major

GATES = 3
STATE_SIZE = 1


def step_forward(xw, state, w_hh, b_hh):
    """One step. xw (N, 3H) = x_t @ w_ih.T + b_ih; state = (h_prev,). Returns ((h,), cache)."""
    (h_prev,) = state
    H = h_prev.shape[1]
    gh = h_prev @ w_hh.T                                     # (N, 3H) hidden projection [hr, hz, hn]
    gh += b_hh
    rz = xw[:, :2 * H] + gh[:, :2 * H]                       # (N, 2H)
    sigmoid(rz, out=rz)
    r, z = rz[:, :H], rz[:, H:]
    n = r * gh[:, 2 * H:]                                    # (N, H)
    n += xw[:, 2 * H:]
    np.tanh(n, out=n)
    h = h_prev - n                                           # (N, H) h = n + z * (h_prev - n)
    h *= z
    h += n
    return (h,), (rz, n, gh, h_prev, w_hh)


def step_backward(dstate, cache):
    """Backward of one step. dstate = (dh,), the total grad w.r.t. h_t.

    Returns (dxw, dgh, (dh_prev,)): dxw (N, 3H) grad of xw, dgh (N, 3H) grad of the hidden projection.
    """
    (dh,) = dstate
    rz, n, gh, h_prev, w_hh = cache
    H = dh.shape[1]
    r, z, hn = rz[:, :H], rz[:, H:], gh[:, 2 * H:]
    dxw = np.empty_like(gh)                                  # (N, 3H)
    dr, dz, dn = dxw[:, :H], dxw[:, H:2 * H], dxw[:, 2 * H:]
    np.subtract(h_prev, n, out=dz)                           # h = n + z * (h_prev - n)
    dz *= dh
    np.subtract(1.0, z, out=dn)
    dn *= dh
    dn *= 1.0 - n * n                                        # now the grad of n's pre-activation xn + r * hn
    np.multiply(dn, hn, out=dr)
    # Through the sigmoids, written with their outputs: s' = s * (1 - s).
    dxw[:, :2 * H] *= rz * (1.0 - rz)
    dgh = dxw.copy()                                         # (N, 3H) same for hr, hz;
    dgh[:, 2 * H:] *= r                                      # hn enters as r * hn
    dh_prev = dgh @ w_hh                                     # (N, H)
    dh_prev += dh * z
    return dxw, dgh, (dh_prev,)


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
