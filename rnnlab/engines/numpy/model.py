"""The one model of rnnlab as pure functions: every network the commands train, one stack of recurrent layers.

    stack        ids (N, T) -> [embedding (V, D)] or one-hot -> L recurrent layers (dropout after each) -> (N, T, H)
                 from an initial state; with a mask (N, T) the state passes through padded steps unchanged
    lm           stack -> decoder (V, H) -> logits (N, T, V); the state is carried between batches (truncated BPTT)
    classify     stack over padded texts; the top layer's true last h -> dropout -> classifier (C, H) -> (N, C)
    conditional  lm started from a learned state per label: row cond.weight[label] (S*L*H,) laid out [state][layer]
    seq2seq      enc (a stack) reads the padded source; its true last state starts dec (an lm) on BOS + target

Parameter names and shapes are a PyTorch module's (encoder = nn.Embedding, rnn = nn.RNN/LSTM/GRU batch_first,
decoder/classifier = nn.Linear, cond = nn.Embedding, seq2seq's halves under enc./dec.), so a state_dict moves between
the engines unchanged. The paper's symbols map as:

    W_xh = rnn.weight_ih_l0 (H, V)   W_hh = rnn.weight_hh_l0 (H, H)   b_h = rnn.bias_ih_l0 + rnn.bias_hh_l0
    W_hy = decoder.weight (V, H)     b_y = decoder.bias (V,)

The loss is the paper's cross-entropy, summed over the scored positions of a row (its time steps, or its label) and
averaged over the N rows, so the batch size does not change the step size. A batch is a dict: "x" (N, T) ids, "y"
(N, T) ids or (N,) labels, "mask" (N, T) bool or absent (lm, conditional, seq2seq: which targets are scored;
classify: which input steps are real), "src"/"src_mask" (seq2seq) and "labels" (N,) (conditional).
State is a tuple of (L, N, H) arrays, one per name in rnnlab.cells (h, and c for the LSTM).

    >>> from rnnlab.config import ModelConfig
    >>> cfg = ModelConfig(cell="gru", vocab_size=5, hidden_size=3, num_layers=2, task="classify", num_labels=2)
    >>> p = init_params(cfg, 0, np.float64)
    >>> b = {"x": np.array([[1, 2, 0], [3, 0, 0]]), "y": np.array([0, 1]), "mask": np.array([[1, 1, 0], [1, 0, 0]], bool)}
    >>> logits, _, _ = forward(p, cfg, b, None)
    >>> logits.shape
    (2, 2)
"""
from __future__ import annotations

import importlib

import numpy as np

from ... import cells
from . import layers
from .layers import dropout_mask, linear, linear_backward, softmax_cross_entropy
from .sequence import sequence_backward, sequence_forward


def cell_module(name: str):
    """The NumPy file of cell `name` (rnnlab/engines/numpy/<name>.py): step pair and fused sequence pass."""
    cells.get(name)
    return importlib.import_module(f"{__package__}.{name}")


def layer_params(params: dict, cfg, k: int, prefix: str = "") -> dict:
    """The arrays of layer k (weight_ih, weight_hh, bias_ih, bias_hh: those cfg's cell has), under the names the
    cell functions use."""
    return {n: params[f"{prefix}rnn.{n}_l{k}"] for n in cells.get(cfg.cell).params}


def _stack_shapes(cfg) -> dict:
    H, row = cfg.hidden_size, cells.get(cfg.cell)
    shapes = {"encoder.weight": (cfg.vocab_size, cfg.embed_dim)} if cfg.embed_dim else {}
    for k in range(cfg.num_layers):
        shapes.update({f"rnn.{n}_l{k}": s for n, s in row.shapes(cfg.input_size if k == 0 else H, H).items()})
    return shapes


def _lm_shapes(cfg) -> dict:
    return {**_stack_shapes(cfg), "decoder.weight": (cfg.vocab_size, cfg.hidden_size),
            "decoder.bias": (cfg.vocab_size,)}


def state_width(cfg) -> int:
    """S*L*H: the length of one flattened initial state (a conditional model's cond.weight row)."""
    return len(cells.get(cfg.cell).state) * cfg.num_layers * cfg.hidden_size


def param_shapes(cfg) -> dict:
    """Name -> shape of every parameter of cfg's network, in PyTorch's order and naming."""
    C, H = cfg.num_labels, cfg.hidden_size
    if cfg.task == "classify":
        return {**_stack_shapes(cfg), "classifier.weight": (C, H), "classifier.bias": (C,)}
    if cfg.task == "conditional":
        return {**_lm_shapes(cfg), "cond.weight": (C, state_width(cfg))}
    if cfg.task == "seq2seq":
        return {**{"enc." + k: s for k, s in _stack_shapes(cfg).items()},
                **{"dec." + k: s for k, s in _lm_shapes(cfg).items()}}
    return _lm_shapes(cfg)


def _draw_lm(cfg, seed: int, dtype, decoder: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    k = 1.0 / np.sqrt(cfg.hidden_size)
    params = {}
    for name, shape in _lm_shapes(cfg).items():
        p = rng.standard_normal(shape) if name == "encoder.weight" else rng.uniform(-k, k, shape)
        if decoder or not name.startswith("decoder."):
            params[name] = np.ascontiguousarray(p, dtype=dtype)
    return params


def _uniform(shape, seed: int, scale: float, dtype) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-scale, scale, shape).astype(dtype)


def init_params(cfg, seed: int, dtype) -> dict:
    """PyTorch's default initialisation, drawn in float64 from seeded generators then cast, so float32 and float64
    models start from the same numbers: embeddings ~ N(0, 1); every other weight and bias ~ U(-1/sqrt(H), 1/sqrt(H))
    (nn.RNN's rule, and nn.Linear's for a fan-in of H). A head the lm lacks has a generator of its own (seed + 1,
    seed + 2), and seq2seq's dec is an lm drawn from seed + 1, so the stack is the same for every task."""
    k = 1.0 / np.sqrt(cfg.hidden_size)
    if cfg.task == "classify":
        return {**_draw_lm(cfg, seed, dtype, decoder=False),
                "classifier.weight": _uniform((cfg.num_labels, cfg.hidden_size), seed + 1, k, dtype),
                "classifier.bias": _uniform((cfg.num_labels,), seed + 2, k, dtype)}
    if cfg.task == "conditional":
        return {**_draw_lm(cfg, seed, dtype), "cond.weight": _uniform((cfg.num_labels, state_width(cfg)), seed + 1,
                                                                      k, dtype)}
    if cfg.task == "seq2seq":
        return {**{"enc." + n: v for n, v in _draw_lm(cfg, seed, dtype, decoder=False).items()},
                **{"dec." + n: v for n, v in _draw_lm(cfg, seed + 1, dtype).items()}}
    return _draw_lm(cfg, seed, dtype)


def zero_state(cfg, n: int, dtype) -> tuple:
    return tuple(np.zeros((cfg.num_layers, n, cfg.hidden_size), dtype) for _ in cells.get(cfg.cell).state)


def stack_forward(params: dict, cfg, ids, state0: tuple, mask=None, rng=None, prefix: str = ""):
    """ids (N, T) from state0 (tuple of (L, N, H)) through the L layers. Without a mask each layer is the cell's
    fused pass; with one, the plain step-by-step pass that carries the state over padding. With `rng` (training)
    dropout follows every layer: between layers an independent mask per element, as nn.LSTM's; on the top layer
    one mask per sequence and unit shared by all T steps (variational or "locked" dropout: Gal & Ghahramani 2016,
    Merity et al. 2018). Returns (top layer's outputs (N, T, H), final state tuple, cache)."""
    cell = cell_module(cfg.cell)
    emb = params.get(prefix + "encoder.weight")
    x = emb[ids] if emb is not None else ids                                   # (N, T, D), or ids meaning one-hot
    caches, finals = [], []
    for k in range(cfg.num_layers):
        p, s0 = layer_params(params, cfg, k, prefix), tuple(s[k] for s in state0)    # s0: each (N, H)
        if mask is None:
            out, sT, c = cell.forward(x, s0, p)                                # (N, T, H)
        else:
            out, sT, c = sequence_forward(cell, x, s0, p, mask)
        N, T, H = out.shape
        shape = (N, 1, H) if k == cfg.num_layers - 1 else (N, T, H)          # the top layer's: locked over T
        drop = dropout_mask(shape, cfg.dropout, out.dtype, rng)
        if drop is not None:
            out = out * drop
        caches.append((c, drop))
        finals.append(sT)
        x = out
    state = tuple(np.stack([f[i] for f in finals]) for i in range(len(finals[0])))   # each (L, N, H)
    return x, state, (ids, mask, caches, prefix)


def stack_backward(dout, dstateT, params: dict, cfg, cache):
    """Gradients of stack_forward given dloss/dout (N, T, H) (None: zeros) and dloss/dstate_T (tuple of (L, N, H),
    or None). Returns (grads keyed like the stack's parameters, dstate0 tuple of (L, N, H)): the gradient reaches
    the initial state, which is how an encoder learns from its decoder and a condition table from the text."""
    cell = cell_module(cfg.cell)
    ids, mask, caches, prefix = cache
    N, T = ids.shape
    dtype = params[prefix + "rnn.weight_ih_l0"].dtype
    dx = np.zeros((N, T, cfg.hidden_size), dtype) if dout is None else dout    # (N, T, H)
    grads, dstate0 = {}, [None] * cfg.num_layers
    for k in reversed(range(cfg.num_layers)):
        c, drop = caches[k]
        if drop is not None:
            dx = dx * drop
        dsT = None if dstateT is None else tuple(d[k] for d in dstateT)
        if mask is None:
            dx, dstate0[k], g = cell.backward(dx, dsT, c)
        else:
            dx, dstate0[k], g = sequence_backward(cell, dx, dsT, c)
        grads.update({f"{prefix}rnn.{n}_l{k}": a for n, a in g.items()})
    if prefix + "encoder.weight" in params:
        grads[prefix + "encoder.weight"] = layers.embedding_backward(dx, ids, params[prefix + "encoder.weight"])
    return grads, tuple(np.stack([d[i] for d in dstate0]) for i in range(len(dstate0[0])))


def initial_state(params: dict, cfg, batch: dict, rng=None):
    """(state, cache) a task's decoder starts from: seq2seq's encoding of batch["src"] (the encoder's true last
    state), conditional's rows of cond.weight for batch["labels"] laid out [state][layer][unit]."""
    if cfg.task == "seq2seq":
        zero = zero_state(cfg, batch["src"].shape[0], params["enc.rnn.weight_ih_l0"].dtype)
        _, state, cache = stack_forward(params, cfg, batch["src"], zero, batch.get("src_mask"), rng, "enc.")
        return state, cache
    labels, L, H = batch["labels"], cfg.num_layers, cfg.hidden_size
    e = params["cond.weight"][labels].reshape(len(labels), -1, L, H)          # (N, S, L, H)
    return tuple(np.ascontiguousarray(e[:, i].transpose(1, 0, 2)) for i in range(e.shape[1])), None


def forward(params: dict, cfg, batch: dict, state, rng=None):
    """Logits of the batch, the new carried state (lm; None for the other tasks) and the cache for backward.
    logits (N, T, V), or (N, C) for classify. With `rng` dropout is on (training)."""
    if cfg.task == "classify":
        zero = zero_state(cfg, batch["x"].shape[0], params["classifier.weight"].dtype)
        _, s, c = stack_forward(params, cfg, batch["x"], zero, batch.get("mask"), rng)
        feat = s[0][-1]                                                        # (N, H) top layer's true last h
        drop = dropout_mask(feat.shape, cfg.dropout, feat.dtype, rng)
        feat = feat if drop is None else feat * drop
        return linear(feat, params["classifier.weight"], params["classifier.bias"]), None, (c, feat, drop, s)
    pre, init = "", None
    if cfg.task == "lm":                                                       # no carried state: zeros
        s0 = state if state is not None else zero_state(cfg, batch["x"].shape[0], params["decoder.weight"].dtype)
    else:
        pre = "dec." if cfg.task == "seq2seq" else ""
        s0, init = initial_state(params, cfg, batch, rng)
    out, s, c = stack_forward(params, cfg, batch["x"], s0, None, rng, pre)     # (N, T, H)
    logits = linear(out, params[pre + "decoder.weight"], params[pre + "decoder.bias"])   # (N, T, V)
    return logits, (s if cfg.task == "lm" else None), (c, out, init, pre)


def backward(dlogits, params: dict, cfg, batch: dict, cache) -> dict:
    """Gradients of every parameter given dloss/dlogits. No gradient flows into an lm's carried state (truncated
    BPTT: it is a constant); seq2seq's crosses from dec into enc, conditional's into its label rows."""
    if cfg.task == "classify":
        c, feat, drop, s = cache
        dfeat, dw, db = linear_backward(dlogits, feat, params["classifier.weight"])   # (N, H)
        dfeat = dfeat if drop is None else dfeat * drop
        dstate = tuple(np.zeros_like(a) for a in s)
        dstate[0][-1] = dfeat                                                  # only the top layer's h_T is read
        grads, _ = stack_backward(None, dstate, params, cfg, c)
        return {**grads, "classifier.weight": dw, "classifier.bias": db}
    c, out, init, pre = cache
    dout, dw, db = linear_backward(dlogits, out, params[pre + "decoder.weight"])     # (N, T, H)
    grads, dstate0 = stack_backward(dout, None, params, cfg, c)
    grads[pre + "decoder.weight"], grads[pre + "decoder.bias"] = dw, db
    if cfg.task == "seq2seq":
        grads.update(stack_backward(None, dstate0, params, cfg, init)[0])      # across the boundary into enc
    elif cfg.task == "conditional":
        N = batch["labels"].shape[0]
        d = np.stack(dstate0, axis=0).transpose(2, 0, 1, 3).reshape(N, -1)    # (N, S*L*H), like initial_state
        grads["cond.weight"] = np.zeros_like(params["cond.weight"])
        np.add.at(grads["cond.weight"], batch["labels"], d)                   # scatter-add into each label's row
    return grads


def loss_and_grads(params: dict, cfg, batch: dict, state, rng=None):
    """Forward, loss and backward for one batch. Returns (loss summed over the scored positions in nats, number of
    scored positions, grads of the loss's mean over the N rows, new state)."""
    logits, new_state, cache = forward(params, cfg, batch, state, rng)
    y = batch["y"]
    mask = None if cfg.task == "classify" else batch.get("mask")
    loss, count, dlogits = layers.cross_entropy(logits, y, mask, 1.0 / y.shape[0])
    return loss, count, backward(dlogits, params, cfg, batch, cache), new_state


def score(params: dict, cfg, batch: dict, state):
    """(summed loss in nats over the scored positions, their number, new state), no dropout: evaluation."""
    logits, new_state, _ = forward(params, cfg, batch, state)
    mask = None if cfg.task == "classify" else batch.get("mask")
    loss, count, _ = layers.cross_entropy(logits, batch["y"], mask, 1.0, grad=False)
    return loss, count, new_state


def scored(cfg, batch: dict) -> int:
    """How many positions of the batch the loss scores: its labels (classify), its masked-in targets, or all."""
    mask = batch.get("mask")
    return int(batch["y"].size if mask is None or cfg.task == "classify" else np.count_nonzero(mask))
