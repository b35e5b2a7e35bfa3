"""Labelled tables for the task commands: CSV/TSV with selectable columns, padded batches with masks, splits.

A table is a UTF-8 file read with the core's checks (text.read_text: missing, empty, binary, not UTF-8 -> one-line
UserError). The delimiter comes from the extension (.tsv/.tab: tab, .csv: comma) or, otherwise, from the first line
(a tab there means TSV). TSV fields are taken literally (no quoting); CSV follows the csv module's quoting rules.

Columns are named or numbered (0-based). Naming a column means the first row is a header; with numbers only, every
row is data.

    >>> ids, mask = pad([[3, 1, 4], [1]])            # N = 2 sequences, T = 3 steps
    >>> ids.tolist(), mask.tolist()
    ([[3, 1, 4], [1, 0, 0]], [[True, True, True], [True, False, False]])
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..text import read_text


def _delimiter(path: Path, first_line: str, delimiter: str | None) -> str:
    if delimiter:
        if delimiter in ("tab", "\\t"):
            return "\t"
        if len(delimiter) != 1:
            raise UserError(f"--delimiter must be one character (or 'tab'), got {delimiter!r}")
        return delimiter
    ext = path.suffix.lower()
    if ext in (".tsv", ".tab"):
        return "\t"
    if ext == ".csv":
        return ","
    return "\t" if "\t" in first_line else ","


def read_table(path, columns: dict, delimiter: str | None = None) -> dict:
    """Read the columns named in `columns` (role -> name or 0-based index as str/int) from a CSV/TSV file.

    Returns role -> list of str, one entry per data row (blank lines are skipped). Every problem is a UserError:
    a column missing from the header, a row with too few fields, no data rows.
    """
    p = Path(path)
    raw = read_text(p)
    first = raw.split("\n", 1)[0]
    delim = _delimiter(p, first, delimiter)
    quoting = csv.QUOTE_NONE if delim == "\t" else csv.QUOTE_MINIMAL
    try:
        rows = [r for r in csv.reader(io.StringIO(raw, newline=""), delimiter=delim, quoting=quoting) if r]
    except csv.Error as e:
        raise UserError(f"{p}: not a valid {'TSV' if delim == chr(9) else 'CSV'} file ({e}); check the quoting "
                        f"or pass --delimiter") from None
    rows = [[f.rstrip("\r") for f in r] for r in rows]
    specs = {role: str(c) for role, c in columns.items()}
    named = {role: c for role, c in specs.items() if not c.isdigit()}
    show = "tab" if delim == "\t" else repr(delim)
    if named:
        if not rows:
            raise UserError(f"{p} has no rows; it needs a header row naming its columns, then data rows")
        header = rows[0]
        for role, name in named.items():
            if name not in header:
                raise UserError(f"{p}: no column {name!r} in the header {header[:8]} (delimiter {show}); name a "
                                f"header column with --{role}-column, or give a 0-based column number")
        index = {role: header.index(c) if role in named else int(c) for role, c in specs.items()}
        rows = rows[1:]
        first_line = 2
    else:
        index = {role: int(c) for role, c in specs.items()}
        first_line = 1
    if not rows:
        raise UserError(f"{p} has a header but no data rows; add rows below the header")
    need = max(index.values()) + 1
    out = {role: [] for role in index}
    for n, r in enumerate(rows):
        if len(r) < need:
            raise UserError(f"{p}: data row {n + first_line} has {len(r)} field(s) but column {need - 1} is needed "
                            f"(delimiter {show}); fix that row or choose other columns")
        for role, i in index.items():
            out[role].append(r[i])
    return out


def other_column(path, taken: str, delimiter: str | None = None) -> str:
    """The header's only column that is not `taken` (for --condition-column without --text-column)."""
    p = Path(path)
    first = read_text(p).split("\n", 1)[0].rstrip("\r")
    delim = _delimiter(p, first, delimiter)
    header = next(csv.reader([first], delimiter=delim, quoting=csv.QUOTE_NONE if delim == "\t" else
                             csv.QUOTE_MINIMAL), [])
    rest = [c for c in header if c != taken]
    if taken.isdigit() or len(header) != 2 or len(rest) != 1:
        raise UserError(f"{p}: cannot tell which column holds the text (header {header[:8]}); pass --text-column")
    return rest[0]


def encode_all(vocab, texts, what: str, unknown: str = "error") -> list:
    """Each text -> an int64 id array with the vocabulary; unseen characters are an error naming them (or skipped)."""
    try:
        return [np.asarray(vocab.encode(t, unknown=unknown), dtype=np.int64) for t in texts]
    except UserError as e:
        reason = str(e).split(";")[0].replace("text has", f"the {what} has", 1)
        raise UserError(f"{reason}; the model never saw them: remove them, or pass --unknown skip") from None


def pad(seqs, pad_id: int = 0, min_len: int = 1):
    """Pad id sequences to one (N, T) int64 array; T = the longest (at least min_len). Returns (ids, mask)
    with mask[n, t] True where step t of sequence n is real and False on padding."""
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)                 # (N,)
    T = max(int(lengths.max(initial=0)), min_len)
    ids = np.full((len(seqs), T), pad_id, dtype=np.int64)                       # (N, T)
    for n, s in enumerate(seqs):
        ids[n, :len(s)] = s
    mask = np.arange(T)[None, :] < lengths[:, None]                             # (N, T) bool
    return ids, mask


def split(n: int, val_frac: float, seed: int):
    """A seeded random split of n rows: (train indices, val indices). Validation gets round(n * val_frac) rows
    (at least 1 when val_frac > 0); training keeps at least one."""
    if n < 1:
        raise UserError("the table has no rows to train on")
    order = np.random.default_rng([seed, 7]).permutation(n)
    n_val = 0 if val_frac == 0 else min(n - 1, max(1, round(n * val_frac)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def batch_rows(n: int, batch_size: int, step: int, seed: int) -> np.ndarray:
    """Row indices (0..n-1) of training batch `step`: each epoch is a fresh seeded permutation, cut into
    max(1, n // batch_size) batches. A pure function of the step, so a resumed run reads the same batches."""
    per_epoch = max(1, n // batch_size)
    epoch, b = divmod(step, per_epoch)
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    return perm[b * batch_size:(b + 1) * batch_size]


def write_tsv(path, header, rows) -> int:
    """Write `header` and `rows` (tuples of str without tabs or newlines) as TSV, atomically; refuses to overwrite."""
    p = Path(path)
    if p.exists():
        raise UserError(f"{p} already exists; choose another --out or delete it first")
    if p.parent and not p.parent.exists():
        raise UserError(f"folder {p.parent} does not exist; create it or choose another --out")
    lines = ["\t".join(header)] + ["\t".join(r) for r in rows]
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(tmp, p)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write {p}: {e.strerror or e}; choose a writable --out") from None
    return len(rows)


def play_to_rows(text: str, top: int = 0, unit: str = "line") -> list:
    """A play in tinyshakespeare's layout (blocks separated by blank lines, each starting with 'NAME:') ->
    (speaker, text) rows: one per line of verse (unit='line') or per speech (unit='speech', lines joined by ' ').
    top > 0 keeps the `top` speakers with the most lines. Rows keep the play's order."""
    if unit not in ("line", "speech"):
        raise UserError(f"--unit must be 'line' or 'speech', got {unit!r}")
    rows = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = [ln for ln in block.split("\n") if ln.strip()]
        if len(lines) < 2 or not lines[0].endswith(":") or "\t" in lines[0]:
            continue
        speaker = lines[0][:-1].strip()
        speech = [ln.replace("\t", " ").strip() for ln in lines[1:]]
        rows.extend([(speaker, ln) for ln in speech] if unit == "line" else [(speaker, " ".join(speech))])
    if not rows:
        raise UserError("found no speeches (a block whose first line is 'NAME:'); the file is not laid out like "
                        "tinyshakespeare")
    if top:
        counts = {}
        for s, _ in rows:
            counts[s] = counts.get(s, 0) + 1
        keep = set(sorted(counts, key=lambda s: (-counts[s], s))[:top])
        rows = [r for r in rows if r[0] in keep]
    return rows
