"""Text -> ids -> batches.

A corpus is read either as UTF-8 text (one id per Unicode code point) or as raw bytes (one id per byte value).
Every problem a person can fix (missing file, binary data, wrong encoding, too little text) is a one-line
UserError that says what is wrong and how to fix it.

Large corpora are streamed: `build_vocab_streaming` scans a file in chunks, `encode_file` writes its ids to a raw
file of `vocab.dtype` values and `load_ids` memory-maps that file. Chunked and whole-file reading share one code
path (`_iter_chunks`, an incremental UTF-8 decoder), so they give identical ids.
"""

import codecs
import os
from pathlib import Path

import numpy as np

from rnnlab.errors import UserError

ENCODINGS = ("utf-8", "bytes")
_BOMS = [  # longest first: the UTF-32-LE BOM starts with the UTF-16-LE one
    (codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"),
]
_BYTES_HINT = "train on raw bytes with --encoding bytes"


def _show(path) -> str:
    """A path for a one-line message (newlines and other control characters escaped)."""
    s = str(path)
    return repr(s) if not s.isprintable() else f"'{s}'"


def _check_encoding(encoding):
    if encoding not in ENCODINGS:
        raise UserError(f"unknown text encoding {encoding!r}; use --encoding utf-8 or --encoding bytes")


def _open(path):
    p = Path(path)
    if not p.exists():
        raise UserError(f"text file {_show(p)} does not exist; check the path given to --data")
    if p.is_dir():
        raise UserError(f"{_show(p)} is a directory, not a text file; pass a file to --data")
    try:
        return open(p, "rb")
    except PermissionError:
        raise UserError(f"cannot read {_show(p)}: permission denied; fix its permissions (chmod +r) "
                        "or copy it somewhere readable") from None
    except OSError as e:
        raise UserError(f"cannot read {_show(p)}: {e.strerror or e}; check the path given to --data") from None


def _iter_chunks(path, encoding="utf-8", chunk_bytes=1 << 24):
    """Yield the file's content as str pieces (utf-8) or bytes pieces (bytes), checking it on the way.

    utf-8 mode rejects UTF-16/32 byte-order marks, NUL bytes and invalid UTF-8 (naming the byte offset) and drops
    one leading UTF-8 BOM. Nothing else is altered (CRLF stays). An empty file is an error in both modes.
    """
    _check_encoding(encoding)
    if chunk_bytes < 1:
        raise ValueError("chunk_bytes must be >= 1")
    p = Path(path)
    with _open(p) as f:
        try:
            head = f.read(4)
            if not head:
                raise UserError(f"text file {_show(p)} is empty; pass a file with some text in it")
            start = 0
            if encoding == "utf-8":
                for bom, name in _BOMS:
                    if head.startswith(bom):
                        raise UserError(f"{_show(p)} is {name} text (it starts with a {name} byte-order mark), "
                                        f"not UTF-8; convert it with `iconv -f {name} -t UTF-8` or "
                                        f"{_BYTES_HINT}")
                if head.startswith(codecs.BOM_UTF8):
                    start = 3
            f.seek(start)
            if encoding == "bytes":
                while chunk := f.read(chunk_bytes):
                    yield chunk
                return
            offset, produced = start, False  # offset: absolute file offset of the next byte read
            decoder = codecs.getincrementaldecoder("utf-8")("strict")
            while True:
                chunk = f.read(chunk_bytes)
                final = not chunk
                nul = chunk.find(b"\x00")
                if nul >= 0:
                    raise UserError(f"{_show(p)} contains a NUL byte at byte {offset + nul}, so it looks like a "
                                    f"binary file rather than UTF-8 text; if that is intended, {_BYTES_HINT}")
                pending = len(decoder.getstate()[0])
                try:
                    text = decoder.decode(chunk, final=final)
                except UnicodeDecodeError as e:
                    at = offset - pending + e.start
                    bad = e.object[e.start]
                    hint = ("; bytes 0x80-0x9F are typical of Windows-1252 text: convert it with "
                            "`iconv -f CP1252 -t UTF-8`, or" if 0x80 <= bad <= 0x9F else "; if this is not UTF-8 text,")
                    raise UserError(f"{_show(p)} is not valid UTF-8: invalid UTF-8 at byte {at} (0x{bad:02X})"
                                    f"{hint} {_BYTES_HINT}") from None
                offset += len(chunk)
                if text:
                    produced = True
                    yield text
                if final:
                    break
            if not produced:
                raise UserError(f"text file {_show(p)} is empty; pass a file with some text in it")
        except OSError as e:
            raise UserError(f"cannot read {_show(p)}: {e.strerror or e}; check the file and try again") from None


def read_text(path, encoding="utf-8"):
    """Read a whole corpus: str in utf-8 mode (leading BOM dropped), the raw bytes in bytes mode."""
    pieces = list(_iter_chunks(path, encoding, chunk_bytes=1 << 30))
    return (b"" if encoding == "bytes" else "").join(pieces)


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
        _check_encoding(encoding)
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
        for chunk in _iter_chunks(path, encoding, chunk_bytes):
            seen[np.frombuffer(chunk, dtype=np.uint8)] = True
        return Vocab(np.flatnonzero(seen).tolist(), "bytes")
    chars = set()
    for chunk in _iter_chunks(path, encoding, chunk_bytes):
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
            for chunk in _iter_chunks(path, encoding, chunk_bytes):
                ids = vocab.encode(chunk)
                f.write(ids.tobytes())
                n += len(ids)
        os.replace(tmp, out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write ids to {_show(out)}: {e.strerror or e}; free disk space or choose a "
                        "writable folder") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n


def load_ids(path, dtype) -> np.ndarray:
    """Memory-map a raw id file written by encode_file (read-only)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"id file {_show(p)} does not exist; encode the text first")
    dtype = np.dtype(dtype)
    size = p.stat().st_size
    if size == 0 or size % dtype.itemsize:
        raise UserError(f"id file {_show(p)} has {size} bytes, not a whole number (> 0) of {dtype} ids; "
                        "re-encode the text")
    return np.memmap(p, dtype=dtype, mode="r")


def split(ids, val_frac=0.1):
    """(train, val) views: train = ids[:n_train], val = ids[n_train:] with n_train = int(len(ids) * (1 - val_frac)).

    Contiguous, validation is the LAST part (nanoGPT's data[:int(n*0.9)] rule); val_frac=0 gives an empty val.
    """
    if not 0 <= val_frac < 1:
        raise UserError(f"validation fraction {val_frac} is out of range; use a value in [0, 1), e.g. 0.1")
    n_train = int(len(ids) * (1 - val_frac))
    return ids[:n_train], ids[n_train:]


class Streams:
    """Truncated-BPTT batching (as in torch-rnn): N parallel contiguous streams read T steps at a time.

    The ids are cut into N streams of length L = (len(ids) - 1) // N (the tail is dropped); stream i covers
    ids[i*L : i*L + L + 1] (one extra id so the last target exists). num_batches = L // T. batch(b) returns
    x = streams[:, b*T : b*T+T] and y = streams[:, b*T+1 : b*T+T+1], both int64 of shape (N, T). Row i of batch
    b+1 continues row i of batch b, so the training loop carries the hidden state from batch to batch and resets
    it at b == 0. Works on memmaps: only the requested (N, T) window is read.
    """

    def __init__(self, ids, n_streams, seq_len):
        for name, v, flag in (("number of streams", n_streams, "--batch-size"), ("sequence length", seq_len,
                                                                                  "--seq-len")):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise UserError(f"{name} must be a positive integer, got {v!r}; set {flag} to 1 or more")
        ids = np.asarray(ids)
        if ids.ndim != 1:
            raise ValueError("ids must be 1-D")
        if not ids.flags.c_contiguous:
            ids = np.ascontiguousarray(ids)
        self.n_streams, self.seq_len = int(n_streams), int(seq_len)
        N, T = self.n_streams, self.seq_len
        self.stream_len = L = max(len(ids) - 1, 0) // N
        self.num_batches = L // T
        if self.num_batches == 0:
            raise UserError(f"the text is too short for one batch: {N} streams x {T} steps need {N * T + 1} "
                            f"characters but only {len(ids)} are present; use a smaller --batch-size or "
                            "--seq-len, or more text")
        self._data = np.lib.stride_tricks.as_strided(
            ids, shape=(N, L + 1), strides=(L * ids.itemsize, ids.itemsize), writeable=False)

    def __len__(self):
        return self.num_batches

    def batch(self, b):
        if not 0 <= b < self.num_batches:
            raise IndexError(f"batch {b} out of range 0..{self.num_batches - 1}")
        T = self.seq_len
        x = self._data[:, b * T: b * T + T].astype(np.int64)
        y = self._data[:, b * T + 1: b * T + T + 1].astype(np.int64)
        return x, y

    def __iter__(self):
        return (self.batch(b) for b in range(self.num_batches))


def embedded_corpus() -> str:
    """Real prose every Python has: CPython's documentation topics (`pydoc_data.topics.topics`, the text behind
    `help('topic')`), joined in sorted key order with blank lines."""
    try:
        from pydoc_data.topics import topics
    except ImportError:
        topics = None
    if not isinstance(topics, dict) or not topics:
        raise UserError("the embedded corpus (pydoc_data.topics) is missing from this Python install; "
                        "train on your own text with --data FILE")
    return "\n\n".join(topics[k] for k in sorted(topics))
