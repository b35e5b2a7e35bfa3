"""Fine-tuning: a new character-model run that starts from a trained model's weights (`rnnlab train --init-from`).

The new run keeps the source's network (cell, sizes, layers, embedding) and takes everything else from its own
flags: a fresh optimiser state, its own schedule and budget, its own text. Its vocabulary is the source's symbols
plus the characters of the new text the source never saw; ids are re-sorted, so every parameter with a vocabulary
axis is re-indexed:

    encoder.weight (V, D) rows    rnn.weight_ih_l0 (G*H, V) columns (one-hot input)    decoder.weight (V, H) rows
    decoder.bias (V,)

A symbol the source knows keeps its trained row or column; a new one gets the row a fresh model of the new
vocabulary would have (the same seeded initialisation as `rnnlab train`); characters the new text lacks keep
theirs. Everything else is copied unchanged. The source (path and step) is recorded in the run's metadata.

    >>> from rnnlab.vocab import Vocab
    >>> old, new = Vocab(list("ab")), Vocab(list("abc"))
    >>> fresh = {"decoder.bias": np.zeros(3)}
    >>> grow(fresh, {"decoder.bias": np.array([1.0, 2.0])}, old, new, embed_dim=8)["decoder.bias"].tolist()
    [1.0, 2.0, 0.0]
"""
from __future__ import annotations

import numpy as np

from . import checkpoint, snapshot
from .config import replace
from .errors import UserError

ARCHITECTURE = ("cell", "hidden_size", "num_layers", "embed_dim")


def load_source(path, which: str = "best"):
    """The snapshot of the character model to start from (a run directory or a .safetensors checkpoint)."""
    return snapshot.load(checkpoint.resolve(path, which), "lm")


def model_config(src_mcfg, flags: dict):
    """The new run's ModelConfig: the source's network, with --dropout if given. `flags` are the config flags
    given explicitly; one that would change the network is a UserError."""
    clash = sorted(k for k in ARCHITECTURE if k in flags and flags[k] != getattr(src_mcfg, k))
    if clash:
        raise UserError(f"{', '.join('--' + k.replace('_', '-') for k in clash)} cannot be given with --init-from: "
                        f"the new run keeps the source's network; drop the flag, or train a new model without "
                        f"--init-from")
    return replace(src_mcfg, dropout=flags.get("dropout", src_mcfg.dropout))


def grow(fresh: dict, src: dict, old_vocab, new_vocab, embed_dim: int) -> dict:
    """The new run's parameters: `fresh` (a new model of new_vocab, NumPy arrays) with every row or column of a
    symbol the source knows, and every other parameter, taken from `src`. Returns `fresh`, filled in."""
    index = {s: i for i, s in enumerate(new_vocab.symbols)}
    old_ids = np.arange(len(old_vocab))
    new_ids = np.array([index[s] for s in old_vocab.symbols], dtype=np.int64)   # where each old symbol went
    for name, a in src.items():
        if name in ("encoder.weight", "decoder.weight", "decoder.bias"):
            fresh[name][new_ids] = a[old_ids]                              # rows: one per symbol
        elif name == "rnn.weight_ih_l0" and not embed_dim:
            fresh[name][:, new_ids] = a[:, old_ids]                        # columns: one per one-hot input
        else:
            fresh[name][...] = a
    return fresh
