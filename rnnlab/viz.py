"""What the neurons do: one self-contained HTML page of a model reading a text.

For every character x_t of the text the model computes its hidden state h_t (the chosen layer's, (H,)) and its
prediction p(x_{t+1} | x_1..x_t) = softmax(W_hy h_t + b_y). The page shows the text with each character's background
coloured by h_t[u] for a chosen unit u (blue -1 ... white 0 ... red +1), a unit picker, and on hover the five most
likely next characters. Everything (data, CSS, JS) is inline: no network, no external script.

The feature search correlates every unit with three simple properties of the text after reading x_t:
    quotes    1 inside double quotes ("...") else 0: the parity of the '"' characters read so far
    column    the position in the line: characters since the last newline
    brackets  1 inside (), [] or {} else 0: the nesting depth (floored at 0) is above 0
and lists the units with the largest |Pearson r|, on the page and on stdout. A unit with |r| near 1 tracks the feature
(Karpathy's quote and line-length neurons); |r| near 0 for every unit means no single unit does.

    >>> features('a "b" (c)\\n')["quotes"].tolist()
    [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np

from . import checkpoint, snapshot
from .config import replace
from .engines.numpy import model
from .errors import UserError
from .text import read_text

FEATURES = {"quotes": "inside double quotes", "column": "position in the line",
            "brackets": "inside (), [] or {}"}


def features(chars) -> dict:
    """name -> (T,) float array, one value per character (the state after reading it)."""
    T = len(chars)
    quotes, column, brackets = np.zeros(T), np.zeros(T), np.zeros(T)
    inside, col, depth = False, 0, 0
    for t, ch in enumerate(chars):
        if ch == '"':
            inside = not inside
        quotes[t] = inside
        column[t] = col
        col = 0 if ch == "\n" else col + 1
        depth = depth + 1 if ch in "([{" else max(0, depth - 1) if ch in ")]}" else depth
        brackets[t] = depth > 0
    return {"quotes": quotes, "column": column, "brackets": brackets}


def correlations(acts: np.ndarray, feats: dict) -> dict:
    """name -> (H,) Pearson r between each unit's activation (T, H) and the feature, or None if the feature is
    constant in this text (no correlation is defined). Units that never change get r = 0."""
    out = {}
    a = acts - acts.mean(axis=0)                                     # (T, H)
    a_norm = np.linalg.norm(a, axis=0)                               # (H,)
    for name, f in feats.items():
        f = f - f.mean()
        if not np.any(f):
            out[name] = None
            continue
        r = (f @ a) / np.maximum(a_norm * np.linalg.norm(f), 1e-300)  # (H,)
        out[name] = np.where(a_norm > 0, r, 0.0)
    return out


def top_units(r, k: int = 5) -> list:
    """[(unit, r)] for the k units with the largest |r|."""
    order = np.argsort(-np.abs(r), kind="stable")[:k]
    return [(int(u), float(r[u])) for u in order]


def run_model(params: dict, cfg, ids: np.ndarray, layer: int, chunk: int = 256):
    """Read ids (T,) with one stream, the state carried from zeros. Returns (acts (T, H) of the layer,
    probs (T, V) of the next character), float64, both from the one model: the layer's outputs are the top of the
    stack cut after that layer (model.stack_forward), the predictions model.forward's, without dropout."""
    params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    k = layer % cfg.num_layers
    below = replace(cfg, num_layers=k + 1)                            # the stack up to and including the layer
    state = model.zero_state(cfg, 1, np.float64)
    acts, probs = [], []
    for start in range(0, len(ids), chunk):
        x = np.asarray(ids[start:start + chunk], dtype=np.int64)[None]     # (1, t)
        out, _, _ = model.stack_forward(params, below, x, tuple(s[:k + 1] for s in state))
        acts.append(out[0])                                            # (t, H)
        logits, state, _ = model.forward(params, cfg, {"x": x}, state)     # (1, t, V)
        z = logits[0] - logits[0].max(axis=1, keepdims=True)
        p = np.exp(z)
        probs.append(p / p.sum(axis=1, keepdims=True))                # (t, V)
    return np.concatenate(acts), np.concatenate(probs)


def _shown(sym) -> str:
    """A vocabulary symbol as one display string (bytes vocabularies: the byte as Latin-1)."""
    return sym if isinstance(sym, str) else bytes([sym]).decode("latin-1")


def build(path, text_file, layer: int = -1, max_chars: int = 2000, which: str = "best", unknown: str = "error"):
    """Everything the page shows, as a dict (also what `rnnlab viz` prints from)."""
    snap = snapshot.load(checkpoint.resolve(path, which), "lm")
    cfg, vocab = snap.mcfg, snap.vocab
    if not -cfg.num_layers <= layer < cfg.num_layers:
        raise UserError(f"--layer {layer} is out of range: the model has {cfg.num_layers} layer(s), "
                        f"so use 0..{cfg.num_layers - 1} (or -1 for the top)")
    if max_chars < 2:
        raise UserError(f"--max-chars must be >= 2, got {max_chars}")
    data = read_text(text_file, vocab.encoding)[:max_chars]
    try:
        ids = vocab.encode(data, unknown=unknown)
    except UserError as e:
        raise UserError(f"{str(e).split(';')[0]}; pass another --text, or drop them with --unknown skip") from None
    if len(ids) < 2:
        raise UserError(f"{text_file} has fewer than 2 characters the model knows; pass a longer --text")
    chars = [_shown(vocab.symbols[i]) for i in ids.tolist()]
    acts, probs = run_model(snap.params, cfg, ids, layer)
    corr = correlations(acts, features(chars))
    top = np.argsort(-probs, axis=1, kind="stable")[:, :5]            # (T, 5)
    preds = [[[_shown(vocab.symbols[j]), round(float(probs[t, j]), 4)] for j in row] for t, row in
             enumerate(top.tolist())]
    return {"chars": chars, "acts": acts, "preds": preds, "corr": corr, "cell": cfg.cell,
            "layer": layer % cfg.num_layers, "hidden": cfg.hidden_size, "layers": cfg.num_layers,
            "step": snap.step, "checkpoint": str(checkpoint.resolve(path, which)), "text": str(text_file)}


def report(page: dict) -> list:
    """Lines naming the units most correlated with each feature."""
    lines = []
    for name, r in page["corr"].items():
        if r is None:
            lines.append(f"  {name:<9} ({FEATURES[name]}): constant in this text, no correlation")
        else:
            units = ", ".join(f"unit {u} (r={v:+.2f})" for u, v in top_units(r))
            lines.append(f"  {name:<9} ({FEATURES[name]}): {units}")
    return lines


def render(page: dict, unit: int | None = None) -> str:
    """The HTML page as one string. Activations are stored as int8 (h * 127, base64), row t then unit."""
    from .viz_page import TEMPLATE
    acts = np.clip(np.rint(page["acts"] * 127.0), -127, 127).astype(np.int8)   # (T, H), tanh-range h
    corr = {k: (None if r is None else [round(float(x), 3) for x in r]) for k, r in page["corr"].items()}
    best = [top_units(r, 1)[0][0] for r in page["corr"].values() if r is not None]
    data = {"chars": page["chars"], "H": page["hidden"], "acts": base64.b64encode(acts.tobytes()).decode("ascii"),
            "preds": page["preds"], "corr": corr, "features": FEATURES,
            "top": {k: (None if r is None else top_units(r)) for k, r in page["corr"].items()},
            "unit": int(unit if unit is not None else (best[0] if best else 0))}
    blob = json.dumps(data, ensure_ascii=True, separators=(",", ":")).replace("<", "\\u003c")  # no </script> inside
    title = (f"rnnlab viz: {page['cell']} H={page['hidden']}, layer {page['layer']} of {page['layers']}, "
             f"step {page['step']}")
    info = f"{page['checkpoint']} reading {page['text']} ({len(page['chars'])} characters)"
    return (TEMPLATE.replace("%TITLE%", html.escape(title)).replace("%INFO%", html.escape(info))
            .replace("%DATA%", blob))


def write(page: dict, out, unit: int | None = None) -> Path:
    if unit is not None and not 0 <= unit < page["hidden"]:
        raise UserError(f"--unit {unit} is out of range; the layer has units 0..{page['hidden'] - 1}")
    out = Path(out)
    if out.is_dir():
        raise UserError(f"--out {out} is a directory; pass a file name such as {out / 'viz.html'}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render(page, unit), encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror or e}; choose a writable --out") from None
    return out
