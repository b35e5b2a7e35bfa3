"""Generation, one character at a time: each output is fed back as the next input (the paper's sampling loop).

`pick` turns logits into choices (temperature, top-k, top-p, argmax); `generate` runs the loop over an engine's
`step` and streams text through a callback as it goes. K samples are generated side by side as one batch.
"""
from __future__ import annotations

import codecs
import math
from numbers import Integral, Real

import numpy as np

from .errors import UserError


def pick(logits: np.ndarray, rng: np.random.Generator, temperature: float = 1.0, top_k: int = 0,
         top_p: float = 1.0, argmax: bool = False) -> np.ndarray:
    """One choice per row of logits (K, V). temperature == 0 or argmax=True takes the most likely symbol
    (ties: the lowest id); otherwise softmax(logits / temperature), restricted to the top_k most likely symbols
    (0 = all) and to the smallest set whose probability reaches top_p (1.0 = all), then sampled by inverse CDF
    with one uniform draw per row."""
    logits = np.asarray(logits, dtype=np.float64)
    cold = temperature == 0
    if 0 < temperature < 1e-3:                  # logits / T may overflow: then T -> 0's limit, the argmax
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            cold = not np.isfinite(logits / temperature).all()
    if argmax or cold:
        return logits.argmax(axis=1)
    if logits.shape[0] == 1 and not (top_k and top_k < logits.shape[1]) and top_p >= 1.0:
        return _pick_one(logits[0], rng, temperature)
    z = logits / temperature
    if top_k and top_k < z.shape[1]:
        kth = np.partition(z, -top_k, axis=1)[:, -top_k][:, None]
        z = np.where(z < kth, -np.inf, z)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    if top_p < 1.0:
        order = np.argsort(-p, axis=1, kind="stable")
        sorted_p = np.take_along_axis(p, order, axis=1)
        before = np.cumsum(sorted_p, axis=1) - sorted_p          # mass of the more likely symbols
        drop = np.zeros_like(p, dtype=bool)
        np.put_along_axis(drop, order, before >= top_p, axis=1)    # keep a symbol while the mass before it < top_p
        p = np.where(drop, 0.0, p)
        p /= p.sum(axis=1, keepdims=True)
    cdf = np.cumsum(p, axis=1)
    u = rng.random((p.shape[0], 1)) * cdf[:, -1:]
    return np.minimum((cdf <= u).sum(axis=1), p.shape[1] - 1)


def _pick_one(z: np.ndarray, rng: np.random.Generator, temperature: float) -> np.ndarray:
    """pick() for one row and no top-k/top-p: the same numbers in the same order (so the same choices for the same
    seed), in a third of the NumPy calls: sampling one character at a time spends ~55 us here otherwise, as much as
    a GEMV of the model."""
    z = z / temperature if temperature != 1.0 else z.copy()                # (V,) float64
    z -= z.max()
    np.exp(z, out=z)
    z /= z.sum()
    cdf = np.cumsum(z)
    u = rng.random() * cdf[-1]                 # the draw rng.random((1, 1)) would give
    return np.array([min(int(np.searchsorted(cdf, u, side="right")), len(z) - 1)])   # = (cdf <= u).sum()


def encode_prime(vocab, prime: str, unknown: str = "error") -> list:
    """Prime text -> ids. Unseen characters are an error naming them, or dropped with unknown='skip'."""
    if vocab.encoding == "bytes":
        try:    # surrogateescape: a command-line byte that is not UTF-8 comes back as that very byte
            prime = prime.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError as e:
            raise UserError(f"the prime has a character that cannot be written as bytes ({e.object[e.start]!r} at "
                            f"position {e.start}); remove it from --prime") from None
    try:
        return [int(i) for i in vocab.encode(prime, unknown=unknown)] if prime else []
    except UserError as e:
        reason = str(e).split(";")[0].replace("text has", "the prime has", 1)
        raise UserError(f"{reason}; remove them from --prime, or drop them with --unknown skip") from None


def default_start(vocab) -> int:
    """With no prime, start from a newline when the vocabulary has one (a natural text boundary), else id 0."""
    nl = 10 if vocab.encoding == "bytes" else "\n"
    return vocab.symbols.index(nl) if nl in vocab.symbols else 0


def check_settings(length, num_samples, seed, temperature, top_k, top_p) -> None:
    """UserError for a sampling setting out of range (or of the wrong type, from Python)."""
    for name, v, kind in (("length", length, Integral), ("num_samples", num_samples, Integral),
                          ("seed", seed, Integral), ("top_k", top_k, Integral), ("temperature", temperature, Real),
                          ("top_p", top_p, Real)):
        if isinstance(v, bool) or not isinstance(v, kind) or not math.isfinite(v):
            raise UserError(f"--{name.replace('_', '-')} must be a finite {'whole ' if kind is Integral else ''}"
                            f"number, got {v!r}")
    if length < 0:
        raise UserError(f"--length must be >= 0, got {length}")
    if temperature < 0:
        raise UserError(f"--temperature must be >= 0 (0 = argmax), got {temperature}")
    if top_k < 0 or not 0.0 < top_p <= 1.0:
        raise UserError("--top-k must be >= 0 and --top-p in (0, 1]")
    if not 1 <= num_samples <= 1 << 20:
        raise UserError(f"--num-samples must be in [1, {1 << 20}], got {num_samples}")
    if seed < 0:
        raise UserError(f"--seed must be >= 0, got {seed}")


class _Writer:
    """The K texts being generated: symbols -> text (bytes vocabularies decoded as UTF-8 as they complete),
    streamed to on_text(k, piece). With `stop`, a sample ends just before the first occurrence of that string in
    what it generates (the prime excluded): the last len(stop) - 1 characters are held back until they can't be
    the start of it."""

    def __init__(self, vocab, K: int, on_text, stop: str = ""):
        self.vocab, self.on_text, self.stop = vocab, on_text, stop
        self.texts, self.held, self.done = [[] for _ in range(K)], [""] * K, np.zeros(K, bool)
        self.decoders = [codecs.getincrementaldecoder("utf-8")(errors="replace") for _ in range(K)] \
            if vocab.encoding == "bytes" else None

    def put(self, k: int, s: str, generated: bool = True) -> None:
        if not s or self.done[k]:
            return
        if self.stop and generated:
            s = self.held[k] + s
            cut = s.find(self.stop)
            if cut >= 0:
                s, self.done[k] = s[:cut], True
            keep = 0 if self.done[k] else min(len(s), len(self.stop) - 1)
            s, self.held[k] = s[:len(s) - keep], s[len(s) - keep:]
        if s:
            self.texts[k].append(s)
            if self.on_text:
                self.on_text(k, s)

    def emit(self, ids, generated: bool = True) -> None:
        for k, i in enumerate(ids):
            sym = self.vocab.symbols[int(i)]
            self.put(k, self.decoders[k].decode(bytes([sym])) if self.decoders else sym, generated)

    def close(self) -> list:
        for k in range(len(self.texts)):
            tail = self.decoders[k].decode(b"", final=True) if self.decoders else ""
            held, self.held[k] = self.held[k], ""
            self.put(k, tail)
            if not self.done[k] and held:               # no stop string came: what was held back is text
                self.texts[k].append(held)
                if self.on_text:
                    self.on_text(k, held)
        return ["".join(t) for t in self.texts]


def generate(engine, params, vocab, prime: str = "", length: int = 200, num_samples: int = 1, seed: int = 0,
             temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, argmax: bool = False,
             unknown: str = "error", on_text=None, start=None, stop: str = "") -> list:
    """Generate `num_samples` continuations of `prime`, `length` symbols each. Returns the texts (prime included).

    on_text(k, s), if given, is called with each new piece of text of sample k as soon as it exists (streaming).
    `start` = (state, line_id) begins every sample from that engine state with line_id read first, and returns a
    sample to it whenever it writes line_id (a conditional model: each line from its label's state); without it
    the state starts at zeros and the prime (or a newline) is read first. `stop`: a sample ends just before the
    first occurrence of this string in what it generates (--length stays the most it writes); generation ends when
    every sample has stopped. Same seed, settings, engine -> same text.
    Raises UserError for out-of-range settings and for prime characters the vocabulary lacks."""
    check_settings(length, num_samples, seed, temperature, top_k, top_p)
    rng = np.random.default_rng(seed)
    prime_ids = encode_prime(vocab, prime, unknown)
    K, out = num_samples, _Writer(vocab, num_samples, on_text, stop or "")
    if start is None:
        state, feed, restart = engine.zero_state(K), prime_ids or [default_start(vocab)], None
    else:
        state, line = start
        restart = engine.step(params, np.full(K, line, dtype=np.int64), state)    # a line's first logits, state
        state, feed = restart[1], prime_ids
        logits = restart[0]
    for i in feed:                                # run the prime through the network, one symbol at a time
        logits, state = engine.step(params, np.full(K, i, dtype=np.int64), state)
    for i in prime_ids:
        out.emit([i] * K, generated=False)
    for _ in range(length):
        ids = pick(logits, rng, temperature, top_k, top_p, argmax)
        out.emit(ids)
        if out.done.all():
            break
        logits, state = engine.step(params, ids.astype(np.int64), state)
        if restart is not None and (ids == line).any():       # back to the line's start
            logits, state = _restart(engine, ids == line, restart, (logits, state))
    return out.close()


def _restart(engine, rows, fresh, current):
    """(logits, state) with the chosen rows (K,) bool taken from `fresh`, the others from `current`."""
    state = tuple(np.where(rows[None, :, None], a, b) for a, b in
                  zip(engine.export_state(fresh[1]), engine.export_state(current[1])))   # each (L, K, H)
    return np.where(rows[:, None], fresh[0], current[0]), engine.load_state(state)
