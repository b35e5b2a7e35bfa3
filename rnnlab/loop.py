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
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import schedule, snapshot, threads
from .governor import Governor
from .config import replace
from .engines import make_engine, process_rank
from .errors import UserError
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


@dataclass
class Progress:
    """Where a run stands: everything a checkpoint stores besides the configs."""
    params: object
    opt_state: object
    state: object              # the lm's carried state; None for the task shapes
    step: int = 0
    best: list | None = None   # the best evaluation score so far
    rng: np.random.Generator = field(default_factory=np.random.default_rng)
    trained: float = 0.0       # seconds of training over the whole run


def _quiet(*args, **kwargs):
    pass


def train(prepare, mcfg, tcfg, out, engine: str = "numpy", resume: bool = False, overrides: dict | None = None,
          opts: dict | None = None, task: str = "lm", command: str = "train", progress=None, log=print,
          stop_at: int | None = None, engine_options: dict | None = None) -> dict:
    """Train into run directory `out` (or, resume=True, continue the run there: then the configs and opts come
    from its checkpoint and `overrides` may change its budget or data). prepare(mcfg, tcfg, opts, snap, run) ->
    Setup loads the task's data. `stop_at` ends this invocation after that step with a checkpoint, as an
    interruption would, without touching the config. Returns the last evaluation's figures with "step", "loss" (the
    last step's), "best" (the best score), "latest" (the checkpoint's path), "ran" (False when the budget was
    already spent) and "info" (the task's metadata). Raises UserError for bad input."""
    main = process_rank() == 0
    log = log if main else _quiet
    with RunDir(out, resume, main) as run:
        snap = None
        if resume:
            snap = snapshot.load(run.latest, task)
            snapshot.check_resumable(snap, run.latest)
            mcfg, tcfg, opts = snap.mcfg, replace(snap.tcfg, **(overrides or {})), snap.extra.get("options", opts)
        setup = prepare(mcfg, tcfg, opts, snap, run)
        eng = make_engine(engine, setup.mcfg, tcfg, **(engine_options or {}))
        p = _start(eng, setup, tcfg, snap, run)
        n = sum(int(np.prod(a.shape)) for a in p.params.values())
        m = setup.mcfg
        auto = (engine_options or {}).get("threads") == 0 and eng.world_size == 1   # --threads 0: governed
        governor = Governor(threads.current(eng.name), adapt=auto)
        log(f"rnnlab {command}: engine {eng.name} ({eng.device}, {tcfg.dtype}) on {threads.describe(eng.name)}"
            f"{' (auto)' if auto else ''} | "
            f"{m.cell} H={m.hidden_size} L={m.num_layers} V={m.vocab_size} ({n:,} params) | {setup.describe} | "
            f"N={tcfg.batch_size}"
            f"{' T=%d' % tcfg.seq_len if setup.job.passes else ''} {tcfg.optimizer} lr={tcfg.lr:g} | "
            f"{'resuming at step %d, ' % p.step if snap else ''}run dir {out}")
        return {**_fit(run, eng, setup, tcfg, p, progress, log, stop_at, command, governor), "info": setup.info}


def _start(engine, setup: Setup, tcfg, snap, run: RunDir) -> Progress:
    """A fresh run's starting point (seeded initialisation), or the checkpoint's, bit for bit."""
    carries = bool(setup.job.passes)
    if snap is None:
        params = engine.init_params(tcfg.seed)
        if setup.init is not None:
            params = engine.load_params(setup.init(engine.export(params)))
        return Progress(params, engine.init_opt_state(params), engine.zero_state(tcfg.batch_size) if carries else None,
                        rng=np.random.default_rng(tcfg.seed + 1))
    rng = np.random.default_rng()
    rng.bit_generator.state = snap.rng_state
    run.truncate_metrics(snap.step)
    best = snap.extra.get("best_score")
    if best is None and snap.best_val is not None:
        best = [-snap.best_val]
    return Progress(engine.load_params(snap.params), engine.load_opt_state(snap.opt_state),
                    engine.load_state(snap.state) if carries else None, snap.step, best, rng,
                    run.saved_seconds(snap.extra))


def _diverged(what: str, step: int, lr: float, run: RunDir) -> UserError:
    return UserError(f"training diverged: {what} at step {step}; the learning rate ({lr:g}) is likely too high: "
                     f"lower --lr or set --clip-norm. Last good checkpoint: {run.last_good()}")


def _fit(run: RunDir, engine, setup: Setup, tcfg, p: Progress, progress, log, stop_at, command,
         governor: Governor) -> dict:
    from tqdm import tqdm
    job, main = setup.job, run.main
    bar = tqdm(total=None if tcfg.schedule_by == "time" else tcfg.max_steps, initial=p.step,
               disable=(not progress or not main) if progress is not None else (None if main else True),
               dynamic_ncols=True, unit="step", file=sys.stderr)
    pending, bad, last, val, m = [], 0, {}, {}, {"loss": float("nan")}
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
            if not m["ok"]:
                bad += 1
                pending.append({"step": p.step, "skipped": True, "loss": None, "grad_norm": None})
                log(f"step {p.step}: non-finite loss or gradient; update skipped ({bad} in a row)")
                if bad >= tcfg.max_bad_steps:
                    run.append(pending)
                    raise _diverged(f"{bad} non-finite steps in a row", p.step, lr, run)
                continue
            p.state, bad = (new_state if job.passes else None), 0
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
            if p.step % tcfg.eval_every == 0 or p.step == tcfg.max_steps or out_of_time or sig.caught:
                with clock.paused():                  # evaluation and checkpoints are not training time
                    val = _evaluate(run, engine, setup, tcfg, p, m, lr, last, clock, pending,
                                    bar.write if main else log)
                    pending = []
                if sig.caught:
                    bar.close()
                    log(f"stopped at step {p.step}; checkpoint {run.latest}; continue with: "
                        f"rnnlab {command} --resume {run.path}")
                    raise Interrupted(sig.caught)
                if out_of_time:
                    break
    bar.close()
    run.append(pending)
    if p.step == start:
        log(f"nothing to do: the run has reached its budget (step {p.step} of --max-steps {tcfg.max_steps}, "
            f"{p.trained:.0f} s of --max-time {tcfg.max_time:g}); to go on: rnnlab {command} --resume {run.path} "
            f"--max-steps N or --max-time S")
    return {**val, "step": p.step, "loss": m["loss"], "best": p.best, "latest": str(run.latest),
            "ran": p.step > start}


def _row(job: Job, p: Progress, m: dict, lr: float, window, n_threads: int) -> dict:
    """The metrics row of this step; the rate counts the steps and training seconds since the last row; threads:
    the threads the maths ran on (the governor's choice, under --threads 0)."""
    rate = job.items * (p.step - window[1]) / max(p.trained - window[0], 1e-9)
    row = {"step": p.step, "loss": m["loss"]}
    if job.passes:
        row["bpc"] = m["loss"] / LN2
    return {**row, "lr": lr, "grad_norm": m["grad_norm"], job.rate: round(rate, 1), "time": round(p.trained, 3),
            "threads": n_threads}


def _evaluate(run: RunDir, engine, setup: Setup, tcfg, p: Progress, m, lr, last, clock, pending, write) -> dict:
    """Validate, log, write latest (and best when the score improved); returns the evaluation's figures."""
    val = setup.job.evaluate(engine, p.params)
    row = {"step": p.step, "time": round(p.trained, 3), "wall": round(clock.wall(), 3)}
    improved = True
    if val:
        score = val["score"]
        improved = all(map(math.isfinite, score)) and (p.best is None or score > p.best)
        p.best = score if improved else p.best
        write(f"step {p.step}: train {m['loss']:.4f}  {val['line']}{'  (best)' if improved else ''}")
        row.update({k: v for k, v in val.items() if k not in ("line", "score")})
    pending.append(row)
    try:
        run.save(lambda path: _write(path, engine, setup, tcfg, p, last), improved)
    except snapshot.NonFinite as e:    # finite loss and gradient, yet the update overflowed the weights
        raise _diverged(str(e), p.step, lr, run) from None
    run.append(pending)
    return {k: v for k, v in val.items() if k not in ("line", "score")}


def _write(path, engine, setup: Setup, tcfg, p: Progress, metrics: dict) -> None:
    """One checkpoint of the run as it stands; snapshot.NonFinite when a weight is not (the update overflowed)."""
    best_val = -p.best[0] if p.best and setup.mcfg.task == "lm" else None
    extra = {**setup.info, "task": setup.mcfg.task, "engine": engine.name, "metrics": metrics,
             "best_score": p.best, "train_seconds": round(p.trained, 3)}
    state = engine.export_state(p.state) if p.state is not None else ()
    snapshot.save(path, snapshot.Snapshot(setup.mcfg, tcfg, setup.vocab, engine.export(p.params),
                                          engine.export(p.opt_state), state, p.step, best_val,
                                          p.rng.bit_generator.state, extra), engine.state_names)
