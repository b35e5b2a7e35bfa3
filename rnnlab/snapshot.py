"""What a checkpoint holds, and how a training run is packed into one and unpacked again.

Tensors (all NumPy, whatever the engine):
    param.<name>       the model, PyTorch names (param.rnn.weight_ih_l0, param.decoder.weight, ...)
    opt.<name>.<slot>  optimiser state, and opt.step
    state.h, state.c   the hidden state carried between batches (truncated BPTT), (L, N, H)
Metadata (JSON): model and train configs (the model's `task` says which network: lm, classify, seq2seq,
conditional), vocabulary, step, best validation loss and score, the dropout RNG's state, the engine that wrote it,
the data it was trained on and the task's own fields (labels, columns, ...). Everything needed to sample, evaluate,
predict or resume exactly. One loader for every task: `load(path, task)` checks that the file holds a `task`
model and every tensor's name and shape before use, so a checkpoint handed to the wrong command fails with one line
that names the right command.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import cells, checkpoint
from .config import ModelConfig, TrainConfig, from_dict, to_dict
from .errors import UserError
from .vocab import Vocab


@dataclass
class Snapshot:
    mcfg: ModelConfig
    tcfg: TrainConfig
    vocab: Vocab
    params: dict
    opt_state: dict = field(default_factory=dict)
    state: tuple = ()
    step: int = 0
    best_val: float | None = None
    rng_state: dict | None = None
    extra: dict = field(default_factory=dict)   # engine, data fingerprint, last metrics, task ...


COMMANDS = {"classify": "rnnlab predict RUN (and rnnlab classify --resume RUN)",
            "seq2seq": "rnnlab seq2seq predict RUN (and rnnlab seq2seq train --resume RUN)",
            "conditional": "rnnlab sample RUN --condition LABEL (and rnnlab train --resume RUN)",
            "lm": "rnnlab sample / rnnlab eval (and rnnlab train --resume RUN)"}


def describe(task: str, where) -> str:
    """The one-line error for a checkpoint handed to the wrong command."""
    kind = "character-model" if task == "lm" else task
    return f"{where} is a {kind} checkpoint, not one this command reads; use {COMMANDS.get(task, 'another command')}"


class NonFinite(RuntimeError):
    """A tensor to be saved holds inf or NaN: training diverged (the loop turns this into a UserError)."""


def save(path, snap: Snapshot, state_names=("h", "c")) -> None:
    tensors = {f"param.{k}": np.asarray(v) for k, v in snap.params.items()}
    tensors.update({f"opt.{k}": np.asarray(v) for k, v in snap.opt_state.items()})
    tensors.update({f"state.{n}": np.asarray(s) for n, s in zip(state_names, snap.state)})
    for name, arr in tensors.items():
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise NonFinite(f"non-finite values in {name}")   # never written: a checkpoint is always finite
    meta = {"model": to_dict(snap.mcfg), "train": to_dict(snap.tcfg), "vocab": snap.vocab.to_json(),
            "step": snap.step, "best_val": snap.best_val, "rng": snap.rng_state, **snap.extra}
    checkpoint.save(path, tensors, meta)


def _configs(meta: dict, where: str):
    """(ModelConfig, TrainConfig) of the metadata. A task checkpoint from before the model config knew its task
    (rnnlab 0.1) names the task in the metadata only: its config is completed from there."""
    for key in ("model", "train", "vocab", "step"):
        if key not in meta:
            raise UserError(f"{where}: checkpoint metadata lacks {key!r}; the file is not a complete rnnlab checkpoint")
    model = meta["model"]
    if isinstance(model, dict) and "task" not in model and meta.get("task", "lm") != "lm":
        model = {**model, "task": meta["task"], "num_labels": len(meta.get("labels") or ())}
    return from_dict(ModelConfig, model, where), from_dict(TrainConfig, meta["train"], where)


def load(path, task: str | None = None) -> Snapshot:
    """The checkpoint at `path` (a .safetensors file) as a Snapshot, checked whole; with `task`, a UserError naming
    the right command unless the file holds a model of that task."""
    tensors, meta = checkpoint.load(path)
    where = str(path)
    got = meta.get("task", "lm")
    if task is not None and got != task:
        raise UserError(describe(got, where))
    mcfg, tcfg = _configs(meta, where)
    vocab = Vocab.from_json(meta["vocab"])
    if len(vocab) != mcfg.vocab_size:
        raise UserError(f"{where}: vocabulary has {len(vocab)} symbols but the model expects {mcfg.vocab_size}; "
                        f"the checkpoint is corrupt")
    group = {"param": {}, "opt": {}, "state": {}}
    for name, arr in tensors.items():
        kind, _, rest = name.partition(".")
        if kind not in group:
            raise UserError(f"{where}: unexpected tensor {name!r}; the file is not an rnnlab checkpoint")
        group[kind][rest] = arr
    _check_params(group["param"], mcfg, where)
    _check_resume_parts(group, mcfg, tcfg, where)
    step, best_val, rng = meta["step"], meta.get("best_val"), meta.get("rng")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise UserError(f"{where}: its step {step!r} is not a whole number >= 0; the checkpoint is corrupt")
    if best_val is not None and (isinstance(best_val, bool) or not isinstance(best_val, (int, float))
                                 or not math.isfinite(best_val)):
        raise UserError(f"{where}: its best_val {best_val!r} is not a finite number; the checkpoint is corrupt")
    if rng is not None:
        _check_rng(rng, where)
    state = tuple(group["state"][n] for n in cells.get(mcfg.cell).state if n in group["state"])
    extra = {k: v for k, v in meta.items() if k not in ("model", "train", "vocab", "step", "best_val", "rng")}
    return Snapshot(mcfg, tcfg, vocab, group["param"], group["opt"], state, step, best_val, rng, extra)


def task_of(path) -> str | None:
    """The task a run directory or checkpoint was trained for ("lm" for character models), read from the JSON
    header alone (no tensor data, no checksum: a cheap look before routing a command); None when there is no
    readable header there, and the command's own loading then says why."""
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


def check_resumable(snap: Snapshot, where) -> None:
    """Resuming needs the optimiser state, the dropout RNG and (a character model) the carried hidden state, not
    just the weights."""
    if not snap.opt_state or (not snap.state and snap.mcfg.task == "lm") or snap.rng_state is None:
        raise UserError(f"{where} holds weights but not the optimiser state, hidden state and RNG needed to resume; "
                        f"sample or evaluate with it, or start a new run")


def _finite(name: str, a, where: str) -> None:
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise UserError(f"{where}: tensor {name} holds inf or NaN (rnnlab never saves those); the checkpoint is "
                        f"corrupt, use another one")


def _check_resume_parts(group: dict, mcfg: ModelConfig, tcfg: TrainConfig, where: str) -> None:
    """Optimiser and hidden state, when present, must be exactly what the configs imply, and every value finite:
    a file from a stranger (its checksum is consistent, it is not a signature) then fails here with one line,
    never inside the maths."""
    from .engines.numpy import model, optim
    for name, a in group["param"].items():
        _finite("param." + name, a, where)
    opt = group["opt"]
    if opt:
        expected = optim.init_state({k: np.empty(s, np.float32) for k, s in model.param_shapes(mcfg).items()}, tcfg)
        if set(opt) != set(expected):
            odd = sorted(set(opt) ^ set(expected))[:3]
            raise UserError(f"{where}: its optimiser state does not match --optimizer {tcfg.optimizer} ({odd} differ);"
                            f" the checkpoint is corrupt")
        for name, a in opt.items():
            if a.shape != expected[name].shape:
                raise UserError(f"{where}: opt.{name} has shape {a.shape}, expected {expected[name].shape}; "
                                f"the checkpoint is corrupt")
            _finite("opt." + name, a, where)
        if opt["step"].dtype.kind not in "iu" or int(opt["step"]) < 0:
            raise UserError(f"{where}: opt.step is not a whole number >= 0; the checkpoint is corrupt")
    state = group["state"]
    if state:
        names = cells.get(mcfg.cell).state
        shape = (mcfg.num_layers, tcfg.batch_size, mcfg.hidden_size)
        if set(state) != set(names) or any(state[n].shape != shape for n in names):
            raise UserError(f"{where}: its hidden state does not match the config (expected {', '.join(names)} of "
                            f"shape {shape}); the checkpoint is corrupt")
        for n in names:
            _finite("state." + n, state[n], where)


def _check_rng(rng_state, where: str) -> None:
    try:
        np.random.default_rng().bit_generator.state = rng_state
    except (TypeError, ValueError, KeyError, OverflowError):
        raise UserError(f"{where}: its RNG state is malformed; the checkpoint is corrupt") from None


def _check_params(params: dict, mcfg: ModelConfig, where: str) -> None:
    """Names and shapes must be exactly those the config implies, so a mismatched file fails here, not mid-matmul."""
    from .engines.numpy.model import param_shapes
    expected = param_shapes(mcfg)
    missing = sorted(set(expected) - set(params))
    extra = sorted(set(params) - set(expected))
    if missing or extra:
        raise UserError(f"{where}: parameters do not match the config (missing {missing[:3]}, unexpected {extra[:3]}); "
                        f"the checkpoint is corrupt or from another tool")
    for name, shape in expected.items():
        if params[name].shape != shape:
            raise UserError(f"{where}: parameter {name} has shape {params[name].shape}, config implies {shape}")
