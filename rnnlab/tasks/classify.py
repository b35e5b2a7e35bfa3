"""Many-to-one: a sequence in, a category out (e.g. sentiment of a sentence, the speaker of a line).

    s_T = stack(x_1..x_T)            the true last state of each padded sequence (net.py's masking)
    logits = W_c h_T + b_c           W_c = classifier.weight (C, H), b_c = classifier.bias (C,)
    loss = mean over the N sequences of -log softmax(logits)[label]

Shapes: N sequences, T steps (the longest in the batch), H hidden, C classes. The parameters are the core model's
embedding and recurrent layers plus the classifier head; the labels are sorted strings, stored in the checkpoint.

    >>> from rnnlab.config import ModelConfig
    >>> cfg = ModelConfig(cell="rnn", vocab_size=4, hidden_size=3)
    >>> p = init_params(cfg, 2, 0, np.float64)
    >>> logits, _ = forward(p, cfg, np.array([[1, 2, 0]]), np.array([[1, 1, 0]], bool))
    >>> logits.shape
    (1, 2)
"""
from __future__ import annotations

import numpy as np

from . import data, loop, net, store
from ..config import replace
from ..errors import UserError
from ..vocab import Vocab


def shapes(mcfg, info) -> dict:
    C = len(info["labels"])
    return {**net.stack_shapes(mcfg), "classifier.weight": (C, mcfg.hidden_size), "classifier.bias": (C,)}


def init_params(mcfg, n_classes: int, seed: int, dtype) -> dict:
    """The core initialisation for the stack; the head ~ U(-1/sqrt(H), 1/sqrt(H)) like nn.Linear(H, C)."""
    k = 1.0 / np.sqrt(mcfg.hidden_size)
    return {**net.init_params(mcfg, seed, dtype),
            "classifier.weight": net.uniform((n_classes, mcfg.hidden_size), seed + 1, k, dtype),
            "classifier.bias": net.uniform((n_classes,), seed + 2, k, dtype)}


def forward(params, mcfg, ids, mask, rng=None):
    """ids (N, T), mask (N, T) bool -> logits (N, C), cache. With `rng` dropout is on (training)."""
    dtype = params["classifier.weight"].dtype
    _, state, cache = net.forward(params, mcfg, ids, mask, net.zero_state(mcfg, ids.shape[0], dtype), rng)
    feat = state[0][-1]                                                        # (N, H) top layer's true last h
    drop = None
    if rng is not None and mcfg.dropout > 0:
        keep = 1.0 - mcfg.dropout
        drop = (rng.random(feat.shape) < keep).astype(dtype) / np.asarray(keep, dtype)
        feat = feat * drop
    logits = net.linear(feat, params["classifier.weight"], params["classifier.bias"])   # (N, C)
    return logits, (cache, feat, drop, len(state))


def loss_and_grads(params, mcfg, ids, mask, labels, rng=None):
    """Mean cross-entropy over the batch and its gradients. Returns (loss summed over the N sequences, grads)."""
    from ..engines.numpy.model import softmax_cross_entropy
    logits, (cache, feat, drop, S) = forward(params, mcfg, ids, mask, rng)
    N = ids.shape[0]
    loss, dlogits = softmax_cross_entropy(logits[:, None], labels[:, None], 1.0 / N)   # (N, 1, C)
    dfeat, dw, db = net.linear_backward(dlogits[:, 0], feat, params["classifier.weight"])   # (N, H)
    if drop is not None:
        dfeat = dfeat * drop
    dstate = tuple(np.zeros((mcfg.num_layers, N, mcfg.hidden_size), dfeat.dtype) for _ in range(S))
    dstate[0][-1] = dfeat                                                      # only h_T of the top layer is read
    grads, _ = net.backward(None, dstate, params, mcfg, cache)
    grads["classifier.weight"], grads["classifier.bias"] = dw, db
    return loss, grads


def predict_proba(params, mcfg, seqs, batch_size: int = 256) -> np.ndarray:
    """Class probabilities (n, C) for a list of id arrays, in padded batches."""
    out = []
    for a in range(0, len(seqs), batch_size):
        ids, mask = data.pad(seqs[a:a + batch_size])
        logits, _ = forward(params, mcfg, ids, mask)
        out.append(np.exp(net.log_softmax(logits)))
    return np.concatenate(out) if out else np.zeros((0, params["classifier.bias"].shape[0]))


def confusion(y_true, y_pred, C: int) -> np.ndarray:
    """conf[i, j] = how many items of true class i were predicted as class j (C, C)."""
    conf = np.zeros((C, C), dtype=np.int64)
    np.add.at(conf, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return conf


def report(labels, conf) -> str:
    """Accuracy, per-class precision and recall, and the confusion matrix, as text."""
    total = conf.sum()
    tp = np.diag(conf)
    prec = np.divide(tp, conf.sum(0), out=np.zeros(len(labels)), where=conf.sum(0) > 0)
    rec = np.divide(tp, conf.sum(1), out=np.zeros(len(labels)), where=conf.sum(1) > 0)
    w = max(8, *(len(s) for s in labels))
    lines = [f"accuracy {tp.sum() / max(total, 1):.4f} ({tp.sum()}/{total})",
             f"{'class':<{w}}  precision  recall  support"]
    lines += [f"{s:<{w}}  {p:9.4f}  {r:6.4f}  {n:7d}" for s, p, r, n in zip(labels, prec, rec, conf.sum(1))]
    lines.append("confusion (rows: true class, columns: predicted, in the order above)")
    lines += [f"{s:<{w}}  " + " ".join(f"{v:6d}" for v in row) for s, row in zip(labels, conf)]
    return "\n".join(lines)


def load_table(path, text_column, label_column, delimiter=None, max_len=0):
    """(texts, labels) from a CSV/TSV; texts cut to max_len characters (0 = whole)."""
    cols = data.read_table(path, {"text": text_column, "label": label_column}, delimiter)
    texts = [t[:max_len] if max_len else t for t in cols["text"]]
    if any(lab == "" for lab in cols["label"]):
        raise UserError(f"{path}: a row has an empty label (row {cols['label'].index('') + 1} of the data); "
                        f"fill it in or remove that row")
    return texts, cols["label"]


def train(mcfg, tcfg, opts: dict, out, resume: bool = False, overrides: dict | None = None, progress=None,
          log=print, stop_at=None) -> dict:
    """Train a classifier on the table at tcfg.data into run directory `out`, or resume the run there (then
    mcfg, tcfg and opts come from its checkpoint, and `overrides` may change the budget or the data's path).

    opts: text_column, label_column, delimiter, max_len (stored in the checkpoint).
    Returns the last validation figures: val_acc, val_loss, the confusion matrix ("confusion") and "report"."""
    run = loop.open_run(out, resume, "classify", shapes)
    if run is not None:
        opts, mcfg = run.info["options"], run.mcfg
        run.tcfg = tcfg = replace(run.tcfg, **(overrides or {}))
    texts, labels = load_table(tcfg.data, opts["text_column"], opts["label_column"], opts.get("delimiter"),
                               opts.get("max_len", 0))
    names = sorted(set(labels))
    if run is None and len(names) < 2:
        raise UserError(f"{tcfg.data}: column {opts['label_column']!r} has only one label ({names[0]!r}); a "
                        f"classifier needs at least two")
    vocab = Vocab.from_text("".join(texts) or " ") if run is None else run.vocab
    if run is not None and names != run.info["labels"]:
        raise UserError(f"{tcfg.data}: its labels {names[:6]} differ from the run's {run.info['labels'][:6]}; "
                        f"resume on the table the run was trained on")
    seqs = data.encode_all(vocab, texts, "data")
    y = np.array([names.index(s) for s in labels], dtype=np.int64)
    tr, va = data.split(len(seqs), tcfg.val_frac, tcfg.seed)
    dtype = np.dtype(tcfg.dtype)
    if run is None:
        mcfg = replace(mcfg, vocab_size=len(vocab))
        params = init_params(mcfg, len(names), tcfg.seed, dtype)
        from ..engines.numpy.optim import init_state
        run = store.Run("classify", mcfg, tcfg, vocab, params, init_state(params, tcfg), 0, None,
                        np.random.default_rng(tcfg.seed + 1), {"labels": names, "options": opts})
    log(f"rnnlab classify: {mcfg.cell} H={mcfg.hidden_size} L={mcfg.num_layers} V={len(vocab)} | "
        f"{len(names)} classes | {len(tr):,} train / {len(va):,} val rows | N={tcfg.batch_size} "
        f"{tcfg.optimizer} lr={tcfg.lr:g} | {'resuming at step %d, ' % run.step if run.step else ''}run dir {out}")

    def grad_fn(params, step, rng):
        rows = tr[data.batch_rows(len(tr), tcfg.batch_size, step, tcfg.seed)]
        ids, mask = data.pad([seqs[i] for i in rows])
        loss, grads = loss_and_grads(params, mcfg, ids, mask, y[rows], rng)
        return loss, grads, len(rows)

    def eval_fn(params):
        rows = va if len(va) else tr
        probs = predict_proba(params, mcfg, [seqs[i] for i in rows])
        loss = float(-np.log(np.maximum(probs[np.arange(len(rows)), y[rows]], 1e-300)).mean())
        conf = confusion(y[rows], probs.argmax(1), len(names))
        acc = float(np.trace(conf) / max(len(rows), 1))
        which = "val" if len(va) else "train (no validation split)"
        return {"val_acc": acc, "val_loss": loss, "score": [acc, -loss], "confusion": conf.tolist(),
                "line": f"{which} accuracy {acc:.4f}  loss {loss:.4f}"}

    res = loop.fit(run, out, grad_fn, eval_fn, tcfg.batch_size, progress, log, stop_at)
    if "confusion" in res:
        res["report"] = report(names, np.array(res["confusion"]))
    return res
