"""Vanilla (Elman) RNN layer in NumPy with a hand-written backward pass.

    h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)

The paper's W_xh is weight_ih, its W_hh is weight_hh and its b_h is bias_ih + bias_hh (two biases, as in PyTorch's
nn.RNN, so the same parameters load into either engine unchanged).

Shapes: N streams, T steps, D input size, H hidden. Params p: "weight_ih" (H, D), "weight_hh" (H, H),
"bias_ih" (H,), "bias_hh" (H,). State is the tuple (h,) with h (N, H).

    >>> rng = np.random.default_rng(0)
    >>> p = {"weight_ih": rng.normal(size=(4, 3)), "weight_hh": rng.normal(size=(4, 4)),
    ...      "bias_ih": np.zeros(4), "bias_hh": np.zeros(4)}
    >>> out, (h,), cache = forward(rng.normal(size=(2, 5, 3)), (np.zeros((2, 4)),), p)
    >>> out.shape, h.shape
    ((2, 5, 4), (2, 4))
    >>> dx, (dh0,), grads = backward(np.ones_like(out), None, cache)
    >>> dx.shape, grads["weight_hh"].shape
    ((2, 5, 3), (4, 4))
"""

import numpy as np

from rnnlab.engines.numpy.layers import sequence_backward, sequence_forward

GATES = 1
STATE_SIZE = 1


def step_forward(xw, state, w_hh, b_hh):
    """One step: h = tanh(xw + h_prev @ w_hh.T + b_hh), xw (N, H) = x_t @ w_ih.T + b_ih. Returns ((h,), cache)."""
    (h_prev,) = state
    a = h_prev @ w_hh.T                                      # (N, H)
    a += xw
    a += b_hh
    h = np.tanh(a, out=a)                                    # (N, H)
    return (h,), (h, w_hh)


def step_backward(dstate, cache):
    """Backward of one step. dstate = (dh,), the total grad w.r.t. h_t. Returns (dxw, dgh, (dh_prev,)).

    dxw and dgh are the same (N, H) array: the pre-activation adds xw and the hidden projection, so both get its grad.
    """
    (dh,) = dstate
    h, w_hh = cache
    # d tanh(a)/da = 1 - tanh(a)^2 = 1 - h*h. (The paper prints (1 - h) * h, which is the sigmoid's derivative
    # written in terms of its output; it is wrong for tanh.)
    da = h * h                                               # (N, H)
    np.subtract(1.0, da, out=da)
    da *= dh
    dh_prev = da @ w_hh                                      # (N, H)
    return da, da, (dh_prev,)


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
