"""Text files -> str or bytes, checked: the one place rnnlab reads a corpus, and the embedded corpus.

A corpus is read either as UTF-8 text (one id per Unicode code point) or as raw bytes (one id per byte value).
Every problem a person can fix (missing file, binary data, wrong encoding, too little text) is a one-line
UserError that says what is wrong and how to fix it.

Large corpora are streamed: `iter_chunks` reads a file in chunks through an incremental UTF-8 decoder, and
`read_text` is the same path with one big chunk, so chunked and whole-file reading give identical text. The
vocabulary and id files built from it are in vocab.py; the training batches in streams.py.
"""

import codecs
from pathlib import Path

from rnnlab.errors import UserError

ENCODINGS = ("utf-8", "bytes")
_BOMS = [  # longest first: the UTF-32-LE BOM starts with the UTF-16-LE one
    (codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"),
]
_BYTES_HINT = "train on raw bytes with --encoding bytes"


def show_path(path) -> str:
    """A path for a one-line message (newlines and other control characters escaped)."""
    s = str(path)
    return repr(s) if not s.isprintable() else f"'{s}'"


def check_encoding(encoding):
    """UserError unless `encoding` is one of ENCODINGS."""
    if encoding not in ENCODINGS:
        raise UserError(f"unknown text encoding {encoding!r}; use --encoding utf-8 or --encoding bytes")


def _open(path):
    p = Path(path)
    if not p.exists():
        raise UserError(f"text file {show_path(p)} does not exist; check the path given to --data")
    if p.is_dir():
        raise UserError(f"{show_path(p)} is a directory, not a text file; pass a file to --data")
    try:
        return open(p, "rb")
    except PermissionError:
        raise UserError(f"cannot read {show_path(p)}: permission denied; fix its permissions (chmod +r) "
                        "or copy it somewhere readable") from None
    except OSError as e:
        raise UserError(f"cannot read {show_path(p)}: {e.strerror or e}; check the path given to --data") from None


def iter_chunks(path, encoding="utf-8", chunk_bytes=1 << 24):
    """Yield the file's content as str pieces (utf-8) or bytes pieces (bytes), checking it on the way.

    utf-8 mode rejects UTF-16/32 byte-order marks, NUL bytes and invalid UTF-8 (naming the byte offset) and drops
    one leading UTF-8 BOM. Nothing else is altered (CRLF stays). An empty file is an error in both modes.
    """
    check_encoding(encoding)
    if chunk_bytes < 1:
        raise ValueError("chunk_bytes must be >= 1")
    p = Path(path)
    with _open(p) as f:
        try:
            head = f.read(4)
            if not head:
                raise UserError(f"text file {show_path(p)} is empty; pass a file with some text in it")
            start = 0
            if encoding == "utf-8":
                for bom, name in _BOMS:
                    if head.startswith(bom):
                        raise UserError(f"{show_path(p)} is {name} text (it starts with a {name} byte-order mark), "
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
                    raise UserError(f"{show_path(p)} contains a NUL byte at byte {offset + nul}, so it looks like a "
                                    f"binary file rather than UTF-8 text; if that is intended, {_BYTES_HINT}")
                pending = len(decoder.getstate()[0])
                try:
                    text = decoder.decode(chunk, final=final)
                except UnicodeDecodeError as e:
                    at = offset - pending + e.start
                    bad = e.object[e.start]
                    hint = ("; bytes 0x80-0x9F are typical of Windows-1252 text: convert it with "
                            "`iconv -f CP1252 -t UTF-8`, or" if 0x80 <= bad <= 0x9F else "; if this is not UTF-8 text,")
                    raise UserError(f"{show_path(p)} is not valid UTF-8: invalid UTF-8 at byte {at} (0x{bad:02X})"
                                    f"{hint} {_BYTES_HINT}") from None
                offset += len(chunk)
                if text:
                    produced = True
                    yield text
                if final:
                    break
            if not produced:
                raise UserError(f"text file {show_path(p)} is empty; pass a file with some text in it")
        except OSError as e:
            raise UserError(f"cannot read {show_path(p)}: {e.strerror or e}; check the file and try again") from None


def read_text(path, encoding="utf-8"):
    """Read a whole corpus: str in utf-8 mode (leading BOM dropped), the raw bytes in bytes mode."""
    pieces = list(iter_chunks(path, encoding, chunk_bytes=1 << 30))
    return (b"" if encoding == "bytes" else "").join(pieces)


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
