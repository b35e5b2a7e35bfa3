"""The character model as a stack of pure functions: ids -> [embedding] -> L recurrent layers -> decoder -> softmax.

Parameter names and shapes are those of a PyTorch module with submodules `encoder` (nn.Embedding, only when
embed_dim > 0), `rnn` (nn.RNN/LSTM/GRU, batch_first) and `decoder` (nn.Linear), so a state_dict moves between the
engines unchanged. The paper's symbols map as:

    W_xh = rnn.weight_ih_l0 (H, V)   W_hh = rnn.weight_hh_l0 (H, H)   b_h = rnn.bias_ih_l0 + rnn.bias_hh_l0
    W_hy = decoder.weight (V, H)     b_y = decoder.bias (V,)

The loss is the paper's: cross-entropy summed over the T time steps (BPTT's gradient is the sum over time), and
averaged over the N streams so that the batch size does not change the step size. Logged losses are per character.
State is a tuple of (L, N, H) arrays: (h,) for rnn and gru, (h, c) for lstm.
"""
from __future__ import annotations

import numpy as np

from . import gru, lstm, rnn

CELLS = {"rnn": rnn, "lstm": lstm, "gru": gru}


def layer_params(params: dict, k: int) -> dict:
    """The four arrays of layer k, under the names the cell functions use."""
    return {name: params[f"rnn.{name}_l{k}"] for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}


def param_shapes(cfg) -> dict:
    """Name -> shape of every parameter, in PyTorch's order and naming."""
    V, H, L = cfg.vocab_size, cfg.hidden_size, cfg.num_layers
    G = CELLS[cfg.cell].GATES
    shapes = {"encoder.weight": (V, cfg.embed_dim)} if cfg.embed_dim else {}
    for k in range(L):
        shapes[f"rnn.weight_ih_l{k}"] = (G * H, cfg.input_size if k == 0 else H)
        shapes[f"rnn.weight_hh_l{k}"] = (G * H, H)
        shapes[f"rnn.bias_ih_l{k}"] = (G * H,)
        shapes[f"rnn.bias_hh_l{k}"] = (G * H,)
    shapes["decoder.weight"] = (V, H)
    shapes["decoder.bias"] = (V,)
    return shapes


def init_params(cfg, seed: int, dtype) -> dict:
    """PyTorch's default initialisation, drawn in float64 from one seeded generator then cast, so float32 and
    float64 models start from the same numbers: the embedding ~ N(0, 1); every other weight and bias
    ~ U(-1/sqrt(H), 1/sqrt(H)) (nn.RNN's rule, and nn.Linear's for a fan-in of H)."""
    rng = np.random.default_rng(seed)
    k = 1.0 / np.sqrt(cfg.hidden_size)
    params = {}
    for name, shape in param_shapes(cfg).items():
        p = rng.standard_normal(shape) if name == "encoder.weight" else rng.uniform(-k, k, shape)
        params[name] = np.ascontiguousarray(p, dtype=dtype)
    return params


def zero_state(cfg, n: int, dtype) -> tuple:
    return tuple(np.zeros((cfg.num_layers, n, cfg.hidden_size), dtype) for _ in range(CELLS[cfg.cell].STATE_SIZE))


def forward(params: dict, cfg, ids: np.ndarray, state: tuple, rng=None):
    """Logits for every position. ids (N, T) ints; state tuple of (L, N, H). With `rng` (a np.random.Generator)
    dropout is on (training); without it the model is deterministic (evaluation, sampling).
    Returns logits (N, T, V), the new state, and the cache for `backward`."""
    cell = CELLS[cfg.cell]
    x = params["encoder.weight"][ids] if cfg.embed_dim else ids        # (N, T, D) or ids meaning one-hot (N, T)
    layer_caches, new_state = [], []
    for k in range(cfg.num_layers):
        out, sT, c = cell.forward(x, tuple(s[k] for s in state), layer_params(params, k))   # (N, T, H)
        mask = None
        if rng is not None and cfg.dropout > 0:
            keep = 1.0 - cfg.dropout
            mask = (rng.random(out.shape) < keep).astype(out.dtype) / np.asarray(keep, out.dtype)
            out = out * mask
        layer_caches.append((c, mask))
        new_state.append(sT)
        x = out
    logits = x @ params["decoder.weight"].T                              # (N, T, V)
    logits += params["decoder.bias"]
    stacked = tuple(np.stack([s[i] for s in new_state]) for i in range(cell.STATE_SIZE))   # each (L, N, H)
    return logits, stacked, (ids, layer_caches, x)


def backward(dlogits: np.ndarray, params: dict, cfg, cache) -> dict:
    """Gradients of every parameter, given dloss/dlogits (N, T, V). No gradient flows into the initial state
    from here: with truncated BPTT the carried state is a constant."""
    cell = CELLS[cfg.cell]
    ids, layer_caches, top = cache
    N, T, V = dlogits.shape
    d2 = dlogits.reshape(N * T, V)
    grads = {"decoder.weight": d2.T @ top.reshape(N * T, -1),            # (V, H)
             "decoder.bias": d2.sum(axis=0)}                               # (V,)
    dx = dlogits @ params["decoder.weight"]                               # (N, T, H)
    for k in reversed(range(cfg.num_layers)):
        c, mask = layer_caches[k]
        if mask is not None:
            dx = dx * mask
        dx, _, g = cell.backward(dx, None, c)
        for name, arr in g.items():
            grads[f"rnn.{name}_l{k}"] = arr
    if cfg.embed_dim:
        demb = np.zeros_like(params["encoder.weight"])
        np.add.at(demb, ids.ravel(), dx.reshape(N * T, -1))               # scatter-add rows (V, D)
        grads["encoder.weight"] = demb
    return grads


def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray, scale: float):
    """Summed cross-entropy -sum log softmax(logits)[y] and its gradient times `scale`.

    logits (N, T, V) is overwritten with the gradient (softmax - onehot(y)) * scale to save a copy.
    Returns (loss_sum as a Python float, dlogits)."""
    N, T, V = logits.shape
    flat = logits.reshape(N * T, V)
    rows = np.arange(N * T)
    yy = y.reshape(N * T)
    flat -= flat.max(axis=1, keepdims=True)                              # stable: max logit is 0
    picked = flat[rows, yy].astype(np.float64)
    np.exp(flat, out=flat)
    sums = flat.sum(axis=1, keepdims=True)
    loss = float(np.log(sums.astype(np.float64)).sum() - picked.sum())
    flat /= sums                                                         # softmax
    flat[rows, yy] -= 1.0
    if scale != 1.0:
        flat *= scale
    return loss, logits


def loss_and_grads(params: dict, cfg, ids, targets, state, rng=None):
    """Forward, loss and backward for one batch. Returns (loss summed over N*T chars, grads, new state)."""
    logits, new_state, cache = forward(params, cfg, ids, state, rng)
    loss, dlogits = softmax_cross_entropy(logits, targets, 1.0 / ids.shape[0])
    return loss, backward(dlogits, params, cfg, cache), new_state


def step(params: dict, cfg, ids: np.ndarray, state: tuple):
    """One time step for K sequences at once (sampling): ids (K,) -> logits (K, V), new state.

    The same maths as forward() with T = 1, through each cell's readable step_forward: forward's fused sequence
    set-up (a transposed copy of W_ih, W_hh rescaled for the one-tanh trick, T-sized buffers) is paid once per
    call and amortised over T steps, but sampling calls with T = 1 for every character, where that set-up cost
    several times the step itself. Here a step is one gather and one GEMM per weight matrix, nothing copied.
    Engine.step uses it for rnn and gru; an LSTM samples through the faster lstm_step below, which this checks."""
    cell = CELLS[cfg.cell]
    x = params["encoder.weight"][ids] if cfg.embed_dim else ids        # (K, D), or (K,) ids: one-hot
    new_state = []
    for k in range(cfg.num_layers):
        s, _ = cell.step_forward(x, tuple(st[k] for st in state), layer_params(params, k))
        new_state.append(s)
        x = s[0]                                                          # (K, H)
    logits = x @ params["decoder.weight"].T                              # (K, V)
    logits += params["decoder.bias"]
    return logits, tuple(np.stack([s[i] for s in new_state]) for i in range(cell.STATE_SIZE))   # each (L, K, H)


def prepare_lstm_step(params: dict, cfg):
    """The LSTM's weights laid out once for lstm_step (see lstm.prepare_step), plus the decoder transposed."""
    layers = [lstm.prepare_step(layer_params(params, k), one_hot=(k == 0 and not cfg.embed_dim))
              for k in range(cfg.num_layers)]
    return layers, np.ascontiguousarray(params["decoder.weight"].T), params["decoder.bias"]   # (H, V), (V,)


def lstm_step(params: dict, prepared, cfg, ids: np.ndarray, state: tuple):
    """step() for an LSTM with prepare_lstm_step's weights: one GEMV per layer instead of two plus a transposed
    gather, no per-layer dicts or np.stack; at H=512 L=2 float32 with one character, sampling went from ~3,400 to
    ~4,400-5,000 chars/s, of which ~120 us per character are the three GEMVs streaming ~12 MB of weights. Same
    maths as forward() up to rounding (summation order, lstm._activate): tests/test_numpy_step.py compares them."""
    layers, dec_t, dec_b = prepared
    h0, c0 = state                                                      # (L, K, H) each
    h1, c1 = np.empty_like(h0), np.empty_like(c0)
    x = params["encoder.weight"][ids] if cfg.embed_dim else ids         # (K, D), or (K,) ids: one-hot
    with np.errstate(over="ignore"):                                    # exp(a) = inf is fine, see lstm._activate
        for k, prep in enumerate(layers):
            lstm.sample_step(x, (h0[k], c0[k]), prep, (h1[k], c1[k]))
            x = h1[k]                                                   # (K, H)
    logits = x @ dec_t                                                  # (K, V)
    logits += dec_b
    return logits, (h1, c1)
