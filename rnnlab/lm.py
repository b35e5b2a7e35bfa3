"""The character model's task: a text file in, a model that predicts its next character out (`rnnlab train`).

What is particular to it (the loop is rnnlab/loop.py, the run folder rnnlab/run.py): the text is encoded once into
the run's data.ids and memory-mapped; the last --val-frac of it is held out; training reads N contiguous streams of
it T characters at a time with the hidden state carried between batches (truncated BPTT), batch = step mod the
batches in a pass, so the data position is a function of the step and --resume is exact. Validation is the mean
nats/char over the held-out streams, the state carried from zeros.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from . import finetune, loop
from .config import ModelConfig, TrainConfig, replace
from .engines import process_rank
from .errors import UserError
from .streams import Streams, split
from .text import embedded_corpus, iter_chunks
from .vocab import Vocab, build_vocab_streaming, encode_file, load_ids

LN2 = math.log(2.0)
ENCODE_CHUNK = 1 << 20   # bytes read at a time while encoding a corpus: bounds encoding's transient memory (~25 MB)


def load_corpus(tcfg: TrainConfig, path: Path, expect: Vocab | None = None, base: Vocab | None = None):
    """(ids, vocab, one-line description) of the training text.

    `expect` (a resumed run's vocabulary): the text may use any subset of it (a second shard, a new text in the
    same alphabet) and is encoded with it; a character outside it is a UserError that says how to fine-tune. When
    the run's text is gone (moved, deleted) and `path` already holds its ids, those are used. `base` (a model to
    fine-tune, --init-from): the vocabulary is base's symbols plus the text's new ones.

    A file is streamed twice in ENCODE_CHUNK pieces, once for its vocabulary (every check of the text happens
    here, before anything is written) and once to write its ids to `path` (the run's data.ids), which is then
    memory-mapped: the text is never held in memory, so peak memory is the id pages in use plus the model, whatever
    the corpus size. `data.ids` is a cache, rewritten on every start (RunDir removes it when a new run fails to
    start). The embedded corpus (about 465,000 characters) is encoded in memory."""
    if expect is not None and tcfg.data and not Path(tcfg.data).exists() and path.is_file():
        ids = load_ids(path, expect.dtype)                     # the run's own encoded text, kept in its folder
        return ids, expect, f"{path} (the run's encoded text; {tcfg.data} is gone)"
    if not tcfg.data:
        corpus = embedded_corpus()
        corpus = corpus.encode("utf-8") if tcfg.encoding == "bytes" else corpus
        vocab = _fit_vocab(Vocab.from_text(corpus), expect, base, "the embedded corpus")
        return vocab.encode(corpus), vocab, "embedded corpus (CPython pydoc topics)"
    vocab = _fit_vocab(build_vocab_streaming(tcfg.data, tcfg.encoding, ENCODE_CHUNK), expect, base, tcfg.data)
    encode_file(tcfg.data, vocab, path, chunk_bytes=ENCODE_CHUNK)
    ids = load_ids(path, vocab.dtype)
    Streams(split(ids, tcfg.val_frac)[0], tcfg.batch_size, tcfg.seq_len)   # too short: fail now
    return ids, vocab, tcfg.data


def _fit_vocab(found: Vocab, expect, base, where) -> Vocab:
    """The vocabulary to encode a text whose own symbols are `found` with (see load_corpus)."""
    model = expect or base
    if model is not None and found.encoding != model.encoding:
        raise UserError(f"{where} is read as {found.encoding} but the model's vocabulary is {model.encoding}; "
                        f"use --encoding {model.encoding}")
    if base is not None:
        return Vocab(sorted(set(base.symbols) | set(found.symbols)), base.encoding)
    if expect is None:
        return found
    new = sorted(set(found.symbols) - set(expect.symbols))
    if new:
        shown = Vocab([], found.encoding).diff(Vocab(new, found.encoding)).split(": ", 1)[1]
        raise UserError(f"{where} has {len(new)} characters the run's model has never seen ({shown}); a run "
                        f"can't resume on them: fine-tune a new run from it with rnnlab train --init-from RUN "
                        f"--data {where} --out NEW")
    return expect


def evaluate(engine, params, streams) -> float:
    """Mean nats per character over every batch of `streams`, the state carried from zeros."""
    state = engine.zero_state(streams.n_streams)
    total = 0.0
    for b in range(streams.num_batches):
        x, y = streams.batch(b)
        loss, state = engine.evaluate(params, {"x": x, "y": y}, state)
        total += loss
    return total / (streams.num_batches * streams.n_streams * streams.seq_len)


def evaluate_ids(engine, params, ids, seq_len: int = 256) -> float:
    """Mean nats per character of predicting ids[t+1] from ids[:t+1], for every t: one stream, one pass, the state
    carried from zeros, the last chunk shorter. Every character counts (unlike `evaluate`, which drops tails)."""
    state = engine.zero_state(1)
    total, n = 0.0, len(ids) - 1
    for start in range(0, n, seq_len):
        stop = min(start + seq_len, n)
        x = np.asarray(ids[start:stop], dtype=np.int64)[None]
        y = np.asarray(ids[start + 1:stop + 1], dtype=np.int64)[None]
        loss, state = engine.evaluate(params, {"x": x, "y": y}, state)
        total += loss
    return total / n


def evaluate_stream(engine, params, vocab, path, unknown: str = "error", seq_len: int = 256,
                    chunk_bytes: int = ENCODE_CHUNK):
    """(mean nats per character, characters predicted) of the text file at `path`, read in chunk_bytes pieces:
    evaluate_ids over the whole file as one stream, the state carried across chunks, so memory stays flat in the
    file's size. Characters outside the vocabulary are a UserError, or dropped with unknown="skip"."""
    state, total, n, prev = engine.zero_state(1), 0.0, 0, None
    for chunk in iter_chunks(path, vocab.encoding, chunk_bytes):
        try:
            ids = np.asarray(vocab.encode(chunk, unknown=unknown), dtype=np.int64)
        except UserError as e:
            raise UserError(f"{path}: {str(e).split(';')[0]}; drop them with --unknown skip") from None
        seq = ids if prev is None else np.concatenate([[prev], ids])      # the last id predicts the next chunk
        for start in range(0, len(seq) - 1, seq_len):
            stop = min(start + seq_len, len(seq) - 1)
            loss, state = engine.evaluate(params, {"x": seq[None, start:stop], "y": seq[None, start + 1:stop + 1]},
                                          state)
            total, n = total + loss, n + stop - start
        prev = seq[-1] if len(seq) else prev
    if n < 1:
        raise UserError(f"{path} has fewer than 2 characters the model knows; there is nothing to predict")
    return total / n, n


def _val_streams(val_ids, tcfg):
    """Validation batches: as many streams of T as fit (at most batch_size); a validation text shorter than one
    window is one stream of all of it. None with --val-frac 0; a UserError when --val-frac leaves under 2
    characters (validation must never be silently off)."""
    if tcfg.val_frac == 0:
        return None
    if len(val_ids) < 2:
        raise UserError(f"--val-frac {tcfg.val_frac:g} leaves {len(val_ids)} validation character(s), too few to "
                        f"validate on; raise --val-frac, or train without validation with --val-frac 0")
    if len(val_ids) < tcfg.seq_len + 1:
        return Streams(val_ids, 1, len(val_ids) - 1)
    n = max(1, min(tcfg.batch_size, (len(val_ids) - 1) // tcfg.seq_len))
    return Streams(val_ids, n, tcfg.seq_len)


def prepare(mcfg: ModelConfig, tcfg: TrainConfig, opts, snap, run) -> loop.Setup:
    """The character model's Setup: the corpus encoded into the run's data.ids, N streams, the validation text.
    opts {"init_from": RUN_OR_CHECKPOINT} starts a fresh run from a trained model's weights (rnnlab.finetune)."""
    source = finetune.load_source(opts["init_from"]) if opts and opts.get("init_from") and snap is None else None
    ids, vocab, where = load_corpus(tcfg, run.scratch("data.ids"), snap.vocab if snap is not None else None,
                                    source.vocab if source is not None else None)
    train_ids, val_ids = split(ids, tcfg.val_frac)
    streams = Streams(train_ids, tcfg.batch_size, tcfg.seq_len)
    val_streams = _val_streams(val_ids, tcfg)

    def batch(step: int) -> dict:
        x, y = streams.batch(step % streams.num_batches)
        return {"x": x, "y": y}

    def validate(engine, params) -> dict:
        if val_streams is None:
            return {}
        val = evaluate(engine, params, val_streams)
        return {"val_loss": val, "val_bpc": val / LN2, "score": [-val],
                "line": f"val {val:.4f} nats/char ({val / LN2:.3f} bpc)"}

    job = loop.Job(batch, validate, tcfg.batch_size * tcfg.seq_len, "chars_per_s", streams.num_batches)
    mcfg = replace(mcfg, vocab_size=len(vocab), task="lm", num_labels=0)
    info, init = {"data": {"source": where, "chars": int(len(ids))}}, None
    if source is not None:
        info["options"] = {"init_from": {"path": str(opts["init_from"]), "step": source.step,
                                         "vocab": len(source.vocab)}}
        init = lambda fresh: finetune.grow(fresh, source.params, source.vocab, vocab, mcfg.embed_dim)  # noqa: E731
    elif snap is not None and "options" in snap.extra:
        info["options"] = snap.extra["options"]
    desc = f"data: {where}, {len(train_ids):,} train / {len(val_ids):,} val chars"
    if val_streams is None:
        desc += " (no validation: best = latest)"
    if source is not None:
        desc += f" | from {opts['init_from']} (step {source.step}, {len(vocab) - len(source.vocab)} new symbols)"
    return loop.Setup(mcfg, vocab, info, job, desc, init)


def train(mcfg: ModelConfig | None, tcfg: TrainConfig | None, out_dir, engine_name: str = "numpy",
          resume: bool = False, overrides: dict | None = None, progress: bool | None = None, log=print,
          stop_at: int | None = None, engine_options: dict | None = None, init_from=None) -> dict:
    """Train a character model into run directory `out_dir`; with resume=True continue the run found there.

    `overrides` (resume only) change the run's course: any config field but those that define its network or data
    (config.FIXED_ON_RESUME), e.g. lr, schedule, dropout, batch size, max_steps, data.
    `init_from` (a run directory or checkpoint) starts this new run from that model's weights (rnnlab.finetune);
    mcfg must then be its network (finetune.model_config builds it), or None for exactly the source's.
    `stop_at` ends this invocation after that step with a checkpoint, as an interruption would.
    `engine_options` go to make_engine (the torch engine's device, precision, ddp_timeout).
    Returns a summary dict: step, last train loss, best val loss (nats/char), the latest checkpoint's path.
    Raises UserError for bad input, a diverging run, a folder another run holds."""
    if init_from is not None and not resume:
        src = finetune.load_source(init_from).mcfg
        mcfg = finetune.model_config(src, {} if mcfg is None else
                                     {k: getattr(mcfg, k) for k in finetune.ARCHITECTURE + ("dropout",)})
    opts = {"init_from": init_from} if init_from is not None else None
    res = loop.train(prepare, mcfg, tcfg, out_dir, engine_name, resume, overrides, opts, task="lm",
                     progress=progress, log=log, stop_at=stop_at, engine_options=engine_options)
    best_val = -res["best"][0] if res["best"] else None
    if res["ran"] and process_rank() == 0:
        log(f"done: step {res['step']}, train loss {res['loss']:.4f}"
            f"{', best val %.4f nats/char' % best_val if best_val is not None else ''}; sample with: rnnlab sample "
            f"{out_dir}")
    return {**res, "best_val": best_val}
