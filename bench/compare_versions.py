"""Before/after: the chars/s of `rnnlab bench --quick`'s rows (and rnn/gru sampling) for two checkouts of rnnlab,
measured alternately in one session on one machine, each checkout in its own process.

    python bench/compare_versions.py BEFORE_DIR AFTER_DIR [--pairs 3] [--seconds 0.7]

BEFORE_DIR and AFTER_DIR are repository roots (e.g. a `git worktree add /tmp/before <commit>` and this checkout);
each is imported from its own folder with this interpreter. Prints a markdown table: the median chars/s of each
side and the median over the pairs of after / before (pairs run back to back, so a slow spell of a shared machine
hits both sides of a pair alike). Run it on an otherwise idle machine, without the BLAS settings some CI images
export: `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/compare_versions.py ...`.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

DRIVER = r"""
import json, sys
from rnnlab.benchmarks import measure, sampling, training
vocab, ids, _ = measure.corpus(None)
V, secs, out = len(vocab), float(sys.argv[1]), {}
for cell in ("rnn", "lstm", "gru"):
    for H, L, N, T in training.CONFIGS[:2]:
        for e in ("numpy", "torch"):
            step = training.engine_trainer(e, cell, V, H, L, N, T, ids)
            out[f"train {cell} H={H} B={N} T={T} {e}"] = measure.timed(step, secs, 2)
for cell, H in (("lstm", 128), ("rnn", 100), ("gru", 512)):
    for k in (1, 32):
        for e in ("numpy", "torch"):
            step = sampling.engine_sampler(e, cell, vocab, H, 1, k, 10)
            out[f"sample {cell} H={H} K={k} {e}"] = measure.timed(step, secs, 2)
step = training.engine_trainer("numpy", "rnn", V, 100, 1, 1, 25, ids, preset="paper")
out["train paper (rnn H=100 B=1 T=25 float64 Adagrad) numpy"] = measure.timed(step, secs, 2)
print(json.dumps(out))
"""


def measure_once(root: str, seconds: float) -> dict:
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(seconds)], cwd=root, capture_output=True, text=True,
                          check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=0.7, help="timed seconds per row per run (default: 0.7)")
    args = ap.parse_args(argv)
    runs = [(measure_once(args.before, args.seconds), measure_once(args.after, args.seconds))
            for _ in range(args.pairs)]
    print(f"{args.pairs} pairs, {args.seconds:g} s per row per run\n")
    print("| row | before chars/s | after chars/s | after / before |\n|---|---:|---:|---:|")
    for k in runs[0][0]:
        b = statistics.median(r[0][k] for r in runs)
        a = statistics.median(r[1][k] for r in runs)
        ratio = statistics.median(r[1][k] / r[0][k] for r in runs)
        print(f"| {k} | {b:,.0f} | {a:,.0f} | {ratio:.2f} |", flush=True)


if __name__ == "__main__":
    main()
