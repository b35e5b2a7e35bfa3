"""The one training loop, for every task and engine: batches -> engine.train_step -> metrics, evaluation, checkpoints.

What differs per task is handed in as plain data and functions (a Setup, built by the task's `prepare`): the
batch of step s (a pure function of s, so --resume is exact), the evaluation, and the task's metadata. Everything
else is written once, here and in rnnlab/run.py:

    each step    lr = schedule(step, training seconds); engine.train_step on job.batch(step); a non-finite loss or
                 gradient skips the update (max_bad_steps in a row stop the run with a one-line error)
    every log_every steps   a metrics row: loss (nats per scored position), lr, grad_norm, items per second, time
    every eval_every steps, at the end, at --max-time and on Ctrl-C   job.evaluate -> latest.safetensors, and
                 best.safetensors when the score improved (a list, higher is better, compared element by element)

A character model (lm) carries its hidden state from batch to batch (truncated BPTT) and starts it again at zeros
on each pass over the text (job.passes batches); the task shapes start every batch fresh. --max-time and a cosine
over time count seconds of training (rnnlab.run.Clock): evaluations and checkpoint writes run with the clock
paused. Under torchrun every process runs this loop in step; only rank 0 writes, logs and draws the progress bar.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import progress as progress_mod
from . import schedule, snapshot, threads
from .config import replace, split_changes
from .engines import make_engine, process_rank
from .errors import UserError
from .governor import Governor, exact_on_one
from .run import Clock, Interrupted, RunDir, Signals

LN2 = math.log(2.0)


@dataclass
class Job:
    """What the loop needs from a task, once its data is loaded."""
    batch: Callable            # step -> batch dict of NumPy arrays (see rnnlab.engines.numpy.model)
    evaluate: Callable         # (engine, params) -> {"score": [...], "line": str, **figures for metrics.jsonl}
    items: int                 # rows (or characters) per step, for the rate in the metrics rows
    rate: str = "items_per_s"  # that rate's name in metrics.jsonl
    passes: int = 0            # lm: batches per pass over the text, the carried state restarts at each; 0: none


@dataclass
class Setup:
    """A task's network and data: the ModelConfig filled in from the data, the vocabulary, the metadata its
    checkpoints keep (labels, columns, the data's source), the job, and a description for the first log line."""
    mcfg: object
    vocab: object
    info: dict
    job: Job
    describe: str
    init: Callable | None = None   # params -> params: a change to a fresh run's initialisation (NumPy arrays)


def _quiet(*args, **kwargs):
    pass


def train(prepare, mcfg, tcfg, out, engine: str | None = "numpy", resume: bool = False, overrides: dict | None = None,
          opts: dict | None = None, task: str = "lm", command: str = "train", progress=None, log=print,
          stop_at: int | None = None, engine_options: dict | None = None) -> dict:
    """Train into run directory `out`, or (resume=True) continue the run there: its configs and opts come from its
    checkpoint and `overrides` (field -> value) change its course (rnnlab.progress). prepare(mcfg, tcfg, opts,
    snap, run) -> Setup loads the task's data. `stop_at` ends this invocation after that step with a checkpoint,
    as an interruption would. Returns the last evaluation's figures with "step", "loss" (the last step's), "best"
    (the best score), "latest" (the checkpoint's path), "ran" (False when the budget was already spent) and "info"
    (the task's metadata). Raises UserError for bad input, a run that diverges, a folder another run holds."""
    main = process_rank() == 0
    log = log if main else _quiet
    with RunDir(out, resume, main) as run:
        snap, changed = None, {}
        if resume:
            snap = snapshot.load(run.latest, task)
            snapshot.check_resumable(snap, run.latest)
            mcfg, tcfg, changed = split_changes(snap.mcfg, snap.tcfg, _absolute(overrides or {}))
            opts = snap.extra.get("options", opts)
        else:
            tcfg = replace(tcfg, **_absolute({"data": tcfg.data}))
        setup = _prepare(prepare, mcfg, tcfg, opts, snap, run, command)
        engine, options = progress_mod.run_flags(engine, dict(engine_options or {}), snap)
        adapt = options.pop("adapt_threads", "auto")
        eng = make_engine(engine, setup.mcfg, tcfg, **options)
        flags = {"engine": engine, "precision": options.get("precision")}
        changed = {**changed, **progress_mod.moved(snap, flags)} if snap else changed
        p = progress_mod.start(eng, setup, tcfg, snap, run, changed)
        p.flags = flags
        n = sum(int(np.prod(a.shape)) for a in p.params.values())
        m = setup.mcfg
        governed, how, exact = _governed(adapt, eng, setup.job, tcfg, p) if options.get("threads") == 0 else (
            False, "", None)
        governor = Governor(threads.current(eng.name), adapt=governed, exact=exact, log=log)
        log(f"rnnlab {command}: engine {eng.name} ({eng.device}, {tcfg.dtype}) on {threads.describe(eng.name)}"
            f"{how} | "
            f"{m.cell} H={m.hidden_size} L={m.num_layers} V={m.vocab_size} ({n:,} params) | {setup.describe} | "
            f"N={tcfg.batch_size}"
            f"{' T=%d' % tcfg.seq_len if setup.job.passes else ''} {tcfg.optimizer} lr={tcfg.lr:g} | "
            f"{'resuming at step %d, ' % p.step if snap else ''}run dir {out}")
        if changed:
            log("changed on resume: " + ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changed.items()))
        rows = [{"step": p.step, "changed": changed}] if changed else []
        return {**_fit(run, eng, setup, tcfg, p, progress, log, stop_at, command, rows, governor),
                "info": setup.info}


def _governed(adapt: str, eng, job: Job, tcfg, p) -> tuple:
    """(whether the governor may switch thread counts, the first line's note, the exactness check or None) for
    --threads 0 (auto). --adapt-threads on: yes; off: no; auto: on a CPU, in one process, where every step has the
    same shapes (the character model), once a step proves the same bit for bit on 1 thread as on all
    (governor.exact_on_one, run before the first switch): adapting then keeps the run reproducible."""
    n = threads.current(eng.name)
    if adapt == "off" or eng.world_size > 1 or n == 1:
        return False, " (auto)", None
    if adapt == "on":
        return True, " (auto, adapting)", None
    if not job.passes or eng.device.split(",")[0] != "cpu":
        return False, " (auto)", None

    def exact() -> tuple:
        state = p.state if p.state is not None else eng.zero_state(tcfg.batch_size)
        lr = schedule.learning_rate(tcfg, p.step, p.trained)
        return exact_on_one(eng, p.params, p.opt_state, job.batch(p.step), state, lr, p.rng, n)
    return True, " (auto, adapting if 1 thread gives the same bits)", exact


def _absolute(changes: dict) -> dict:
    """A data path made absolute, so that the run resumes from any working directory."""
    data = changes.get("data")
    return {**changes, "data": str(Path(data).resolve())} if data else changes


def _prepare(prepare, mcfg, tcfg, opts, snap, run, command):
    """prepare(), with the way out when a resumed run's data has moved."""
    try:
        return prepare(mcfg, tcfg, opts, snap, run)
    except UserError as e:
        if snap is None or not tcfg.data or Path(tcfg.data).exists() or "does not exist" not in str(e):
            raise
        raise UserError(f"the run's data {tcfg.data} is not there any more (moved, renamed or deleted); continue "
                        f"with: rnnlab {command} --resume {run.path} --data ITS_NEW_PATH") from None


def _diverged(what: str, step: int, lr: float, run: RunDir) -> UserError:
    return UserError(f"training diverged: {what} at step {step}; the learning rate ({lr:g}) is likely too high: "
                     f"lower --lr or set --clip-norm. Last good checkpoint: {run.last_good()}")


def _fit(run: RunDir, engine, setup: Setup, tcfg, p, progress, log, stop_at, command, pending,
         governor: Governor) -> dict:
    from tqdm import tqdm
    job, main = setup.job, run.main
    bar = tqdm(total=None if tcfg.schedule_by == "time" else tcfg.max_steps, initial=p.step,
               disable=(not progress or not main) if progress is not None else (None if main else True),
               dynamic_ncols=True, unit="step", file=sys.stderr)
    bad, last, val, m = 0, {}, {}, {"loss": float("nan")}
    clock, start = Clock(p.trained), p.step
    window = (p.trained, p.step)
    with Signals() as sig:
        while p.step < tcfg.max_steps and not tcfg.time_spent(p.trained):    # a resumed run may have none left
            if job.passes and p.step % job.passes == 0:    # a new pass over the text: forget the old hidden state
                p.state = engine.zero_state(tcfg.batch_size)
            lr = schedule.learning_rate(tcfg, p.step, p.trained)
            with governor:                                  # times the step; may resize the thread pools
                m, new_state = engine.train_step(p.params, p.opt_state, job.batch(p.step), p.state, lr, p.rng)
            p.step += 1
            bad = _bad_step(m, p, tcfg, bad, lr, run, pending, log)
            if not m["ok"]:
                continue
            p.state = new_state if job.passes else None
            bar.update(1)
            p.trained = clock.seconds()
            if engine.world_size > 1:        # every process takes the slowest clock: equal learning rates, and
                ms, caught = engine.max_over_ranks(int(p.trained * 1000), sig.caught)   # all stop at the same step
                p.trained, sig.caught = ms / 1000, sig.caught or caught
            if p.step % tcfg.log_every == 0:
                last, window = _row(job, p, m, lr, window, governor.ran_on), (p.trained, p.step)
                pending.append(last)
                bar.set_postfix(loss=f"{m['loss']:.3f}", refresh=False)
            out_of_time = tcfg.time_spent(p.trained) or p.step == stop_at
            end = out_of_time or p.step == tcfg.max_steps
            if (p.step % tcfg.eval_every == 0 or end or sig.caught) and not bad:   # never save a model mid-explosion
                with clock.paused():                  # evaluation and checkpoints are not training time
                    val = _evaluate(run, engine, setup, tcfg, p, m, lr, last, clock, pending,
                                    bar.write if main and not bar.disable else log)
                    pending = []
                if sig.caught:
                    bar.close()
                    log(f"stopped at step {p.step}; checkpoint {run.latest}; continue with: "
                        f"rnnlab {command} --resume {run.path}")
                    raise Interrupted(sig.caught)
                if out_of_time or (tcfg.patience and p.stale >= tcfg.patience):
                    break
            elif end and bad:
                run.append(pending)
                raise _diverged(f"the loss ({m['loss']:.4g} nats) is still above --max-loss-ratio "
                                f"{tcfg.max_loss_ratio:g} x its first ({p.first_loss:.4g})", p.step, lr, run)
    bar.close()
    if p.step == start and any("changed" in r for r in pending):    # no step to run, but a change of course:
        run.save(lambda path: progress_mod.write(path, engine, setup, tcfg, p, last), False)   # keep it
    run.append(pending)
    _closing(p, start, tcfg, run, command, log)
    return {**val, "step": p.step, "loss": m["loss"], "best": p.best, "latest": str(run.latest),
            "ran": p.step > start}


def _bad_step(m: dict, p, tcfg, bad: int, lr, run: RunDir, pending: list, log) -> int:
    """Count a run of bad steps: a non-finite loss or gradient (the engine skipped the update), or a loss above
    --max-loss-ratio times the run's first (char-rnn's rule: such a run has exploded and will not come back).
    max_bad_steps in a row stop the run with a one-line error naming the last good checkpoint."""
    if m["ok"] and p.first_loss is None:
        p.first_loss = m["loss"]
    exploding = m["ok"] and tcfg.max_loss_ratio and m["loss"] > tcfg.max_loss_ratio * p.first_loss
    if m["ok"] and not exploding:
        return 0
    bad += 1
    if not m["ok"]:
        pending.append({"step": p.step, "skipped": True, "loss": None, "grad_norm": None})
        log(f"step {p.step}: non-finite loss or gradient; update skipped ({bad} in a row)")
    else:
        pending.append({"step": p.step, "exploding": True, "loss": m["loss"], "grad_norm": m["grad_norm"]})
    if bad >= tcfg.max_bad_steps:
        run.append(pending)
        what = (f"{bad} non-finite steps in a row" if not m["ok"] else
                f"the loss ({m['loss']:.4g} nats) above --max-loss-ratio {tcfg.max_loss_ratio:g} x its first "
                f"({p.first_loss:.4g}) for {bad} steps in a row")
        raise _diverged(what, p.step, lr, run)
    return bad


def _closing(p, start: int, tcfg, run: RunDir, command: str, log) -> None:
    if p.step == start:
        log(f"nothing to do: the run has reached its budget (step {p.step} of --max-steps {tcfg.max_steps}, "
            f"{p.trained:.0f} s of --max-time {tcfg.max_time:g}); to go on: rnnlab {command} --resume {run.path} "
            f"--max-steps N or --max-time S")
    elif tcfg.patience and p.stale >= tcfg.patience:
        log(f"stopped early at step {p.step}: no better validation score in {p.stale} evaluations (--patience "
            f"{tcfg.patience}); the best model is {run.best}")


def _row(job: Job, p, m: dict, lr: float, window, n_threads: int) -> dict:
    """The metrics row of this step; the rate counts the steps and training seconds since the last row; threads:
    the threads the maths ran on (the governor's choice, under --threads 0)."""
    rate = job.items * (p.step - window[1]) / max(p.trained - window[0], 1e-9)
    row = {"step": p.step, "loss": m["loss"]}
    if job.passes:
        row["bpc"] = m["loss"] / LN2
    return {**row, "lr": lr, "grad_norm": m["grad_norm"], job.rate: round(rate, 1), "time": round(p.trained, 3),
            "threads": n_threads}


def _evaluate(run: RunDir, engine, setup: Setup, tcfg, p, m, lr, last, clock, pending, write) -> dict:
    """Validate, log, write latest (and best when the score improved); returns the evaluation's figures."""
    val = setup.job.evaluate(engine, p.params)
    row = {"step": p.step, "time": round(p.trained, 3), "wall": round(clock.wall(), 3)}
    improved = True
    if val:
        score = val["score"]
        improved = all(map(math.isfinite, score)) and (p.best is None or score > p.best)
        p.best, p.stale = (score, 0) if improved else (p.best, p.stale + 1)
        write(f"step {p.step}: train {m['loss']:.4f}  {val['line']}{'  (best)' if improved else ''}")
        row.update({k: v for k, v in val.items() if k not in ("line", "score")})
    pending.append(row)
    try:
        run.save(lambda path: progress_mod.write(path, engine, setup, tcfg, p, last), improved)
    except snapshot.NonFinite as e:    # finite loss and gradient, yet the update overflowed the weights
        raise _diverged(str(e), p.step, lr, run) from None
    run.append(pending)
    return {k: v for k, v in val.items() if k not in ("line", "score")}
