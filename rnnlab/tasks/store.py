"""Checkpoints of the task commands: the core's safe format (snapshot.save -> checkpoint.save: safetensors + JSON
metadata, atomic, checksummed, never pickle), with the task named in the metadata.

Tensors: param.<name>, opt.<name>.<slot>, opt.step, as for the language model. Metadata: the core's (model and
train configs, vocabulary, step, RNG state) plus "task" ("classify", "seq2seq" or "conditional") and the task's own
fields (labels, columns, ...). Loading checks the task and every parameter's name and shape before use, so a
checkpoint of one task handed to another command fails with a one-line error that names the right command.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import checkpoint, snapshot
from ..config import ModelConfig, TrainConfig, from_dict
from ..errors import UserError
from ..text import Vocab
from ..run import saved_seconds

COMMANDS = {"classify": "rnnlab predict RUN (and rnnlab classify --resume RUN)",
            "seq2seq": "rnnlab seq2seq predict RUN (and rnnlab seq2seq train --resume RUN)",
            "conditional": "rnnlab sample RUN --condition LABEL (and rnnlab train --resume RUN)",
            "lm": "rnnlab sample / rnnlab eval (and rnnlab train --resume RUN)"}


def describe(task: str, where) -> str:
    """The one-line error for a checkpoint handed to the wrong command."""
    kind = "character-model" if task == "lm" else task
    return f"{where} is a {kind} checkpoint, not one this command reads; use {COMMANDS.get(task, 'another command')}"


@dataclass
class Run:
    """Everything a task's training run holds; what its checkpoint stores and gives back."""
    task: str
    mcfg: ModelConfig
    tcfg: TrainConfig
    vocab: Vocab
    params: dict
    opt_state: dict
    step: int = 0
    best: list | None = None                    # the best validation score so far (higher is better)
    rng: np.random.Generator | None = None      # dropout's generator
    info: dict = field(default_factory=dict)    # the task's own metadata: labels, columns, ...
    trained: float = 0.0                        # seconds of training so far (rnnlab.train.Clock)


def save(path, run: Run, metrics: dict | None = None) -> None:
    extra = {"task": run.task, "engine": "numpy", "best_score": run.best, "metrics": metrics or {},
             "train_seconds": round(run.trained, 3), **run.info}
    snapshot.save(path, snapshot.Snapshot(run.mcfg, run.tcfg, run.vocab, run.params, run.opt_state, (), run.step,
                                          None, run.rng.bit_generator.state if run.rng else None, extra), ())


def load(path, task: str, shapes, which: str = "best") -> Run:
    """Load a `task` checkpoint (a file, or a run directory's best/latest); shapes(mcfg, info) -> expected
    name -> shape of every parameter. The arrays come back as writable copies in the run's dtype."""
    p = checkpoint.resolve(path, which)
    tensors, meta = checkpoint.load(p)
    got = meta.get("task", "lm")
    if got != task:
        raise UserError(describe(got, p))
    for key in ("model", "train", "vocab", "step"):
        if key not in meta:
            raise UserError(f"{p}: checkpoint metadata lacks {key!r}; the file is not a complete rnnlab checkpoint")
    mcfg = from_dict(ModelConfig, meta["model"], str(p))
    tcfg = from_dict(TrainConfig, meta["train"], str(p))
    vocab = Vocab.from_json(meta["vocab"])
    info = {k: v for k, v in meta.items() if k not in ("model", "train", "vocab", "step", "best_val", "rng", "task",
                                                       "engine", "best_score", "metrics", "train_seconds")}
    dtype = np.dtype(tcfg.dtype)
    params = {k[6:]: np.array(v, dtype=dtype) for k, v in tensors.items() if k.startswith("param.")}
    opt = {k[4:]: np.array(v, dtype=v.dtype if k == "opt.step" else dtype)
           for k, v in tensors.items() if k.startswith("opt.")}
    expected = shapes(mcfg, info)
    if set(params) != set(expected) or any(params[k].shape != s for k, s in expected.items()):
        raise UserError(f"{p}: its parameters do not match its config ({sorted(set(params) ^ set(expected))[:3]} "
                        f"differ); the checkpoint is corrupt or from another tool")
    rng = None
    if meta.get("rng") is not None:
        rng = np.random.default_rng()
        try:
            rng.bit_generator.state = meta["rng"]
        except (TypeError, ValueError, KeyError):
            raise UserError(f"{p}: its random generator state is malformed; the checkpoint is corrupt") from None
    return Run(task, mcfg, tcfg, vocab, params, opt, int(meta["step"]), meta.get("best_score"), rng, info,
               saved_seconds(meta, p))


def task_of(path) -> str | None:
    """The task a run directory or checkpoint was trained for ("lm" for the core's models), read from the JSON
    header alone (no tensor data, no checksum: a cheap look before routing a command); None when there is no
    readable header there, and the command's own loading then says why."""
    import json
    from pathlib import Path
    p = Path(path)
    if p.is_dir():
        p = next((q for q in (p / "latest.safetensors", p / "best.safetensors") if q.is_file()), None)
    try:
        with open(p, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if not 0 < n <= checkpoint.MAX_HEADER:
                return None
            info = json.loads(json.loads(f.read(n))["__metadata__"]["rnnlab"])
        task = info["meta"].get("task", "lm")
        return task if isinstance(task, str) else None
    except (OSError, TypeError, KeyError, ValueError, AttributeError):
        return None
