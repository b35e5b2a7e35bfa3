"""`rnnlab export --format html`: a character model as one self-contained web page that samples in the browser.

The page (page.py's HTML and CSS, page_js.py's script) holds everything inline: the model's configuration, vocabulary
and card as JSON, and every parameter as little-endian float32 (or float16 with dtype="float16": half the size,
each weight rounded to 11 significant bits) in one base64 text. base64 costs 4/3, so a float32 page is ~1.33x its
weights plus ~16 KB of page; a float16 one ~0.67x. No network, no external script: the file works offline, from
disk or from any static host.

The script runs rnnlab sample's loop: zero state; feed the prime (or a newline, sample.default_start) one symbol at
a time; then `length` times pick (page_js.py: rnnlab.sample.pick), show, feed back. With argmax the page's text is
`rnnlab sample RUN --prime P --length N --argmax`'s stdout (tests/test_export.py checks it for every cell).

    >>> path = write("runs/demo", "page.html")                    # doctest: +SKIP
"""
from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

import numpy as np

from .. import cells
from ..engines.numpy.model import param_shapes
from ..errors import UserError
from ..sample import default_start
from .card import card, load_lm
from .page import TEMPLATE
from . import page_js

DTYPES = {"float32": "<f4", "float16": "<f2"}


def pack(params: dict, names, dtype: str = "float32"):
    """(manifest [[name, shape, byte offset]], bytes): the arrays `names` of params in `dtype`, back to back.
    Every offset is a multiple of the item size (the page views the bytes in place). UserError when a weight does
    not fit float16."""
    manifest, chunks, offset = [], [], 0
    for name in names:
        a = np.asarray(params[name])
        b = np.ascontiguousarray(a, dtype=DTYPES[dtype])
        if not np.isfinite(b).all():
            raise UserError(f"{name} has weights beyond float16's range (|w| > 65504); export with --dtype float32")
        manifest.append([name, list(a.shape), offset])
        chunks.append(b.tobytes())
        offset += b.nbytes
    return manifest, b"".join(chunks)


def model_data(snap, where, dtype: str = "float32"):
    """(the page's #model JSON as a dict, the weights' bytes). UserError for a cell the page does not implement."""
    m, vocab = snap.mcfg, snap.vocab
    names = page_js.cells_js()[0]
    if m.cell not in names:
        raise UserError(f"the web page does not implement the cell {m.cell!r} yet (it has {', '.join(names)}: a "
                        f"cell's NumPy file gives its JS_STEP); export it with --format onnx")
    if dtype not in DTYPES:
        raise UserError(f"unknown --dtype {dtype!r}; choose float32 or float16")
    row = cells.get(m.cell)
    manifest, weights = pack(snap.params, param_shapes(m), dtype)
    info = card(snap, where) + [("weights in this page", "float32" if dtype == "float32" else
                                 "float16 (rounded from float32, half the file; greedy text may differ from "
                                 "rnnlab sample on near-ties)")]
    data = {"cell": m.cell, "gates": row.gates, "state": list(row.state), "params": list(row.params),
            "V": m.vocab_size, "H": m.hidden_size, "L": m.num_layers, "E": m.embed_dim,
            "encoding": vocab.encoding, "symbols": list(vocab.symbols), "start": default_start(vocab),
            "dtype": dtype, "tensors": manifest, "card": [list(kv) for kv in info]}
    return data, weights


def render(data: dict, weights: bytes) -> str:
    """The page as one string."""
    blob = json.dumps(data, ensure_ascii=True, separators=(",", ":")).replace("<", "\\u003c")   # no </script>
    title = f"rnnlab: {data['cell']} H={data['H']} L={data['L']}, sampling in your browser"
    note = (f"A character model exported by rnnlab export ({data['dtype']} weights, "
            f"{len(weights) / 1e6:.2f} MB). Everything runs in this page: no network.")
    parts = {"TITLE": html.escape(title), "NOTE": html.escape(note), "MODEL": blob,
             "SCRIPT": page_js.SCRIPT.replace("%CELLS%", page_js.cells_js()[1]),
             "WEIGHTS": base64.b64encode(weights).decode("ascii")}
    return re.sub(r"%(TITLE|NOTE|MODEL|SCRIPT|WEIGHTS)%", lambda m: parts[m.group(1)], TEMPLATE)   # one pass


def write(path, out, which: str = "best", dtype: str = "float32") -> Path:
    """Export the character model at `path` (run directory or checkpoint) as the page `out`; returns out."""
    snap, where = load_lm(path, which)
    page = render(*model_data(snap, where, dtype))
    out = Path(out)
    if out.is_dir():
        raise UserError(f"--out {out} is a directory; pass a file name such as {out / 'model.html'}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(page, encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror or e}; choose a writable --out") from None
    return out
