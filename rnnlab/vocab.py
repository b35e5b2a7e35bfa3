"""Symbols <-> ids: the vocabulary, and a corpus file as a memory-mapped file of ids.

`Vocab` maps the symbols of a text (characters in utf-8 mode, byte values in bytes mode) to ids and back.
`build_vocab_streaming` scans a file in chunks, `encode_file` writes its ids to a raw file of `vocab.dtype` values
and `load_ids` memory-maps that file. The first two read through text.iter_chunks, the code path of
text.read_text, so they give the vocabulary and ids of Vocab.from_text(read_text(path)).
"""

import os
from pathlib import Path

import numpy as np

from rnnlab.errors import UserError
from rnnlab.text import ENCODINGS, check_encoding, iter_chunks, show_path


def _sym_repr(s) -> str:
    return f"0x{s:02X}" if isinstance(s, int) else f"{s!r} (U+{ord(s):04X})"


def _listing(symbols, limit=20) -> str:
    shown = ", ".join(_sym_repr(s) for s in symbols[:limit])
    return shown + (f", ... ({len(symbols) - limit} more)" if len(symbols) > limit else "")


class Vocab:
    """A sorted list of symbols; a symbol's id is its index.

    utf-8 mode: symbols are one-character strs sorted by code point. bytes mode: symbols are the ints 0..255 that
    occur in the data, ascending. `Vocab(symbols, encoding)` requires them strictly increasing (the order defines the
    ids, so it is never silently re-sorted); `Vocab.from_text` builds one from data.
    """

    def __init__(self, symbols, encoding="utf-8"):
        check_encoding(encoding)
        symbols = list(symbols)
        kind = "a single character" if encoding == "utf-8" else "a byte value 0..255"
        for s in symbols:
            if not (isinstance(s, str) and len(s) == 1 if encoding == "utf-8" else
                    isinstance(s, (int, np.integer)) and not isinstance(s, bool) and 0 <= s <= 255):
                raise UserError(f"vocabulary symbol {s!r} is not {kind}; the vocabulary is corrupt, "
                                "rebuild it from the training text")
        if encoding == "bytes":
            symbols = [int(s) for s in symbols]
        if any(a >= b for a, b in zip(symbols, symbols[1:])):
            raise UserError("vocabulary symbols are not sorted and unique; the vocabulary is corrupt, "
                            "rebuild it from the training text")
        self.symbols = symbols
        self.encoding = encoding
        if encoding == "utf-8":
            self._codes = np.array([ord(s) for s in symbols], dtype=np.uint32)
        else:
            self._table = np.full(256, -1, dtype=np.int64)
            self._table[symbols] = np.arange(len(symbols))

    @classmethod
    def from_text(cls, data):
        """Vocabulary of a str (utf-8 mode) or of bytes-like data (bytes mode)."""
        if isinstance(data, str):
            return cls(sorted(set(data)), "utf-8")
        arr = np.frombuffer(bytes(data) if not isinstance(data, bytes) else data, dtype=np.uint8)
        return cls(np.unique(arr).tolist(), "bytes")

    def __len__(self):
        return len(self.symbols)

    def __eq__(self, other):
        return isinstance(other, Vocab) and (self.encoding, self.symbols) == (other.encoding, other.symbols)

    def __repr__(self):
        return f"Vocab({len(self)} symbols, encoding={self.encoding!r})"

    @property
    def dtype(self):
        """Smallest unsigned dtype holding every id: uint8 up to 256 symbols, uint16 up to 65536, else uint32."""
        n = len(self)
        return np.dtype(np.uint8 if n <= 256 else np.uint16 if n <= 65536 else np.uint32)

    def encode(self, text, unknown="error") -> np.ndarray:
        """Ids (as `self.dtype`) of a str (utf-8 mode) or bytes (bytes mode; a str is UTF-8 encoded first).

        unknown="error" raises UserError listing up to 20 symbols not in the vocabulary; "skip" drops them.
        """
        if unknown not in ("error", "skip"):
            raise ValueError(f"unknown must be 'error' or 'skip', not {unknown!r}")
        if self.encoding == "utf-8":
            if not isinstance(text, str):
                raise TypeError("a utf-8 vocabulary encodes str")
            codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
            idx = np.minimum(np.searchsorted(self._codes, codes), max(len(self) - 1, 0))
            ok = (self._codes[idx] == codes) if len(self) else np.zeros(len(codes), bool)
            missing = lambda: [chr(c) for c in np.unique(codes[~ok]).tolist()]  # noqa: E731
        else:
            raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
            codes = np.frombuffer(raw, dtype=np.uint8)
            idx = self._table[codes]
            ok = idx >= 0
            missing = lambda: np.unique(codes[~ok]).tolist()  # noqa: E731
        if not ok.all():
            if unknown == "skip":
                idx = idx[ok]
            else:
                unseen = missing()
                kind = "character" if self.encoding == "utf-8" else "byte value"
                kind += "s" if len(unseen) != 1 else ""
                raise UserError(f"text has {len(unseen)} {kind} not in the vocabulary: {_listing(unseen)}; "
                                "remove them, skip them, or train on a text that contains them")
        return idx.astype(self.dtype)

    def decode(self, ids) -> str:
        """Text of an id sequence; in bytes mode the bytes are decoded as UTF-8 with errors="replace"."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            bad = int(ids[(ids < 0) | (ids >= len(self))][0])
            raise UserError(f"id {bad} is out of range for a vocabulary of {len(self)} symbols; "
                            "use the vocabulary saved with the model that produced these ids")
        if self.encoding == "utf-8":
            return self._codes[ids].astype("<u4", copy=False).tobytes().decode("utf-32-le", "surrogatepass")
        return np.asarray(self.symbols, dtype=np.uint8)[ids].tobytes().decode("utf-8", errors="replace")

    def to_json(self) -> dict:
        return {"encoding": self.encoding, "symbols": list(self.symbols)}

    @classmethod
    def from_json(cls, d):
        if not isinstance(d, dict) or not isinstance(d.get("symbols"), list) or d.get("encoding") not in ENCODINGS:
            raise UserError("malformed vocabulary: expected {\"encoding\": \"utf-8\"|\"bytes\", \"symbols\": [...]}; "
                            "the checkpoint is corrupt, use another one or retrain")
        return cls(d["symbols"], d["encoding"])

    def diff(self, other) -> str:
        """How `other` differs from this vocabulary ("" when identical): symbols it adds and removes."""
        if self.encoding != other.encoding:
            return f"encoding differs: {self.encoding} vs {other.encoding}"
        mine, theirs = set(self.symbols), set(other.symbols)
        parts = []
        for label, syms in (("added", sorted(theirs - mine)), ("removed", sorted(mine - theirs))):
            if syms:
                parts.append(f"{len(syms)} {label}: {_listing(syms)}")
        return "; ".join(parts)


def build_vocab_streaming(path, encoding="utf-8", chunk_bytes=1 << 24) -> Vocab:
    """Vocabulary of a file, read in chunks (same checks and result as Vocab.from_text(read_text(path)))."""
    if encoding == "bytes":
        seen = np.zeros(256, dtype=bool)
        for chunk in iter_chunks(path, encoding, chunk_bytes):
            seen[np.frombuffer(chunk, dtype=np.uint8)] = True
        return Vocab(np.flatnonzero(seen).tolist(), "bytes")
    chars = set()
    for chunk in iter_chunks(path, encoding, chunk_bytes):
        chars.update(chunk)
    return Vocab(sorted(chars), "utf-8")


def encode_file(path, vocab, out_path, encoding=None, chunk_bytes=1 << 24) -> int:
    """Stream a text file into a raw file of `vocab.dtype` ids (native byte order); return the id count.

    encoding defaults to the vocabulary's. The output is written to a temporary file and renamed into place.
    """
    encoding = encoding or vocab.encoding
    if encoding != vocab.encoding:
        raise UserError(f"cannot encode {encoding} text with a {vocab.encoding} vocabulary; "
                        f"use --encoding {vocab.encoding}")
    out = Path(out_path)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    n = 0
    try:
        with open(tmp, "wb") as f:
            for chunk in iter_chunks(path, encoding, chunk_bytes):
                ids = vocab.encode(chunk)
                f.write(ids.tobytes())
                n += len(ids)
        os.replace(tmp, out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write ids to {show_path(out)}: {e.strerror or e}; free disk space or choose a "
                        "writable folder") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n


def load_ids(path, dtype) -> np.ndarray:
    """Memory-map a raw id file written by encode_file (read-only)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"id file {show_path(p)} does not exist; encode the text first")
    dtype = np.dtype(dtype)
    size = p.stat().st_size
    if size == 0 or size % dtype.itemsize:
        raise UserError(f"id file {show_path(p)} has {size} bytes, not a whole number (> 0) of {dtype} ids; "
                        "re-encode the text")
    return np.memmap(p, dtype=dtype, mode="r")
