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

from rnnlab.engines.numpy.layers import sequence_backward, sequence_forward, sigmoid

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


def forward(x, state0, p):
    """Run the layer over all T steps. x (N, T, D) floats or (N, T) int ids; state0 = (h0, c0), each (N, H).

    Returns (out, stateT, cache): out (N, T, H) holds h_1..h_T and stateT = (h_T, c_T). The loop is in
    layers.sequence_forward; the cache refers to `out`, so treat it as read-only (stateT is a copy).
    """
    return sequence_forward(step_forward, x, state0, p)


def backward(dout, dstateT, cache):
    """Backprop through time. dout (N, T, H); dstateT = (dh_T, dc_T), or None for zeros.

    Returns (dx, (dh0, dc0), grads): dx (N, T, D), or None for ids; grads has the keys and shapes of p.
    """
    return sequence_backward(step_backward, dout, dstateT, cache)
