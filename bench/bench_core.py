"""Core benchmark: the NumPy engine's training speed next to its references, measured in the same run.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/bench_core.py [--seconds 10] [--rounds 3]

Rows:
  1. The paper's configuration (rnn, H=100, T=25, batch 1, Adagrad lr 0.1, clip +-5, float64) on tinyshakespeare:
     rnnlab's NumPy engine vs ../shared/reference/min_char_rnn.py (run as a subprocess with the same budget).
  2. LSTM H=256, 1 layer, batch 32, T=64, float32: the NumPy engine vs a bare PyTorch nn.LSTM training loop with
     the same shapes (one-hot input, linear decoder, cross-entropy, Adam), when torch is installed.
Rounds alternate between the contenders so that a busy machine slows both alike; the table reports the median.
Characters/s counts training characters (N*T per step), excluding start-up and evaluation.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
REFERENCE = ROOT.parent / "shared" / "reference" / "min_char_rnn.py"

from rnnlab.config import ModelConfig, TrainConfig, PRESETS  # noqa: E402
from rnnlab.engines import make_engine  # noqa: E402
from rnnlab.text import Streams, Vocab, split  # noqa: E402


def corpus_ids():
    text = DATA.read_text(encoding="utf-8") if DATA.exists() else \
        __import__("rnnlab.text", fromlist=["embedded_corpus"]).embedded_corpus()
    vocab = Vocab.from_text(text)
    return vocab, split(vocab.encode(text), 0.1)[0]


def rnnlab_chars_per_s(engine_name, mcfg, tcfg, ids, seconds):
    """Train with the engine for `seconds` on the streams of `ids`; chars/s over the timed steps."""
    engine = make_engine(engine_name, mcfg, tcfg)
    streams = Streams(ids, tcfg.batch_size, tcfg.seq_len)
    params = engine.init_params(0)
    opt, state = engine.init_opt_state(params), engine.zero_state(tcfg.batch_size)
    rng = np.random.default_rng(0)
    step, t0 = 0, None
    while True:
        b = step % streams.num_batches
        if b == 0:
            state = engine.zero_state(tcfg.batch_size)
        x, y = streams.batch(b)
        _, state = engine.train_step(params, opt, x, y, state, tcfg.lr, rng)
        step += 1
        if step == 5:                                    # warm-up steps are not timed
            t0, s0 = time.perf_counter(), step
        if t0 and time.perf_counter() - t0 >= seconds:
            return (step - s0) * tcfg.batch_size * tcfg.seq_len / (time.perf_counter() - t0)


def reference_chars_per_s(seconds):
    out = subprocess.run([sys.executable, str(REFERENCE), "--data", str(DATA), "--seconds", str(seconds),
                          "--sample-every", "0", "--checkpoints", str(seconds), "--no-val", "--window", "2"],
                         capture_output=True, text=True, check=True).stdout
    final = json.loads(out.strip().splitlines()[-1])
    return final["chars_per_s_overall"]


def torch_lstm_chars_per_s(V, H, N, T, seconds):
    """A bare PyTorch loop: one-hot -> nn.LSTM -> nn.Linear -> cross-entropy -> Adam, float32, CPU."""
    import torch
    torch.manual_seed(0)
    lstm, dec = torch.nn.LSTM(V, H, batch_first=True), torch.nn.Linear(H, V)
    params = list(lstm.parameters()) + list(dec.parameters())
    opt = torch.optim.Adam(params, lr=2e-3)
    x = torch.randint(0, V, (N, T))
    y = torch.randint(0, V, (N, T))
    xo = torch.nn.functional.one_hot(x, V).float()
    step, t0, h = 0, None, None
    while True:
        out, h = lstm(xo, h)
        h = tuple(s.detach() for s in h)
        loss = torch.nn.functional.cross_entropy(dec(out).reshape(N * T, V), y.reshape(N * T))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        step += 1
        if step == 5:
            t0, s0 = time.perf_counter(), step
        if t0 and time.perf_counter() - t0 >= seconds:
            return (step - s0) * N * T / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="timed seconds per contender per round")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if not DATA.exists() or not REFERENCE.exists():
        sys.exit("bench_core needs ../shared/data/tinyshakespeare.txt and ../shared/reference/min_char_rnn.py")
    vocab, ids = corpus_ids()
    V = len(vocab)
    paper = PRESETS["paper"]
    mp = ModelConfig(**{k: v for k, v in paper.items() if k in ModelConfig.__dataclass_fields__}, vocab_size=V)
    tp = TrainConfig(**{k: v for k, v in paper.items() if k in TrainConfig.__dataclass_fields__})
    ml = ModelConfig(cell="lstm", hidden_size=256, vocab_size=V)
    tl = TrainConfig(batch_size=32, seq_len=64, optimizer="adam", lr=2e-3, clip_norm=5.0, dtype="float32")
    try:
        import torch
        has_torch = True
        threads = torch.get_num_threads()
    except ImportError:
        has_torch, threads = False, 0

    runs = {k: [] for k in ("ours_paper", "ref_paper", "ours_lstm", "torch_lstm")}
    for r in range(args.rounds):
        runs["ref_paper"].append(reference_chars_per_s(args.seconds))
        runs["ours_paper"].append(rnnlab_chars_per_s("numpy", mp, tp, ids, args.seconds))
        runs["ours_lstm"].append(rnnlab_chars_per_s("numpy", ml, tl, ids, args.seconds))
        if has_torch:
            runs["torch_lstm"].append(torch_lstm_chars_per_s(V, 256, 32, 64, args.seconds))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in runs.items() if v),
              file=sys.stderr, flush=True)
    med = {k: statistics.median(v) for k, v in runs.items() if v}
    print(f"\nmachine: {os.cpu_count()} cores, numpy {np.__version__}, torch threads {threads or '-'}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}; median of {args.rounds} rounds "
          f"x {args.seconds:g} s\n")
    print("| config | rnnlab numpy chars/s | reference chars/s | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| paper: rnn H=100 T=25 B=1 Adagrad float64 | {med['ours_paper']:,.0f} | min_char_rnn.py "
          f"{med['ref_paper']:,.0f} | {med['ours_paper'] / med['ref_paper']:.2f}x |")
    if has_torch:
        print(f"| lstm H=256 L=1 B=32 T=64 Adam float32 | {med['ours_lstm']:,.0f} | torch nn.LSTM "
              f"{med['torch_lstm']:,.0f} | {med['ours_lstm'] / med['torch_lstm']:.2f}x |")
    else:
        print(f"| lstm H=256 L=1 B=32 T=64 Adam float32 | {med['ours_lstm']:,.0f} | (torch not installed) | - |")


if __name__ == "__main__":
    main()
