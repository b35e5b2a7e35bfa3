"""Measuring tools shared by every benchmark: the corpus, timed loops with alternating rounds, the machine's GEMM
peak, model FLOPs and peak memory.

Why alternate: the machine is shared, and its load changes by the second. Each round runs every contender once,
one after the other, and the table reports each contender's median over the rounds, so a busy spell slows all of
them alike instead of one. Ratios within a round are what to trust (`ratio` is their median over the rounds);
absolute numbers move with the load.

    >>> timed(lambda: 10, seconds=0.01, warmup=1) > 0
    True
    >>> flops_per_char("lstm", vocab=65, hidden=256, layers=1)    # 3 x (2*4H*H + 2*H*V)
    1672704
"""
from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from .. import cells
from ..streams import split
from ..text import embedded_corpus, read_text
from ..vocab import Vocab

ROOT = Path(__file__).resolve().parent.parent.parent          # the repository, when run from a clone
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
REFERENCE = ROOT.parent / "shared" / "reference" / "min_char_rnn.py"
def corpus(path=None):
    """(vocab, train ids, val ids) of `path`, else tinyshakespeare when present, else the embedded corpus;
    validation is the last 10%, as everywhere in rnnlab."""
    path = path or (SHAKESPEARE if SHAKESPEARE.exists() else None)
    text = read_text(str(path), "utf-8") if path else embedded_corpus()
    vocab = Vocab.from_text(text)
    train, val = split(vocab.encode(text), 0.1)
    return vocab, train, val


def timed(step, seconds: float, warmup: int = 1) -> float:
    """Call step() (it returns the characters it processed) untimed `warmup` times and for at least half of
    `seconds` (first calls allocate, build oneDNN primitives, fill caches), then until `seconds` have passed (at
    least once); returns characters per second over the timed calls."""
    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    while warmup and time.perf_counter() - t0 < seconds / 2:
        step()
    chars, t0 = 0, time.perf_counter()
    while True:
        chars += step()
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return chars / dt


def rate(step):
    """A step function as a rate function (seconds, first_round) -> chars/s; the first round warms it up
    (allocations, oneDNN primitives) with two untimed steps."""
    return lambda seconds, first_round: timed(step, seconds, warmup=2 if first_round else 0)


class Medians(dict):
    """name -> median chars/s over the rounds; `runs` keeps name -> each round's chars/s (for ratio)."""
    runs: dict


def alternate(contenders: dict, seconds: float, rounds: int, label: str = "") -> Medians:
    """name -> median chars/s over `rounds` rounds; each round calls every contender's rate function
    (seconds, first_round) -> chars/s once, in turn."""
    runs = {k: [] for k in contenders}
    for r in range(rounds):
        for k, measure in contenders.items():
            runs[k].append(measure(seconds, r == 0))
        print(f"  {label} round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in runs.items()),
              file=sys.stderr, flush=True)
    med = Medians({k: statistics.median(v) for k, v in runs.items()})
    med.runs = runs
    return med


def ratio(med: Medians, a: str, b: str) -> float:
    """a's speed over b's: the median over rounds of the ratio within each round, so that a slow spell of the
    machine, which hits one round, cancels instead of landing on whichever contender it happened to hit."""
    return statistics.median(x / y for x, y in zip(med.runs[a], med.runs[b]))


def flops_per_char(cell: str, vocab: int, hidden: int, layers: int) -> int:
    """Matmul FLOPs of one training character: 3x the forward (the backward does two GEMMs per forward GEMM).

    Forward per character: each layer's recurrent GEMM 2*G*H*H, the input projection 2*G*H*H of layers above the
    first, and the decoder 2*H*V. The first layer's one-hot input projection is counted as 0: it is a gather
    (a column of W_ih), whatever an engine actually computes for it."""
    G, H = cells.get(cell).gates, hidden
    fwd = layers * 2 * G * H * H + (layers - 1) * 2 * G * H * H + 2 * H * vocab
    return 3 * fwd


def gemm_peak(n: int = 2048, reps: int = 5) -> dict:
    """The machine's float32 GEMM rate in GFLOP/s, best of `reps` (n, n) @ (n, n) products: {"numpy": ...,
    "torch": ...} (torch only when importable). The best, not the median: this is the ceiling."""
    out = {}
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = a.T.copy()
    mm = {"numpy": lambda: np.matmul(a, b)}
    try:
        import torch
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        mm["torch"] = lambda: torch.matmul(ta, tb)
    except ImportError:
        pass
    for name, f in mm.items():
        f()
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            f()
            best = min(best, time.perf_counter() - t0)
        out[name] = 2 * n ** 3 / best / 1e9
    return out


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (Linux reports KB, macOS bytes)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1 << 20) if sys.platform == "darwin" else r / 1024


def machine() -> str:
    """One line: cores, load, library versions and the BLAS environment variables that change GEMM speed."""
    parts = [f"{os.cpu_count()} cores", f"load average {os.getloadavg()[0]:.1f}", f"numpy {np.__version__}"]
    try:
        import torch
        from ..engines.torch.device import cpu_bf16
        parts.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads), CPU bf16: {cpu_bf16() or 'none'}")
    except ImportError:
        parts.append("torch not installed")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS"):
        parts.append(f"{var}={os.environ.get(var, 'unset')}")
    return ", ".join(parts)
