"""Peak memory of `rnnlab train` (and, with --eval, of `rnnlab eval`) on a large generated corpus: the text is
streamed (into a memory-mapped id file for train, in 1 MB pieces for eval), so peak RSS should be the model's
footprint plus little, whatever the corpus size.

    .venv/bin/python bench/memory.py              # 200 MB corpus (written under /tmp, deleted afterwards)
    .venv/bin/python bench/memory.py --mb 20      # quicker
    .venv/bin/python bench/memory.py --eval       # rnnlab eval of a small trained model on the 200 MB text

Three child processes, each measured with os.wait4 (ru_maxrss, the peak resident set of that process alone):
  big       rnnlab train on the generated corpus (default model: LSTM H=256, N=32, T=64, float32), a few steps
  baseline  the same command on a 1 MB corpus made the same way: interpreter, libraries, model, optimiser state,
            activations -- "the model" in the ratio
  whole     what train.py did before streaming: read_text + Vocab.from_text + encode of the whole corpus in one
            process (no training), for comparison
The ratio the issue asks for is peak(big) / (corpus size + peak(baseline)); the overhead attributable to the
corpus is (peak(big) - peak(baseline)) / corpus size.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
WORDS = ["the ", "of ", "and ", "to ", "in ", "a ", "is ", "that ", "for ", "it ", "with ", "as ", "was ", "on ",
         "be ", "at ", "by ", "this ", "had ", "not ", "are ", "but ", "from ", "or ", "have ", "an ", "they ",
         "which ", "one ", "you ", "were ", "café ", "naïve ", "—", "“quoted” ", ".\n", ", ", "!\n"]


def make_corpus(path: Path, n_bytes: int, seed: int = 0) -> None:
    """n_bytes (roughly) of random words, written 4 MB at a time."""
    rng = np.random.default_rng(seed)
    words = np.array(WORDS)
    with open(path, "w", encoding="utf-8") as f:
        written = 0
        while written < n_bytes:
            block = "".join(rng.choice(words, size=min(700_000, (n_bytes - written) // 4 + 1)))
            f.write(block)
            written += len(block.encode("utf-8"))


def peak_rss(args) -> tuple:
    """(peak RSS in bytes, seconds, stderr) of one child process."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen([sys.executable, *map(str, args)], env=ENV, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        msg = err.read().decode(errors="replace")
    if p.returncode != 0:
        raise SystemExit(f"child failed ({p.returncode}): {' '.join(map(str, args))}\n{msg}")
    return usage.ru_maxrss * 1024, time.perf_counter() - t0, msg


def train_args(data: Path, out: Path, steps: int) -> list:
    return ["-m", "rnnlab", "train", "--data", data, "--out", out, "--max-steps", steps, "--eval-every", steps,
            "--val-frac", 0.0005, "--no-progress"]


WHOLE = ("import sys; from rnnlab.text import read_text; from rnnlab.vocab import Vocab; "
         "t = read_text(sys.argv[1]); ids = Vocab.from_text(t).encode(t); print(len(ids))")


def eval_table(tmp: Path, big: Path, small: Path) -> None:
    """Peak RSS of `rnnlab eval` on the big and on the 1 MB text, with a small rnn trained on the 1 MB one."""
    run = tmp / "run-eval"
    peak_rss(["-m", "rnnlab", "train", "--data", small, "--out", run, "--cell", "rnn", "--hidden-size", 32,
              "--max-steps", 2, "--eval-every", 2, "--no-progress"])
    base, base_s, _ = peak_rss(["-m", "rnnlab", "eval", run, "--data", small])
    peak, peak_s, _ = peak_rss(["-m", "rnnlab", "eval", run, "--data", big])
    size = big.stat().st_size
    print("\n| rnnlab eval (rnn H=32) | text | peak RSS | wall |\n|---|---|---|---|")
    print(f"| baseline | {small.stat().st_size / 1e6:.1f} MB | {base / 1e6:.0f} MB | {base_s:.0f} s |")
    print(f"| streamed in 1 MB pieces | {size / 1e6:.1f} MB | {peak / 1e6:.0f} MB | {peak_s:.0f} s |")
    print(f"\neval: peak RSS / baseline (model + constant) = {peak / base:.2f}   (issue 12: <= 1.3); "
          f"(peak - baseline) / text = {(peak - base) / size:.4f} per byte")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=200.0, help="corpus size in MB (10^6 bytes)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--no-whole", action="store_true", help="skip the whole-text comparison (it needs ~15x RAM)")
    ap.add_argument("--eval", action="store_true", help="measure rnnlab eval instead of rnnlab train")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="rnnlab-mem-", dir="/tmp"))
    try:
        big, small = tmp / "big.txt", tmp / "small.txt"
        t0 = time.perf_counter()
        make_corpus(big, int(args.mb * 1e6))
        make_corpus(small, 1_000_000, seed=1)
        size = big.stat().st_size
        print(f"corpus: {size / 1e6:.1f} MB generated in {time.perf_counter() - t0:.0f} s")
        if args.eval:
            eval_table(tmp, big, small)
            return 0
        base, base_s, _ = peak_rss(train_args(small, tmp / "run-small", args.steps))
        peak, peak_s, _ = peak_rss(train_args(big, tmp / "run-big", args.steps))
        ids = (tmp / "run-big" / "data.ids").stat().st_size
        print()
        print("| run | corpus | peak RSS | wall |")
        print("|---|---|---|---|")
        print(f"| baseline: train {args.steps} steps, 1 MB corpus | {small.stat().st_size / 1e6:.1f} MB | "
              f"{base / 1e6:.0f} MB | {base_s:.0f} s |")
        print(f"| train {args.steps} steps, streamed + memory-mapped ids | {size / 1e6:.1f} MB (ids {ids / 1e6:.1f} MB) | "
              f"{peak / 1e6:.0f} MB | {peak_s:.0f} s |")
        if not args.no_whole:
            whole, whole_s, _ = peak_rss(["-c", WHOLE, big])
            print(f"| whole text in memory (the old train.py's read + encode only) | {size / 1e6:.1f} MB | "
                  f"{whole / 1e6:.0f} MB | {whole_s:.0f} s |")
        print()
        print(f"peak RSS / (corpus + baseline) = {peak / 1e6:.0f} / ({size / 1e6:.0f} + {base / 1e6:.0f}) = "
              f"{peak / (size + base):.2f}   (issue: <= 1.3)")
        print(f"(peak RSS - baseline) / corpus = {(peak - base) / size:.3f}   (memory the corpus costs, per byte)")
        if not args.no_whole:
            print(f"whole-text encode alone / corpus = {whole / size:.1f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
