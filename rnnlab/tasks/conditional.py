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

    >>> line_batch([np.array([3, 1])], nl=0, seq_len=8)[0].tolist()          # x = "\\n" + line
    [[0, 3, 1]]
"""
from __future__ import annotations

import numpy as np

from . import data
from .. import loop
from ..config import replace
from ..errors import UserError
from ..sample import check_settings, generate as generate_text
from ..vocab import Vocab

NL = "\n"


def line_batch(seqs, nl: int, seq_len: int):
    """Lines (id arrays) -> x, y, mask (N, T): x = nl + line, y = line + nl, both cut to seq_len steps."""
    xs = [np.concatenate([[nl], s])[:seq_len] for s in seqs]
    ys = [np.concatenate([s, [nl]])[:seq_len] for s in seqs]
    x, mask = data.pad(xs)
    y, _ = data.pad(ys)
    return x, y, mask


def line_losses(engine, params, labels, x, y, mask) -> np.ndarray:
    """Summed nats of each line (N,) under the given labels (N,)."""
    logits, _ = engine.logits(params, {"x": x, "y": y, "mask": mask, "labels": labels})
    z = logits - logits.max(axis=-1, keepdims=True)                           # (N, T, V) float64
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    picked = np.take_along_axis(logp, y[..., None], axis=2)[..., 0]           # (N, T)
    return -(picked * mask).sum(axis=1)


def generate(engine, params, vocab, labels, label: str, prime: str = "", length: int = 200, num_samples: int = 1,
             seed: int = 0, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, argmax: bool = False,
             unknown: str = "error", on_text=None, stop: str = "") -> list:
    """`num_samples` texts of `length` characters written as `label` (after `prime`, which is included).
    Every line starts from the label's state (rnnlab.sample.generate with start=). on_text(k, s) streams each new
    piece of sample k. Raises UserError for a label the model does not know."""
    if label not in labels:
        shown = ", ".join(repr(s) for s in labels[:12]) + (", ..." if len(labels) > 12 else "")
        raise UserError(f"unknown condition {label!r}; this model knows {len(labels)} labels: {shown}")
    check_settings(length, num_samples, seed, temperature, top_k, top_p)
    state = engine.initial_state(params, {"labels": np.full(num_samples, labels.index(label))})
    return generate_text(engine, params, vocab, prime, length, num_samples, seed, temperature, top_k, top_p, argmax,
                         unknown, on_text, start=(state, vocab.symbols.index(NL)), stop=stop)


def _table(tcfg, opts: dict, snap):
    """(opts with the text column filled in, label names, the rows' labels and texts) of the table at tcfg.data."""
    text_col = opts.get("text_column") or data.other_column(tcfg.data, opts["condition_column"], opts.get("delimiter"))
    opts = {**opts, "text_column": text_col}
    cols = data.read_table(tcfg.data, {"condition": opts["condition_column"], "text": text_col}, opts.get("delimiter"))
    names = sorted(set(cols["condition"])) if snap is None else snap.extra["labels"]
    unknown = sorted(set(cols["condition"]) - set(names))
    if unknown:
        raise UserError(f"{tcfg.data}: labels {unknown[:6]} are not among the run's; resume on the same table")
    if any(NL in t for t in cols["text"]):
        raise UserError(f"{tcfg.data}: a text field holds a newline; each row must be one line")
    return opts, names, cols["condition"], cols["text"]


def prepare(mcfg, tcfg, opts: dict, snap, run) -> loop.Setup:
    """The conditional model's Setup: the table's lines, labels and a seeded split (the run's, when resuming)."""
    opts, names, conds, texts = _table(tcfg, opts, snap)
    vocab = Vocab.from_text("".join(texts) + NL) if snap is None else snap.vocab
    seqs = data.encode_all(vocab, texts, "data")
    y_lab = np.array([names.index(s) for s in conds], dtype=np.int64)
    tr, va = data.split(len(seqs), tcfg.val_frac, tcfg.seed)
    nl = vocab.symbols.index(NL)

    def batch(step: int) -> dict:
        rows = tr[data.batch_rows(len(tr), tcfg.batch_size, step, tcfg.seed)]
        x, y, mask = line_batch([seqs[i] for i in rows], nl, tcfg.seq_len)
        return {"x": x, "y": y, "mask": mask, "labels": y_lab[rows]}

    def evaluate(engine, params) -> dict:
        rows = va if len(va) else tr
        nats, chars, right = 0.0, 0, 0
        for a in range(0, len(rows), 256):
            r = rows[a:a + 256]
            x, y, mask = line_batch([seqs[i] for i in r], nl, tcfg.seq_len)
            per_label = np.stack([line_losses(engine, params, np.full(len(r), c), x, y, mask)
                                  for c in range(len(names))], axis=1)         # (n, C)
            nats += float(per_label[np.arange(len(r)), y_lab[r]].sum())
            chars += int(mask.sum())
            right += int((per_label.argmin(axis=1) == y_lab[r]).sum())
        loss, acc = nats / max(chars, 1), right / max(len(rows), 1)
        majority = np.bincount(y_lab[rows], minlength=len(names)).max() / max(len(rows), 1)
        which = "val" if len(va) else "train (no validation split)"
        return {"val_loss": loss, "val_label_acc": acc, "score": [-loss],
                "line": f"{which} {loss:.4f} nats/char  label accuracy {acc:.4f} (majority {majority:.4f})"}

    mcfg = replace(mcfg, vocab_size=len(vocab), task="conditional", num_labels=len(names))
    return loop.Setup(mcfg, vocab, {"labels": names, "options": opts}, loop.Job(batch, evaluate, tcfg.batch_size),
                      f"conditional on {opts['condition_column']!r}, {len(names)} labels | {len(tr):,} train / "
                      f"{len(va):,} val lines")


def train(mcfg, tcfg, opts: dict, out, resume: bool = False, overrides: dict | None = None, progress=None,
          log=print, stop_at=None, engine: str = "numpy", engine_options: dict | None = None) -> dict:
    """Train a label-conditioned character model on the table at tcfg.data (or resume the run in `out`).
    opts: condition_column, text_column, delimiter. Returns the last validation figures."""
    return loop.train(prepare, mcfg, tcfg, out, engine, resume, overrides, opts, "conditional", "train", progress,
                      log, stop_at, engine_options)
