"""What a checkpoint holds, and how a training run is packed into one and unpacked again.

Tensors (all NumPy, whatever the engine):
    param.<name>       the model, PyTorch names (param.rnn.weight_ih_l0, param.decoder.weight, ...)
    opt.<name>.<slot>  optimiser state, and opt.step
    state.h, state.c   the hidden state carried between batches (truncated BPTT), (L, N, H)
Metadata (JSON): model and train configs, vocabulary, step, best validation loss, the dropout RNG's state, the
engine that wrote it, and the data it was trained on. Everything needed to sample, evaluate or resume exactly.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import checkpoint
from .config import ModelConfig, TrainConfig, from_dict, to_dict
from .errors import UserError
from .text import Vocab


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


def save(path, snap: Snapshot, state_names=("h", "c")) -> None:
    tensors = {f"param.{k}": np.asarray(v) for k, v in snap.params.items()}
    tensors.update({f"opt.{k}": np.asarray(v) for k, v in snap.opt_state.items()})
    tensors.update({f"state.{n}": np.asarray(s) for n, s in zip(state_names, snap.state)})
    for name, arr in tensors.items():
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise RuntimeError(f"refusing to checkpoint non-finite values in {name}")   # a bug, never user input
    meta = {"model": to_dict(snap.mcfg), "train": to_dict(snap.tcfg), "vocab": snap.vocab.to_json(),
            "step": snap.step, "best_val": snap.best_val, "rng": snap.rng_state, **snap.extra}
    checkpoint.save(path, tensors, meta)


def load(path) -> Snapshot:
    tensors, meta = checkpoint.load(path)
    where = str(path)
    for key in ("model", "train", "vocab", "step"):
        if key not in meta:
            raise UserError(f"{where}: checkpoint metadata lacks {key!r}; the file is not a complete rnnlab checkpoint")
    mcfg = from_dict(ModelConfig, meta["model"], where)
    tcfg = from_dict(TrainConfig, meta["train"], where)
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
    state = tuple(group["state"][n] for n in ("h", "c") if n in group["state"])
    extra = {k: v for k, v in meta.items() if k not in ("model", "train", "vocab", "step", "best_val", "rng")}
    return Snapshot(mcfg, tcfg, vocab, group["param"], group["opt"], state, int(meta["step"]),
                    meta.get("best_val"), meta.get("rng"), extra)


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
