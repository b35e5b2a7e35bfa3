"""Where a training run stands, and how it gets there: a fresh start, a checkpoint restored bit for bit, or a
checkpoint restored with a change of course; and the checkpoint that records it.

A change of course is a resume with flags (`rnnlab train --resume RUN --lr 1e-4 --schedule cosine`): every field
outside config.FIXED_ON_RESUME may change. What follows from a change:
    optimizer (or slots that another setting adds)   a fresh optimiser state (its step count restarts at 0)
    batch_size, seq_len or data (character model)     the carried hidden state restarts at zeros
    anything else                                     nothing: the next step simply uses the new value
Each change is a row {"step", "changed": {field: [old, new]}} in metrics.jsonl and an entry in the checkpoint's
"history", so a run says how it was steered. With no change a resume is the uninterrupted run, bit for bit.
The engine and precision a run last ran with are kept too (`flags`): a resume goes on with them unless told
otherwise (run_flags), and a move is a change of course like the others (moved).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import snapshot
from .engines import ENGINES
from .engines.numpy import optim
from .errors import UserError

RESTART_STATE = ("batch_size", "seq_len", "data")


@dataclass
class Progress:
    """Everything a checkpoint stores besides the configs."""
    params: object
    opt_state: object
    state: object              # the lm's carried state; None for the task shapes
    step: int = 0
    best: list | None = None   # the best evaluation score so far
    rng: np.random.Generator = field(default_factory=np.random.default_rng)
    trained: float = 0.0       # seconds of training over the whole run
    first_loss: float | None = None   # the run's first training loss: what --max-loss-ratio compares with
    stale: int = 0             # evaluations since the best one (--patience)
    history: list = field(default_factory=list)   # the changes of course: [{"step", "changed"}]
    flags: dict = field(default_factory=dict)     # --engine/--precision it last ran with: a resume's defaults


def start(engine, setup, tcfg, snap, run, changed: dict | None = None) -> Progress:
    """A fresh run's starting point (seeded initialisation, then setup.init), or the checkpoint's."""
    carries = bool(setup.job.passes)
    if snap is None:
        params = engine.init_params(tcfg.seed)
        if setup.init is not None:
            params = engine.load_params(setup.init(engine.export(params)))
        return Progress(params, engine.init_opt_state(params), engine.zero_state(tcfg.batch_size) if carries else None,
                        rng=np.random.default_rng(tcfg.seed + 1))
    changed = changed or {}
    rng = np.random.default_rng()
    rng.bit_generator.state = snap.rng_state
    run.truncate_metrics(snap.step)
    params = engine.load_params(snap.params)
    fresh_opt = set(snap.opt_state) != set(optim.init_state(snap.params, tcfg))   # another optimiser's slots
    opt_state = engine.init_opt_state(params) if fresh_opt else engine.load_opt_state(snap.opt_state)
    state = None
    if carries:
        restart = any(k in changed for k in RESTART_STATE)
        state = engine.zero_state(tcfg.batch_size) if restart else engine.load_state(snap.state)
    best = snap.extra.get("best_score")
    if best is None and snap.best_val is not None:
        best = [-snap.best_val]
    history = snap.extra.get("history") or []
    if not isinstance(history, list):
        raise UserError(f"{run.latest}: its history is not a list; the checkpoint is corrupt")
    history = list(history)
    if changed:
        history.append({"step": snap.step, "changed": changed})
    return Progress(params, opt_state, state, snap.step, best, rng, run.saved_seconds(snap.extra),
                    _checked(snap.extra, "first_loss", (int, float), None, run.latest),
                    _checked(snap.extra, "stale", int, 0, run.latest), history)


def _checked(extra: dict, key: str, kinds, default, where):
    """extra[key] when it is of `kinds` (finite, >= 0), else a UserError: the checkpoint is corrupt."""
    v = extra.get(key, default)
    if v is default:
        return v
    if isinstance(v, bool) or not isinstance(v, kinds) or not 0 <= v < float("inf"):
        raise UserError(f"{where}: its {key} {v!r} is not a number >= 0; the checkpoint is corrupt")
    return v


def write(path, engine, setup, tcfg, p: Progress, metrics: dict) -> None:
    """One checkpoint of the run as it stands; snapshot.NonFinite when a weight is not (the update overflowed)."""
    best_val = -p.best[0] if p.best and setup.mcfg.task == "lm" else None
    extra = {**setup.info, "task": setup.mcfg.task, "engine": engine.name, "metrics": metrics,
             "best_score": p.best, "train_seconds": round(p.trained, 3), "first_loss": p.first_loss,
             "stale": p.stale, "history": p.history, "flags": p.flags}
    state = engine.export_state(p.state) if p.state is not None else ()
    snapshot.save(path, snapshot.Snapshot(setup.mcfg, tcfg, setup.vocab, engine.export(p.params),
                                          engine.export(p.opt_state), state, p.step, best_val,
                                          p.rng.bit_generator.state, extra), engine.state_names)


def run_flags(engine: str | None, options: dict, snap) -> tuple:
    """(engine, options) to build the engine with. A new run: as given (no --engine: numpy). A resumed run goes on
    as it last ran: its --engine unless one is given (auto is chosen again, for this machine), and its --precision
    unless one is given or the engine is now numpy (checkpoints from before this was kept: the engine that ran)."""
    if snap is None:
        return engine or "numpy", options
    flags = last_flags(snap)
    engine = engine or flags["engine"]
    if not options.get("precision") and engine != "numpy" and isinstance(flags.get("precision"), str):
        options = {**options, "precision": flags["precision"]}     # kept on a move to torch/auto too
    return engine, options


def last_flags(snap) -> dict:
    """The --engine/--precision a checkpoint's run last ran with (older checkpoints: the engine that ran)."""
    flags = snap.extra.get("flags")
    flags = dict(flags) if isinstance(flags, dict) else {"engine": snap.extra.get("engine")}
    flags["engine"] = flags.get("engine") if flags.get("engine") in ENGINES else "numpy"
    return flags


def moved(snap, flags: dict) -> dict:
    """{"engine": [old, new], "precision": [...]} where this resume runs otherwise than the run last ran: a change
    of course like any other (printed, logged, kept in the history)."""
    last = last_flags(snap)
    return {k: [last.get(k), v] for k, v in flags.items() if k in last and last.get(k) != v}
