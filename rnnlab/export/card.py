"""What every export reads: the checkpoint (a character model: task lm) and its model card.

    >>> snap, where = load_lm("runs/demo", "best")                 # doctest: +SKIP
    >>> dict(card(snap, where))["training steps"]                  # doctest: +SKIP
    '3,000'
"""
from __future__ import annotations

import math
from pathlib import Path

from .. import cells, checkpoint, snapshot
from ..errors import UserError


def load_lm(path, which: str = "best"):
    """(Snapshot, checkpoint path) of the character model at `path` (a run directory's best/latest, or a file).
    UserError for a missing or corrupt file and for a model of any other task."""
    where = checkpoint.resolve(path, which)
    snap = snapshot.load(where)
    if snap.mcfg.task != "lm":
        raise UserError(f"{where} is a {snap.mcfg.task} model; rnnlab export supports character models only "
                        f"(task lm, trained by rnnlab train)")
    return snap, where


def shown(sym) -> str:
    """A vocabulary symbol as the card shows it: control characters escaped, bytes as 0xNN."""
    if not isinstance(sym, str):
        return f"0x{sym:02X}" if sym < 32 or sym > 126 else chr(sym)
    return sym if sym.isprintable() else sym.encode("unicode_escape").decode("ascii")


def vocabulary(vocab, limit: int = 120) -> str:
    """'65 symbols (utf-8): \\n !&',-.3:;? ...' with at most `limit` symbols listed."""
    syms = "".join(shown(s) for s in vocab.symbols[:limit])
    more = f" ... (+{len(vocab) - limit})" if len(vocab) > limit else ""
    return f"{len(vocab)} symbols ({vocab.encoding}): {syms}{more}"


def card(snap, where) -> list:
    """[(field, text)]: the model card every export shows or stores (cell, sizes, vocabulary, steps, quality)."""
    m, row = snap.mcfg, cells.get(snap.mcfg.cell)
    n_params = sum(int(a.size) for a in snap.params.values())
    best = snap.best_val
    quality = (f"{best:.4f} nats/char ({best / math.log(2):.4f} bits/char)" if best is not None
               else "not measured (no validation in this run)")
    return [("cell", f"{m.cell}: {row.help}"),
            ("sizes", f"H={m.hidden_size}, L={m.num_layers}, "
                      f"{'embedding ' + str(m.embed_dim) if m.embed_dim else 'one-hot input'}, V={m.vocab_size}"),
            ("parameters", f"{n_params:,}"),
            ("vocabulary", vocabulary(snap.vocab)),
            ("training steps", f"{snap.step:,}"),
            ("best validation", quality),
            ("trained on", Path(snap.tcfg.data).name if snap.tcfg.data else "the embedded corpus"),
            ("checkpoint", Path(where).name)]
