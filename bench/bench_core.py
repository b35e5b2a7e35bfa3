"""Core benchmark: the NumPy engine's training speed next to its references, measured in the same run.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/bench_core.py [--seconds 10] [--rounds 3]

Rows:
  1. The paper's configuration (rnn, H=100, T=25, batch 1, Adagrad lr 0.1, clip +-5, float64) on tinyshakespeare:
     rnnlab's NumPy engine vs ../shared/reference/min_char_rnn.py (run as a subprocess with the same budget).
  2. LSTM H=256, 1 layer, batch 32, T=64, float32: the NumPy engine vs a bare PyTorch nn.LSTM training loop with
     the same shapes (one-hot input, linear decoder, cross-entropy, Adam), when torch is installed.
The pieces are rnnlab.benchmarks' (`rnnlab bench` prints these rows and many more); this script keeps the two
headline rows in one short run. Rounds alternate between the contenders; the table reports medians, and each
ratio is the median of the ratios within a round.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rnnlab.benchmarks import measure, training  # noqa: E402
from rnnlab.engines import torch_available  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="timed seconds per contender per round")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    ref = training.reference_rate()
    if ref is None:
        sys.exit("bench_core needs ../shared/data/tinyshakespeare.txt and ../shared/reference/min_char_rnn.py")
    vocab, ids, _ = measure.corpus()
    V = len(vocab)
    paper = measure.alternate({"ours": measure.rate(training.engine_trainer("numpy", "rnn", V, 100, 1, 1, 25, ids,
                                                                            preset="paper")),
                               "ref": ref}, args.seconds, args.rounds, "paper")
    lstm = {"ours": measure.rate(training.engine_trainer("numpy", "lstm", V, 256, 1, 32, 64, ids))}
    if torch_available():
        lstm["torch"] = measure.rate(training.bare_torch_trainer("lstm", V, 256, 1, 32, 64, ids))
    lstm = measure.alternate(lstm, args.seconds, args.rounds, "lstm")
    print(f"\nmachine: {measure.machine()}; median of {args.rounds} rounds x {args.seconds:g} s\n")
    print("| config | rnnlab numpy chars/s | reference chars/s | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| paper: rnn H=100 T=25 B=1 Adagrad float64 | {paper['ours']:,.0f} | min_char_rnn.py "
          f"{paper['ref']:,.0f} | {measure.ratio(paper, 'ours', 'ref'):.2f}x |")
    if "torch" in lstm:
        print(f"| lstm H=256 L=1 B=32 T=64 Adam float32 | {lstm['ours']:,.0f} | torch nn.LSTM "
              f"{lstm['torch']:,.0f} | {measure.ratio(lstm, 'ours', 'torch'):.2f}x |")
    else:
        print(f"| lstm H=256 L=1 B=32 T=64 Adam float32 | {lstm['ours']:,.0f} | (torch not installed) | - |")


if __name__ == "__main__":
    main()
