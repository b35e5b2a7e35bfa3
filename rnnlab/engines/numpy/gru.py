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

from rnnlab.engines.numpy.layers import sequence_backward, sequence_forward, sigmoid

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

    Returns (out, stateT, cache): out (N, T, H) holds h_1..h_T and stateT = (h_T,). The loop is in
    layers.sequence_forward; the cache refers to `out`, so treat it as read-only (stateT is a copy).
    """
    return sequence_forward(step_forward, x, state0, p)


def backward(dout, dstateT, cache):
    """Backprop through time. dout (N, T, H); dstateT = (dh_T,), or None for zeros.

    Returns (dx, (dh0,), grads): dx (N, T, D), or None for ids; grads has the keys and shapes of p.
    """
    return sequence_backward(step_backward, dout, dstateT, cache)
