"""Contention: the chars/s of `rnnlab train` and `rnnlab sample` alone, and beside other work on the same cores
(issue 13: two runs sharing two cores had collapsed to 1% of the solo speed each).

    train     one `rnnlab train` alone, then two started together, each with the same --max-time; a run's chars/s
              is read from its metrics.jsonl over its training clock, after the first third (warm-up)
    sample    one `rnnlab sample` alone, then beside a busy loop (a Python subprocess spinning on one core); its
              chars/s is counted on its stdout from the first character on, so the start-up is left out

Every run is `python -m rnnlab ...` as a user starts it, in this process's environment: the thread policy of
rnnlab/threads.py (and --threads when given) applies as it does for a user.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import rnnlab

PACKAGE_ROOT = str(Path(rnnlab.__file__).resolve().parent.parent)     # so a clone runs without installing


def command(*args) -> list:
    """argv of `python -m rnnlab ARGS` with this interpreter."""
    return [sys.executable, "-m", "rnnlab", *map(str, args)]


def environment() -> dict:
    """This process's environment with rnnlab importable (PYTHONPATH starts with the package's parent)."""
    path = os.environ.get("PYTHONPATH", "")
    return dict(os.environ, PYTHONPATH=PACKAGE_ROOT + (os.pathsep + path if path else ""))


def train_rates(engine: str, runs: int, seconds: float, folder: Path, model: list, threads: int = 0) -> list:
    """Start `runs` `rnnlab train --engine ENGINE --max-time SECONDS MODEL...` together; each one's chars/s.
    Raises RuntimeError with the run's stderr when one fails."""
    procs, dirs = [], []
    for k in range(runs):
        out = folder / f"train-{engine}-{runs}-{k}-{time.monotonic_ns()}"
        dirs.append(out)
        procs.append(subprocess.Popen(command("train", "--engine", engine, "--max-time", seconds, "--out", out,
                                              "--no-progress", "--threads", threads, "--eval-every", 10 ** 9,
                                              "--log-every", 1, *model),
                                      env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise RuntimeError(f"rnnlab train failed: {err.strip()[-500:]}")
    return [metrics_rate(d / "metrics.jsonl") for d in dirs]


def metrics_rate(path: Path, warm: int = 3) -> float:
    """chars/s of a run over its training clock after its first `warm` steps (the first builds oneDNN's kernels,
    over a second) and the first third of its time: the log rows' rates (each over the seconds since the row
    before) weighted by those seconds; the last row's rate when the run was shorter."""
    rows = [r for r in map(json.loads, path.read_text().splitlines()) if "chars_per_s" in r]
    start = rows[-1]["time"] / 3
    pairs = [(b["chars_per_s"], b["time"] - a["time"]) for a, b in zip(rows, rows[1:])
             if a["time"] >= start and a["step"] >= warm]
    if not pairs:
        return rows[-1]["chars_per_s"]
    return sum(r * dt for r, dt in pairs) / max(sum(dt for _, dt in pairs), 1e-9)


@contextlib.contextmanager
def busy_loop():
    """A subprocess spinning on one core (`while True: pass`) for the duration of the block."""
    p = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)                  # let it start spinning
        yield p
    finally:
        p.kill()
        p.wait()


def sample_rate(checkpoint: Path, engine: str, seconds: float, threads: int = 0) -> float:
    """chars/s of `rnnlab sample CHECKPOINT` as it streams to its stdout: counted from its first character (the
    start-up, imports and loading the checkpoint, left out) for `seconds`, then the sample is stopped."""
    p = subprocess.Popen(command("sample", checkpoint, "--engine", engine, "--length", 10 ** 9, "--threads", threads),
                         env=environment(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        fd, chunks = p.stdout.fileno(), []
        os.read(fd, 1 << 20)                          # blocks until the first characters arrive
        t0 = dt = time.perf_counter()
        while dt - t0 < seconds:
            time.sleep(0.05)                          # read in batches: waking per character would compete
            chunks.append(os.read(fd, 1 << 20))
            dt = time.perf_counter()
            if not chunks[-1]:
                raise RuntimeError(f"rnnlab sample {checkpoint} stopped early (exit code {p.wait()})")
    finally:
        p.kill()
        p.wait()
        p.stdout.close()
    return len(b"".join(chunks).decode("utf-8", "ignore")) / (dt - t0)


def make_model(folder: Path, model: list) -> Path:
    """A checkpoint to sample from: one training step of MODEL (sampling speed does not depend on the weights)."""
    out = folder / "sample-model"
    subprocess.run(command("train", "--max-steps", 1, "--out", out, "--no-progress", *model), env=environment(),
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
    return out / "latest.safetensors"
