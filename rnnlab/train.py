"""The training loop, written once for every engine: batches -> engine.train_step -> metrics, eval, checkpoints.

A run lives in one directory, rnnlab.run.RunDir (latest.safetensors, best.safetensors with the lowest validation
loss so far, metrics.jsonl, data.ids; one run at a time). Resume is exact: the data position is a function of the
step (batch = step mod batches-per-pass), and the parameters, optimiser state, carried hidden state and dropout RNG
come back from the checkpoint bit for bit.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

from . import schedule, snapshot, text
from .config import ModelConfig, TrainConfig, replace
from .engines import make_engine, process_rank
from .errors import UserError
from .run import Clock, Interrupted, RunDir, Signals

LN2 = math.log(2.0)


ENCODE_CHUNK = 1 << 20   # bytes read at a time while encoding a corpus: bounds encoding's transient memory (~25 MB)


def load_corpus(tcfg: TrainConfig, path: Path, expect: text.Vocab | None = None):
    """(ids, vocab, one-line description) of the training text; `expect` is the run's vocabulary when resuming.

    A file is streamed twice in ENCODE_CHUNK pieces, once for its vocabulary (every check of the text happens
    here, before anything is written) and once to write its ids to `path` (the run's data.ids), which is then
    memory-mapped: the text is never held in memory, so peak memory is the id pages in use plus the model, whatever
    the corpus size. `data.ids` is a cache, rewritten on every start (RunDir removes it when a new run fails to
    start). The embedded corpus (about 465,000 characters) is encoded in memory."""
    def same_vocab(vocab):
        if expect is not None and vocab.to_json() != expect.to_json():
            raise UserError(f"the data's vocabulary differs from the run's ({expect.diff(vocab)}); "
                            f"resume on the same text the run was trained on")
    if not tcfg.data:
        corpus = text.embedded_corpus()
        corpus = corpus.encode("utf-8") if tcfg.encoding == "bytes" else corpus
        vocab = text.Vocab.from_text(corpus)
        same_vocab(vocab)
        return vocab.encode(corpus), vocab, "embedded corpus (CPython pydoc topics)"
    vocab = text.build_vocab_streaming(tcfg.data, tcfg.encoding, ENCODE_CHUNK)
    same_vocab(vocab)
    text.encode_file(tcfg.data, vocab, path, chunk_bytes=ENCODE_CHUNK)
    ids = text.load_ids(path, vocab.dtype)
    text.Streams(text.split(ids, tcfg.val_frac)[0], tcfg.batch_size, tcfg.seq_len)   # too short: fail now
    return ids, vocab, tcfg.data


def evaluate(engine, params, streams) -> float:
    """Mean nats per character over every batch of `streams`, the state carried from zeros."""
    state = engine.zero_state(streams.n_streams)
    total = 0.0
    for b in range(streams.num_batches):
        x, y = streams.batch(b)
        loss, state = engine.evaluate(params, x, y, state)
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
        loss, state = engine.evaluate(params, x, y, state)
        total += loss
    return total / n


def _val_streams(val_ids, tcfg):
    """Validation batches: as many streams as fit (at most batch_size), or None with no validation text."""
    if len(val_ids) < tcfg.seq_len + 1:
        return None
    n = max(1, min(tcfg.batch_size, (len(val_ids) - 1) // tcfg.seq_len))
    return text.Streams(val_ids, n, tcfg.seq_len)


def _quiet(*args, **kwargs):
    pass


def train(mcfg: ModelConfig | None, tcfg: TrainConfig | None, out_dir, engine_name: str = "numpy",
          resume: bool = False, overrides: dict | None = None, progress: bool | None = None, log=print,
          stop_at: int | None = None, engine_options: dict | None = None) -> dict:
    """Train a model into run directory `out_dir`; with resume=True continue the run found there.

    `overrides` (resume only) may change the budget: max_steps, max_time, eval_every, log_every, data.
    `stop_at` ends this invocation after that step with a checkpoint, as an interruption would, without touching
    the config (the schedule still runs to max_steps): the way tests pause a run to resume it.
    `engine_options` go to make_engine (the torch engine's device, precision, ddp_timeout). Under torchrun every
    process runs this loop in step; only rank 0 writes to `out_dir`, logs and draws the progress bar.
    Returns a summary dict (step, last train loss, best val loss, paths).
    The run directory (rnnlab.run.RunDir) is locked for the whole call; a new run that fails before its first
    checkpoint leaves nothing behind."""
    main = process_rank() == 0
    with RunDir(out_dir, resume, main) as rd:
        return _train(rd, mcfg, tcfg, engine_name, overrides, progress, log if main else _quiet, stop_at,
                      engine_options or {})


def _train(rd: RunDir, mcfg, tcfg, engine_name, overrides, progress, log, stop_at, engine_options) -> dict:
    """train's body, inside its open run directory `rd`."""
    out, latest, main = rd.path, rd.latest, rd.main
    snap = None
    if rd.resume:
        snap = snapshot.load(latest)
        snapshot.check_resumable(snap, latest)
        mcfg, tcfg = snap.mcfg, replace(snap.tcfg, **(overrides or {}))
    ids, vocab, source = load_corpus(tcfg, rd.scratch("data.ids"), snap.vocab if snap is not None else None)
    train_ids, val_ids = text.split(ids, tcfg.val_frac)
    streams = text.Streams(train_ids, tcfg.batch_size, tcfg.seq_len)
    val_streams = _val_streams(val_ids, tcfg)
    mcfg = replace(mcfg, vocab_size=len(vocab))
    engine = make_engine(engine_name, mcfg, tcfg, **engine_options)

    if snap is None:
        params = engine.init_params(tcfg.seed)
        opt_state, state = engine.init_opt_state(params), engine.zero_state(tcfg.batch_size)
        step, best_val, trained = 0, None, 0.0
        rng = np.random.default_rng(tcfg.seed + 1)
    else:
        params, opt_state = engine.load_params(snap.params), engine.load_opt_state(snap.opt_state)
        state, step, best_val = engine.load_state(snap.state), snap.step, snap.best_val
        trained = rd.saved_seconds(snap.extra)
        rng = np.random.default_rng()
        rng.bit_generator.state = snap.rng_state
        rd.truncate_metrics(step)

    n_params = sum(int(np.prod(p.shape)) for p in params.values())
    log(f"rnnlab train: engine {engine.name} ({engine.device}, {tcfg.dtype}) | {mcfg.cell} H={mcfg.hidden_size} "
        f"L={mcfg.num_layers} V={len(vocab)} ({n_params:,} params) | data: {source}, {len(train_ids):,} train / "
        f"{len(val_ids):,} val chars | N={tcfg.batch_size} T={tcfg.seq_len} {tcfg.optimizer} lr={tcfg.lr:g} | "
        f"{'resuming at step %d, ' % step if snap else ''}run dir {out}")

    def save_checkpoint(path):       # called by rd.save on rank 0 only (parameters and state are the same)
        extra = {"engine": engine.name, "data": {"source": source, "chars": int(len(ids))}, "metrics": last,
                 "train_seconds": round(trained, 3)}
        try:
            snapshot.save(path, snapshot.Snapshot(mcfg, tcfg, vocab, engine.export(params), engine.export(opt_state),
                                                  engine.export_state(state), step, best_val, rng.bit_generator.state,
                                                  extra), engine.state_names)
        except snapshot.NonFinite as e:    # finite loss and gradient, yet the update overflowed the weights
            raise UserError(f"training diverged: {e} at step {step}; the learning rate ({lr:g}) is likely too high: "
                            f"lower --lr or set --clip-norm. Last good checkpoint: {rd.last_good()}") from None

    from tqdm import tqdm
    bar = tqdm(total=None if tcfg.schedule_by == "time" else tcfg.max_steps, initial=step,   # or the clock ends it
               disable=(not progress or not main) if progress is not None else (None if main else True),
               dynamic_ncols=True, unit="step", file=sys.stderr)
    pending, bad_run, last = [], 0, {}
    chars_per_step = tcfg.batch_size * tcfg.seq_len
    # --max-time and a cosine over time (schedule_by="time") mean seconds of training (Clock): evaluations and
    # checkpoint writes run with the clock paused. `trained` is its reading, the same on every rank.
    clock = Clock(trained)
    t_win, step_win, start_step = trained, step, step
    with Signals() as sig:
        while step < tcfg.max_steps and not tcfg.time_spent(trained):     # a resumed run may have none left
            b = step % streams.num_batches
            if b == 0:                       # a new pass over the data: forget the old hidden state
                state = engine.zero_state(tcfg.batch_size)
            x, y = streams.batch(b)
            lr = schedule.learning_rate(tcfg, step, trained)
            m, new_state = engine.train_step(params, opt_state, x, y, state, lr, rng)
            step += 1
            if m["ok"]:
                state, bad_run = new_state, 0
            else:
                bad_run += 1
                pending.append({"step": step, "skipped": True, "loss": None, "grad_norm": None})
                log(f"step {step}: non-finite loss or gradient; update skipped ({bad_run} in a row)")
                if bad_run >= tcfg.max_bad_steps:
                    rd.append(pending)
                    raise UserError(f"training diverged: {bad_run} non-finite steps in a row at step {step}; the "
                                    f"learning rate ({lr:g}) is likely too high: lower --lr or set --clip-norm. "
                                    f"Last good checkpoint: {rd.last_good()}")
                continue
            bar.update(1)
            trained = clock.seconds()
            if engine.world_size > 1:        # every process takes the slowest clock: equal learning rates, and
                ms, caught = engine.max_over_ranks(int(trained * 1000), sig.caught)   # all stop at the same step
                trained, sig.caught = ms / 1000, sig.caught or caught
            if step % tcfg.log_every == 0:
                cps = (step - step_win) * chars_per_step / max(trained - t_win, 1e-9)     # of training
                t_win, step_win = trained, step
                last = {"step": step, "loss": m["loss"], "bpc": m["loss"] / LN2, "lr": lr,
                        "grad_norm": m["grad_norm"], "chars_per_s": round(cps, 1), "time": round(trained, 3)}
                pending.append(last)
                bar.set_postfix(loss=f"{m['loss']:.3f}", val=f"{best_val:.3f}" if best_val else "-",
                                cps=f"{cps:,.0f}", refresh=False)
            out_of_time = tcfg.time_spent(trained) or step == stop_at
            if step % tcfg.eval_every == 0 or step == tcfg.max_steps or out_of_time or sig.caught:
                with clock.paused():                  # evaluation and checkpoints are not training time
                    row = {"step": step, "time": round(trained, 3), "wall": round(clock.wall(), 3)}
                    if val_streams is not None:
                        val = evaluate(engine, params, val_streams)
                        row.update(val_loss=val, val_bpc=val / LN2)
                        improved = math.isfinite(val) and (best_val is None or val < best_val)
                        best_val = val if improved else best_val
                        (bar.write if main else _quiet)(f"step {step}: train {m['loss']:.4f}  val {val:.4f} nats/char "
                                                        f"({val / LN2:.3f} bpc){'  (best)' if improved else ''}")
                    else:
                        improved = True
                    pending.append(row)
                    rd.save(save_checkpoint, improved)
                    rd.append(pending)
                    pending = []
                if sig.caught:
                    bar.close()
                    log(f"stopped at step {step}; checkpoint {latest}; continue with: rnnlab train --resume {out}")
                    raise Interrupted(sig.caught)
                if out_of_time:
                    break
    bar.close()
    rd.append(pending)
    if step == start_step:
        log(f"nothing to do: the run has reached its budget (step {step} of --max-steps {tcfg.max_steps}, "
            f"{trained:.0f} s of --max-time {tcfg.max_time:g}); to go on: rnnlab train --resume {out} "
            f"--max-steps N or --max-time S")
    else:
        log(f"done: step {step}, train loss {m['loss']:.4f}"
            f"{', best val %.4f nats/char' % best_val if best_val is not None else ''}; "
            f"sample with: rnnlab sample {out}")
    return {"step": step, "loss": last.get("loss"), "best_val": best_val, "latest": str(latest), "best": str(rd.best)}
