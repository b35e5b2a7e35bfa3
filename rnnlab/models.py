"""Opening a trained model for use (sampling, evaluation, prediction, decoding) on any engine.

    >>> snap, engine, params = open_model("runs/demo", "lm", engine="numpy")      # doctest: +SKIP
"""
from __future__ import annotations

from . import checkpoint, snapshot
from .engines import make_engine


def open_model(path, task: str = "lm", which: str = "best", engine: str = "numpy", job: str = "eval",
               **engine_options):
    """(Snapshot, engine, params) of the checkpoint at `path` (a file, or a run directory's best/latest) holding a
    `task` model, its weights loaded into `engine` ("numpy", "torch" or "auto" for `job`: train, eval or sample).
    Raises UserError for a missing or corrupt file, a checkpoint of another task, or an engine that can't run."""
    snap = snapshot.load(checkpoint.resolve(path, which), task)
    eng = make_engine(engine, snap.mcfg, snap.tcfg, job, **engine_options)
    return snap, eng, eng.load_params(snap.params)
