"""One training loop for the three task shapes, over the core's optimisers, schedule, checkpoints and signals.

Each step: loss and gradients from the task (grad_fn), the global norm (optim.global_norm), a skip when it is not
finite, clipping (optim.clip_), the update (optim.update_) at schedule.learning_rate(step). Every eval_every steps,
at the end, at --max-time and on Ctrl-C: the task's validation (eval_fn), then latest.safetensors, and
best.safetensors when the validation score improved (higher is better; each task says what its score is).
The run directory is rnnlab.run.RunDir, as for `rnnlab train`: one run per folder (locked), a new run that fails
before its first checkpoint leaves nothing behind, metrics.jsonl written the same way. The progress bar and the
clock (--max-time counts training seconds over the whole run, evaluations left out) follow `rnnlab train`.
Batches are a pure function of the step, so --resume is exact: in float64 a resumed run is bit-for-bit the
uninterrupted one.
"""
from __future__ import annotations

import math
import sys

from .. import schedule
from ..engines.numpy import optim
from ..errors import UserError
from ..run import Clock, Interrupted, RunDir, Signals
from . import store


def open_run(out, resume: bool, task: str, shapes):
    """The run in `out` to resume (a store.Run from latest.safetensors), or None for a fresh run in an empty or
    new folder. Refuses (RunDir's checks) a folder another run holds, to start over a run, and to resume nothing
    or another task's run. It leaves nothing behind: `fit` opens the folder again and holds it for the run,
    after the task has read its data."""
    with RunDir(out, resume) as rd:
        return store.load(rd.latest, task, shapes) if resume else None


def fit(run: store.Run, out, grad_fn, eval_fn, items_per_step: int, progress=None, log=print, stop_at=None) -> dict:
    """Train `run` in place until run.tcfg.max_steps (or --max-time, or stop_at, or Ctrl-C).

    grad_fn(params, step, rng) -> (loss summed over the batch's items, grads dict, number of items)
    eval_fn(params) -> dict of validation figures with "score" (a list, higher is better) and "line" (for the log)
    Returns the last validation dict, with "step" and "best" (the best score, the one in best.safetensors).
    The run directory is held (RunDir) for the whole fit; a resumed run is one whose step is past 0."""
    with RunDir(out, resume=run.step > 0) as rd:
        rd.truncate_metrics(run.step)
        return _fit(run, rd, grad_fn, eval_fn, items_per_step, progress, log, stop_at)


def _fit(run: store.Run, rd: RunDir, grad_fn, eval_fn, items_per_step, progress, log, stop_at) -> dict:
    """fit's loop, inside its open run directory `rd`."""
    tcfg = run.tcfg
    from tqdm import tqdm
    bar = tqdm(total=tcfg.max_steps, initial=run.step, disable=(not progress) if progress is not None else None,
               dynamic_ncols=True, unit="step", file=sys.stderr)
    pending, bad_run, last, val = [], 0, {}, {}
    clock = Clock(run.trained)
    t0, step0 = run.trained, run.step
    with Signals() as sig:
        while run.step < tcfg.max_steps and not tcfg.time_spent(run.trained):
            lr = schedule.learning_rate(tcfg, run.step)
            loss, grads, count = grad_fn(run.params, run.step, run.rng)
            norm = optim.global_norm(grads)
            run.step += 1
            if not (math.isfinite(loss) and math.isfinite(norm)):
                bad_run += 1
                pending.append({"step": run.step, "skipped": True, "loss": None, "grad_norm": None})
                log(f"step {run.step}: non-finite loss or gradient; update skipped ({bad_run} in a row)")
                if bad_run >= tcfg.max_bad_steps:
                    rd.append(pending)
                    raise UserError(f"training diverged: {bad_run} non-finite steps in a row at step {run.step}; "
                                    f"lower --lr or set --clip-norm. Last good checkpoint: {rd.last_good()}")
                continue
            bad_run = 0
            optim.clip_(grads, tcfg, norm)
            optim.update_(run.params, grads, run.opt_state, tcfg, lr)
            bar.update(1)
            run.trained = clock.seconds()
            if run.step % tcfg.log_every == 0:
                last = {"step": run.step, "loss": loss / max(count, 1), "lr": lr, "grad_norm": norm,
                        "items_per_s": round(items_per_step * (run.step - step0) / max(run.trained - t0, 1e-9), 1),
                        "time": round(run.trained, 3)}
                pending.append(last)
                bar.set_postfix(loss=f"{last['loss']:.3f}", refresh=False)
            out_of_time = tcfg.time_spent(run.trained) or run.step == stop_at
            if run.step % tcfg.eval_every == 0 or run.step == tcfg.max_steps or out_of_time or sig.caught:
                with clock.paused():                  # evaluation and checkpoints are not training time
                    val = eval_fn(run.params)
                    improved = run.best is None or val["score"] > run.best
                    if improved:
                        run.best = val["score"]
                    bar.write(f"step {run.step}: train {last.get('loss', float('nan')):.4f}  {val['line']}"
                              f"{'  (best)' if improved else ''}")
                    pending.append({"step": run.step, "time": round(run.trained, 3), "wall": round(clock.wall(), 3),
                                    **{k: v for k, v in val.items() if k not in ("line", "score")}})
                    rd.save(lambda path: store.save(path, run, last), improved)
                    rd.append(pending)
                    pending = []
                if sig.caught:
                    bar.close()
                    log(f"stopped at step {run.step}; checkpoint {rd.latest}; continue with --resume {rd.path}")
                    raise Interrupted(sig.caught)
                if out_of_time:
                    break
    bar.close()
    rd.append(pending)
    return {**val, "step": run.step, "best": run.best}
