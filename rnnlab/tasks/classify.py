"""Many-to-one: a sequence in, a category out (e.g. sentiment of a sentence, the speaker of a line).

    s_T = stack(x_1..x_T)            the true last state of each padded sequence (the stack's padding mask)
    logits = W_c h_T + b_c           W_c = classifier.weight (C, H), b_c = classifier.bias (C,)
    loss = mean over the N sequences of -log softmax(logits)[label]

Shapes: N sequences, T steps (the longest in the batch), H hidden, C classes. The network is the one model's
"classify" (rnnlab/engines/numpy/model.py, and the torch engine's Net): the core's embedding and recurrent layers
plus the classifier head. What lives here is what is particular to the task: the table, its batches, the metrics.
The labels are sorted strings, stored in the checkpoint.

    >>> confusion([0, 1, 1], [0, 1, 0], 2).tolist()
    [[1, 0], [1, 1]]
"""
from __future__ import annotations

import numpy as np

from . import data
from .. import loop
from ..config import replace
from ..errors import UserError
from ..vocab import Vocab


def predict_proba(engine, params, seqs, batch_size: int = 256) -> np.ndarray:
    """Class probabilities (n, C) for a list of id arrays, in padded batches, on any engine."""
    out = []
    for a in range(0, len(seqs), batch_size):
        ids, mask = data.pad(seqs[a:a + batch_size])
        logits, _ = engine.logits(params, {"x": ids, "y": np.zeros(len(ids), np.int64), "mask": mask})   # (n, C)
        z = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(z)
        out.append(p / p.sum(axis=1, keepdims=True))
    return np.concatenate(out) if out else np.zeros((0, engine.mcfg.num_labels))


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


def prepare(mcfg, tcfg, opts: dict, snap, run) -> loop.Setup:
    """The classifier's Setup: the table at tcfg.data, its labels and a seeded split (the run's, when resuming)."""
    texts, labels = load_table(tcfg.data, opts["text_column"], opts["label_column"], opts.get("delimiter"),
                               opts.get("max_len", 0))
    names = sorted(set(labels))
    if snap is None and len(names) < 2:
        raise UserError(f"{tcfg.data}: column {opts['label_column']!r} has only one label ({names[0]!r}); a "
                        f"classifier needs at least two")
    vocab = Vocab.from_text("".join(texts) or " ") if snap is None else snap.vocab
    if snap is not None and names != snap.extra["labels"]:
        raise UserError(f"{tcfg.data}: its labels {names[:6]} differ from the run's {snap.extra['labels'][:6]}; "
                        f"resume on the table the run was trained on")
    seqs = data.encode_all(vocab, texts, "data")
    y = np.array([names.index(s) for s in labels], dtype=np.int64)
    tr, va = data.split(len(seqs), tcfg.val_frac, tcfg.seed)

    def batch(step: int) -> dict:
        rows = tr[data.batch_rows(len(tr), tcfg.batch_size, step, tcfg.seed)]
        ids, mask = data.pad([seqs[i] for i in rows])
        return {"x": ids, "y": y[rows], "mask": mask}

    def evaluate(engine, params) -> dict:
        rows = va if len(va) else tr
        probs = predict_proba(engine, params, [seqs[i] for i in rows])
        loss = float(-np.log(np.maximum(probs[np.arange(len(rows)), y[rows]], 1e-300)).mean())
        conf = confusion(y[rows], probs.argmax(1), len(names))
        acc = float(np.trace(conf) / max(len(rows), 1))
        which = "val" if len(va) else "train (no validation split)"
        return {"val_acc": acc, "val_loss": loss, "score": [acc, -loss], "confusion": conf.tolist(),
                "line": f"{which} accuracy {acc:.4f}  loss {loss:.4f}"}

    mcfg = replace(mcfg, vocab_size=len(vocab), task="classify", num_labels=len(names))
    return loop.Setup(mcfg, vocab, {"labels": names, "options": opts}, loop.Job(batch, evaluate, tcfg.batch_size),
                      f"{len(names)} classes | {len(tr):,} train / {len(va):,} val rows")


def train(mcfg, tcfg, opts: dict, out, resume: bool = False, overrides: dict | None = None, progress=None,
          log=print, stop_at=None, engine: str = "numpy", engine_options: dict | None = None) -> dict:
    """Train a classifier on the table at tcfg.data into run directory `out`, or resume the run there (then
    mcfg, tcfg and opts come from its checkpoint, and `overrides` may change the budget or the data's path).

    opts: text_column, label_column, delimiter, max_len (stored in the checkpoint).
    Returns the last validation figures: val_acc, val_loss, the confusion matrix ("confusion") and "report"."""
    res = loop.train(prepare, mcfg, tcfg, out, engine, resume, overrides, opts, "classify", "classify", progress,
                     log, stop_at, engine_options)
    if "confusion" in res:
        res["report"] = report(res["info"]["labels"], np.array(res["confusion"]))
    return res
