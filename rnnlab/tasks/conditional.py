"""One-to-many: a label in, a sequence out. The label picks the network's initial state; the sequence is written
from there one character at a time, as the core's character model does.

    s_0 = reshape(E[label])       E = cond.weight (C, S*L*H): a learned initial state per label, h_0 of every layer
                                  (and c_0 too for the LSTM; S = 1 for rnn and gru, 2 for lstm)
    h_t = cell(x_t, h_{t-1});  p(x_{t+1} | x_<=t, label) = softmax(W_hy h_t + b_y)

Each row of the table is one sequence: inputs "\\n" + line, targets line + "\\n" (the newline marks both ends), cut
to --seq-len steps. The loss is the core's: cross-entropy summed over the steps, mean over the N lines. The
gradient reaches E through the initial state (net.backward returns it). Sampling starts every line from s_0 of the
chosen label: after each generated newline the state is reset to it, as in training.

Parameters: a whole core language model ("encoder.weight" when embed_dim > 0, "rnn.*", "decoder.*") plus
"cond.weight". Validation reports nats/char with the true label, and how often the true label is the one under
which the line is most likely ("label accuracy"): a model that ignored its condition would score the majority rate.

    >>> from rnnlab.config import ModelConfig
    >>> cfg = ModelConfig(cell="lstm", vocab_size=4, hidden_size=3, num_layers=2)
    >>> p = init_params(cfg, 5, 0, np.float64)
    >>> h0, c0 = initial_state(p, cfg, np.array([4, 0]))
    >>> h0.shape, bool(np.array_equal(h0[1, 0], p["cond.weight"][4, 3:6]))
    ((2, 2, 3), True)
"""
from __future__ import annotations

import numpy as np

from . import data, loop, net, store
from ..config import replace
from ..engines.numpy import model
from ..errors import UserError
from ..sample import encode_prime, pick
from ..vocab import Vocab

NL = "\n"


def shapes(mcfg, info) -> dict:
    S = model.CELLS[mcfg.cell].STATE_SIZE
    return {**model.param_shapes(mcfg), "cond.weight": (len(info["labels"]), S * mcfg.num_layers * mcfg.hidden_size)}


def init_params(mcfg, n_labels: int, seed: int, dtype) -> dict:
    S = model.CELLS[mcfg.cell].STATE_SIZE
    k = 1.0 / np.sqrt(mcfg.hidden_size)
    return {**model.init_params(mcfg, seed, dtype),
            "cond.weight": net.uniform((n_labels, S * mcfg.num_layers * mcfg.hidden_size), seed + 1, k, dtype)}


def initial_state(params, mcfg, labels) -> tuple:
    """Label ids (N,) -> the state tuple, each (L, N, H): rows of cond.weight laid out as [state][layer][unit]."""
    S = model.CELLS[mcfg.cell].STATE_SIZE
    L, H = mcfg.num_layers, mcfg.hidden_size
    e = params["cond.weight"][labels].reshape(len(labels), S, L, H)           # (N, S, L, H)
    return tuple(np.ascontiguousarray(e[:, i].transpose(1, 0, 2)) for i in range(S))   # S x (L, N, H)


def loss_and_grads(params, mcfg, labels, x, y, mask, rng=None):
    """x, y (N, T) ids, mask (N, T) bool, labels (N,). Returns (loss summed over real steps, grads of its mean
    over the N lines)."""
    N = x.shape[0]
    out, _, cache = net.forward(params, mcfg, x, None, initial_state(params, mcfg, labels), rng)
    logits = net.linear(out, params["decoder.weight"], params["decoder.bias"])   # (N, T, V)
    loss, dlogits = net.masked_cross_entropy(logits, y, mask, 1.0 / N)
    dout, dw, db = net.linear_backward(dlogits, out, params["decoder.weight"])   # (N, T, H)
    grads, dstate0 = net.backward(dout, None, params, mcfg, cache)
    d = np.stack(dstate0, axis=0).transpose(2, 0, 1, 3).reshape(N, -1)       # (N, S*L*H), like initial_state
    dcond = np.zeros_like(params["cond.weight"])
    np.add.at(dcond, labels, d)                                                # scatter-add into each label's row
    grads.update({"decoder.weight": dw, "decoder.bias": db, "cond.weight": dcond})
    return loss, grads


def line_batch(seqs, nl: int, seq_len: int):
    """Lines (id arrays) -> x, y, mask (N, T): x = nl + line, y = line + nl, both cut to seq_len steps."""
    xs = [np.concatenate([[nl], s])[:seq_len] for s in seqs]
    ys = [np.concatenate([s, [nl]])[:seq_len] for s in seqs]
    x, mask = data.pad(xs)
    y, _ = data.pad(ys)
    return x, y, mask


def line_losses(params, mcfg, labels, x, y, mask) -> np.ndarray:
    """Summed nats of each line (N,) under the given labels."""
    out, _, _ = net.forward(params, mcfg, x, None, initial_state(params, mcfg, labels))
    logp = net.log_softmax(net.linear(out, params["decoder.weight"], params["decoder.bias"]))   # (N, T, V)
    picked = np.take_along_axis(logp, y[..., None], axis=2)[..., 0]           # (N, T)
    return -(picked * mask).sum(axis=1)


def generate(params, mcfg, vocab, labels, label: str, prime: str = "", length: int = 200, num_samples: int = 1,
             seed: int = 0, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, argmax: bool = False,
             unknown: str = "error", on_text=None) -> list:
    """`num_samples` texts of `length` characters written as `label` (after `prime`, which is included).
    Every line starts from the label's state. on_text(k, s) streams each new piece of sample k."""
    if label not in labels:
        shown = ", ".join(repr(s) for s in labels[:12]) + (", ..." if len(labels) > 12 else "")
        raise UserError(f"unknown condition {label!r}; this model knows {len(labels)} labels: {shown}")
    if length < 0 or num_samples < 1 or temperature < 0 or top_k < 0 or not 0.0 < top_p <= 1.0:
        raise UserError("--length and --top-k must be >= 0, --num-samples >= 1, --temperature >= 0, "
                        "--top-p in (0, 1]")
    rng = np.random.default_rng(seed)
    K, nl = num_samples, vocab.symbols.index(NL)
    s0 = initial_state(params, mcfg, np.full(K, labels.index(label)))
    dec = (params["decoder.weight"], params["decoder.bias"])

    def step(ids, state):
        out, state, _ = net.forward(params, mcfg, ids[:, None], None, state)
        return net.linear(out[:, 0], *dec).astype(np.float64), state          # (K, V)

    texts = [[prime] for _ in range(K)]
    fresh_logits, fresh_state = step(np.full(K, nl, dtype=np.int64), s0)   # a line's start: "\n" read from s_0
    logits, state = fresh_logits, fresh_state
    for i in encode_prime(vocab, prime, unknown):
        logits, state = step(np.full(K, i, dtype=np.int64), state)
    if on_text and prime:
        for k in range(K):
            on_text(k, prime)
    for _ in range(length):
        ids = pick(logits, rng, temperature, top_k, top_p, argmax)            # (K,)
        for k, i in enumerate(ids.tolist()):
            texts[k].append(vocab.symbols[i])
            if on_text:
                on_text(k, vocab.symbols[i])
        logits, state = step(ids.astype(np.int64), state)
        ended = ids == nl                                                     # a new line: back to the label's start
        if ended.any():
            state = tuple(np.where(ended[None, :, None], a, b) for a, b in zip(fresh_state, state))
            logits = np.where(ended[:, None], fresh_logits, logits)
    return ["".join(t) for t in texts]


def train(mcfg, tcfg, opts: dict, out, resume: bool = False, overrides: dict | None = None, progress=None,
          log=print, stop_at=None) -> dict:
    """Train a label-conditioned character model on the table at tcfg.data (or resume the run in `out`).
    opts: condition_column, text_column, delimiter. Returns the last validation figures."""
    run = loop.open_run(out, resume, "conditional", shapes)
    if run is not None:
        opts, mcfg = run.info["options"], run.mcfg
        run.tcfg = tcfg = replace(run.tcfg, **(overrides or {}))
    text_col = opts.get("text_column") or data.other_column(tcfg.data, opts["condition_column"], opts.get("delimiter"))
    opts = {**opts, "text_column": text_col}
    cols = data.read_table(tcfg.data, {"condition": opts["condition_column"], "text": text_col}, opts.get("delimiter"))
    names = sorted(set(cols["condition"])) if run is None else run.info["labels"]
    unknown = sorted(set(cols["condition"]) - set(names))
    if unknown:
        raise UserError(f"{tcfg.data}: labels {unknown[:6]} are not among the run's; resume on the same table")
    if any(NL in t for t in cols["text"]):
        raise UserError(f"{tcfg.data}: a text field holds a newline; each row must be one line")
    vocab = Vocab.from_text("".join(cols["text"]) + NL) if run is None else run.vocab
    seqs = data.encode_all(vocab, cols["text"], "data")
    y_lab = np.array([names.index(s) for s in cols["condition"]], dtype=np.int64)
    tr, va = data.split(len(seqs), tcfg.val_frac, tcfg.seed)
    nl = vocab.symbols.index(NL)
    if run is None:
        mcfg = replace(mcfg, vocab_size=len(vocab))
        params = init_params(mcfg, len(names), tcfg.seed, np.dtype(tcfg.dtype))
        from ..engines.numpy.optim import init_state
        run = store.Run("conditional", mcfg, tcfg, vocab, params, init_state(params, tcfg), 0, None,
                        np.random.default_rng(tcfg.seed + 1), {"labels": names, "options": opts})
    log(f"rnnlab train (conditional on {opts['condition_column']!r}, {len(names)} labels): {mcfg.cell} "
        f"H={mcfg.hidden_size} L={mcfg.num_layers} V={len(vocab)} | {len(tr):,} train / {len(va):,} val lines | "
        f"N={tcfg.batch_size} {tcfg.optimizer} lr={tcfg.lr:g} | "
        f"{'resuming at step %d, ' % run.step if run.step else ''}run dir {out}")

    def grad_fn(params, step, rng):
        rows = tr[data.batch_rows(len(tr), tcfg.batch_size, step, tcfg.seed)]
        x, y, mask = line_batch([seqs[i] for i in rows], nl, tcfg.seq_len)
        loss, grads = loss_and_grads(params, mcfg, y_lab[rows], x, y, mask, rng)
        return loss, grads, int(mask.sum())

    def eval_fn(params):
        rows = va if len(va) else tr
        nats, chars, right = 0.0, 0, 0
        for a in range(0, len(rows), 256):
            r = rows[a:a + 256]
            x, y, mask = line_batch([seqs[i] for i in r], nl, tcfg.seq_len)
            per_label = np.stack([line_losses(params, mcfg, np.full(len(r), c), x, y, mask)
                                  for c in range(len(names))], axis=1)         # (n, C)
            nats += float(per_label[np.arange(len(r)), y_lab[r]].sum())
            chars += int(mask.sum())
            right += int((per_label.argmin(axis=1) == y_lab[r]).sum())
        loss, acc = nats / max(chars, 1), right / max(len(rows), 1)
        majority = np.bincount(y_lab[rows], minlength=len(names)).max() / max(len(rows), 1)
        which = "val" if len(va) else "train (no validation split)"
        return {"val_loss": loss, "val_label_acc": acc, "score": [-loss],
                "line": f"{which} {loss:.4f} nats/char  label accuracy {acc:.4f} (majority {majority:.4f})"}

    return loop.fit(run, out, grad_fn, eval_fn, tcfg.batch_size, progress, log, stop_at)
