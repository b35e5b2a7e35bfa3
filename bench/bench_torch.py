"""Torch engine benchmark: training and sampling speed next to bare PyTorch loops with the same shapes, same run.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/bench_torch.py [--seconds 8] [--rounds 3]

Tables:
  1. Training chars/s (N*T characters per step, warm-up steps untimed), LSTM float32 Adam lr 2e-3 clip-norm 5, on
     the CPU (or --device): rnnlab's torch engine (Engine.train_step: one-hot -> nn.LSTM -> nn.Linear, summed
     cross-entropy, our clipping, torch.optim.Adam, one host sync) vs a bare loop (F.one_hot -> nn.LSTM -> nn.Linear,
     F.cross_entropy, clip_grad_norm_, torch.optim.Adam, loss.item()) at (H=256, L=1, N=32, T=64) and
     (H=512, L=2, N=64, T=100). Rounds alternate between the two so that a busy machine slows both alike; the
     table reports medians and their ratio.
  2. What the one-hot input costs: forward + backward of one_hot(ids) @ W_ih.T (what nn.LSTM does with it) vs the
     gather W_ih.T[ids] and its scatter-add backward (what the NumPy engine does), per training step, next to the
     step's time. The gather cannot be handed to nn.LSTM, so this bounds what it could save.
  3. Sampling chars/s, LSTM H=512 L=2, one character at a time (K=1, temperature 1): rnnlab.sample.generate on the
     engine vs a bare loop (model(ids (1, 1)) -> softmax -> torch.multinomial), each with oneDNN on and off.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from rnnlab.config import ModelConfig, TrainConfig  # noqa: E402
from rnnlab.engines.torch.engine import Engine  # noqa: E402
from rnnlab.sample import generate  # noqa: E402
from rnnlab.streams import Streams, split  # noqa: E402
from rnnlab.text import embedded_corpus  # noqa: E402
from rnnlab.vocab import Vocab  # noqa: E402

SHAPES = [(256, 1, 32, 64), (512, 2, 64, 100)]      # (H, L, N, T)


def corpus():
    text = DATA.read_text(encoding="utf-8") if DATA.exists() else embedded_corpus()
    vocab = Vocab.from_text(text)
    return vocab, split(vocab.encode(text), 0.1)[0]


def timed(step_fn, seconds: float, warmup: int = 2) -> float:
    """Call step_fn() (which returns characters done) until `seconds` have passed after `warmup` calls; chars/s."""
    for _ in range(warmup):
        step_fn()
    chars, t0 = 0, time.perf_counter()
    while True:
        chars += step_fn()
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return chars / dt


def engine_trainer(V, H, L, N, T, ids, device):
    mcfg = ModelConfig(cell="lstm", vocab_size=V, hidden_size=H, num_layers=L)
    tcfg = TrainConfig(batch_size=N, seq_len=T, optimizer="adam", lr=2e-3, clip_norm=5.0, dtype="float32")
    engine = Engine(mcfg, tcfg, device=device)
    streams = Streams(ids, N, T)
    params = engine.init_params(0)
    opt = engine.init_opt_state(params)
    box = {"state": engine.zero_state(N), "b": 0}

    def step():
        if box["b"] == 0:
            box["state"] = engine.zero_state(N)
        x, y = streams.batch(box["b"])
        _, box["state"] = engine.train_step(params, opt, {"x": x, "y": y}, box["state"], tcfg.lr, None)
        box["b"] = (box["b"] + 1) % streams.num_batches
        return N * T
    return step


class Bare(torch.nn.Module):
    def __init__(self, V, H, L):
        super().__init__()
        self.V = V
        self.lstm = torch.nn.LSTM(V, H, num_layers=L, batch_first=True)
        self.dec = torch.nn.Linear(H, V)

    def forward(self, ids, hc):
        out, hc = self.lstm(F.one_hot(ids, self.V).float(), hc)
        return self.dec(out), hc


def bare_trainer(V, H, L, N, T, ids, device):
    torch.manual_seed(0)
    model = Bare(V, H, L).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    streams = Streams(ids, N, T)
    box = {"hc": None, "b": 0}

    def step():
        if box["b"] == 0:
            box["hc"] = None
        x, y = streams.batch(box["b"])
        x, y = torch.as_tensor(x).to(device), torch.as_tensor(y).to(device)
        logits, hc = model(x, box["hc"])
        loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        loss.item()
        box["hc"] = tuple(s.detach() for s in hc)
        box["b"] = (box["b"] + 1) % streams.num_batches
        return N * T
    return step


def input_projection_ms(V, H, N, T, device, reps=20):
    """(one-hot GEMM, gather) forward + backward milliseconds for the first layer's input projection."""
    ids = torch.randint(0, V, (N, T), device=device)
    w = torch.randn(4 * H, V, device=device, requires_grad=True)
    g = torch.randn(N, T, 4 * H, device=device)

    def one_hot():
        x = torch.zeros(N, T, V, device=device).scatter_(-1, ids.unsqueeze(-1), 1.0)
        (x @ w.T).backward(g)

    def gather():
        F.embedding(ids, w.T).backward(g)
    out = []
    for fn in (one_hot, gather):
        fn()
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        out.append((time.perf_counter() - t0) / reps * 1e3)
    return out


@contextlib.contextmanager
def onednn(enabled: bool):
    was = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = enabled
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = was


def sample_engine(vocab, length, onednn_on, device):
    mcfg = ModelConfig(cell="lstm", vocab_size=len(vocab), hidden_size=512, num_layers=2)
    engine = Engine(mcfg, TrainConfig(), device=device)
    params = engine.init_params(0)
    if onednn_on:          # undo the engine's choice, to measure it
        engine._one_step_kernels = contextlib.nullcontext
    t0 = time.perf_counter()
    generate(engine, params, vocab, length=length, seed=0)
    return length / (time.perf_counter() - t0)


def sample_bare(vocab, length, onednn_on, device):
    torch.manual_seed(0)
    V = len(vocab)
    model = Bare(V, 512, 2).to(device).eval()
    x, hc = torch.zeros(1, 1, dtype=torch.long, device=device), None
    with torch.no_grad(), onednn(onednn_on):
        t0 = time.perf_counter()
        for _ in range(length):
            logits, hc = model(x, hc)
            x = torch.multinomial(torch.softmax(logits[0], -1), 1)          # (1, 1)
            int(x)                                                           # the character, on the host
        return length / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="timed seconds per contender per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sample-chars", type=int, default=400)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    vocab, ids = corpus()
    V = len(vocab)
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"device {args.device}, V={V}, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}; "
          f"median of {args.rounds} rounds x {args.seconds:g} s", flush=True)

    print("\n| training, LSTM float32 Adam | rnnlab torch engine chars/s | bare nn.LSTM loop chars/s | ratio |")
    print("|---|---:|---:|---:|")
    step_ms = {}
    for H, L, N, T in SHAPES:
        eng = engine_trainer(V, H, L, N, T, ids, args.device)
        bare = bare_trainer(V, H, L, N, T, ids, args.device)
        runs = {"engine": [], "bare": []}
        for r in range(args.rounds):
            runs["engine"].append(timed(eng, args.seconds))
            runs["bare"].append(timed(bare, args.seconds))
            print(f"  H={H} L={L} round {r + 1}: engine {runs['engine'][-1]:,.0f}, bare {runs['bare'][-1]:,.0f}",
                  file=sys.stderr, flush=True)
        e, b = statistics.median(runs["engine"]), statistics.median(runs["bare"])
        step_ms[(H, N, T)] = N * T / e * 1e3
        print(f"| H={H} L={L} N={N} T={T} | {e:,.0f} | {b:,.0f} | {e / b:.3f}x |", flush=True)

    print("\n| one-hot input, per training step | one-hot GEMM fwd+bwd ms | gather fwd+bwd ms | step ms |")
    print("|---|---:|---:|---:|")
    for (H, N, T), ms in step_ms.items():
        oh, ga = input_projection_ms(V, H, N, T, args.device)
        print(f"| H={H} N={N} T={T} | {oh:.2f} | {ga:.2f} | {ms:.0f} |", flush=True)

    print(f"\n| sampling, LSTM H=512 L=2, 1 char at a time ({args.sample_chars} chars) | oneDNN on chars/s | "
          f"oneDNN off chars/s |")
    print("|---|---:|---:|")
    for name, fn in (("rnnlab sample.generate, torch engine", sample_engine), ("bare nn.LSTM loop", sample_bare)):
        res = {}
        for on in (True, False):
            fn(vocab, 20, on, args.device)                                   # warm-up
            res[on] = statistics.median(fn(vocab, args.sample_chars, on, args.device) for _ in range(args.rounds))
        print(f"| {name} | {res[True]:,.0f} | {res[False]:,.0f} |", flush=True)
    print("\n(the engine samples with oneDNN off on the CPU: the 'off' column is what `rnnlab sample` gets)")


if __name__ == "__main__":
    main()
