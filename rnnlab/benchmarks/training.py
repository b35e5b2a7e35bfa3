"""Training throughput: rnnlab's engines next to a bare PyTorch loop with the same shapes, and the paper's
configuration next to min_char_rnn.py.

Each contender is a step function that trains one batch and returns the characters it processed (N*T), so
measure.alternate can time them in turn. Every contender trains on the same text with Adam lr 2e-3 and a global
norm clip of 5 in float32 (the paper's row: Adagrad 0.1, clip +-5, float64, as the reference does).

    >>> from rnnlab.benchmarks.measure import corpus
    >>> vocab, ids, _ = corpus()
    >>> step = engine_trainer("numpy", "gru", len(vocab), 16, 1, 2, 8, ids)
    >>> step()
    16
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from .. import cells
from ..config import PRESETS, ModelConfig, TrainConfig
from ..engines import make_engine
from ..streams import Streams
from .measure import REFERENCE, SHAKESPEARE

CONFIGS = [(100, 1, 1, 25), (128, 1, 32, 64), (256, 2, 32, 64), (512, 2, 64, 100)]    # (H, L, N, T)
# The linear-recurrence cells against the LSTM: B streams, these T, each stack (L layers, embedding D; 0 = one-hot)
# at the parameter count of an LSTM of that stack with H = lstm_hidden.
SCAN = {"lstm_hidden": 256, "batch": 16, "lengths": (64, 256, 1024), "stacks": ((1, 0), (2, 64))}
SCAN_QUICK = {"lstm_hidden": 32, "batch": 4, "lengths": (16, 64), "stacks": ((1, 0), (2, 8))}


def _configs(cell, V, H, L, N, T, preset=None, embed=0):
    """(ModelConfig, TrainConfig) for one row: Adam 2e-3, clip-norm 5, float32; or a preset's settings."""
    m = dict(cell=cell, vocab_size=V, hidden_size=H, num_layers=L, embed_dim=embed)
    t = dict(batch_size=N, seq_len=T, optimizer="adam", lr=2e-3, clip_norm=5.0, dtype="float32")
    for k, v in (PRESETS[preset] if preset else {}).items():
        (m if k in ModelConfig.__dataclass_fields__ else t)[k] = v
    return ModelConfig(**m), TrainConfig(**t)


def scan_cells() -> tuple:
    """The LSTM and every linear-recurrence cell of rnnlab.cells (rows with torch == "scan")."""
    return ("lstm",) + tuple(c for c in cells.NAMES if cells.get(c).torch == "scan")


def same_budget(names, V: int, lstm_hidden: int, L: int = 1, D: int = 0) -> dict:
    """cell -> (H, parameters) for L-layer models (one-hot input, or an embedding of D) at the parameter count P of
    the LSTM with H = lstm_hidden: each cell gets the largest H within P, the memory experiment's rule. A cell
    without W_hh spends P on a wider h: minGRU's H is ~7x the LSTM's at H = 256 in one one-hot layer, ~2.4x in
    two layers over an embedding."""
    from ..experiments.memory import count_params, hidden_for_budget

    def params(c, H):
        return count_params(ModelConfig(cell=c, vocab_size=V, hidden_size=H, num_layers=L, embed_dim=D))
    budget = params("lstm", lstm_hidden)
    hidden = {c: lstm_hidden if c == "lstm" else hidden_for_budget(c, V, budget, L, D) for c in names}
    return {c: (h, params(c, h)) for c, h in hidden.items()}


def engine_trainer(engine_name, cell, V, H, L, N, T, ids, preset=None, precision="fp32", embed=0):
    """A step function training rnnlab's `engine_name` engine through Engine.train_step, the state carried from
    batch to batch and reset at each pass, exactly as rnnlab.loop does (minus logging and checkpoints);
    `precision` bf16 autocasts the torch engine; `embed` > 0 puts an embedding of that size in front."""
    mcfg, tcfg = _configs(cell, V, H, L, N, T, preset, embed)
    engine = make_engine(engine_name, mcfg, tcfg, device="cpu", precision=precision)
    streams = Streams(ids, tcfg.batch_size, tcfg.seq_len)
    params = engine.init_params(0)
    opt = engine.init_opt_state(params)
    rng = np.random.default_rng(0)
    box = {"state": None, "b": 0}

    def step():
        if box["b"] == 0:
            box["state"] = engine.zero_state(tcfg.batch_size)
        x, y = streams.batch(box["b"])
        _, box["state"] = engine.train_step(params, opt, {"x": x, "y": y}, box["state"], tcfg.lr, rng)
        box["b"] = (box["b"] + 1) % streams.num_batches
        return tcfg.batch_size * tcfg.seq_len
    return step


def bare_torch_trainer(cell, V, H, L, N, T, ids):
    """What a PyTorch user writes: F.one_hot -> nn.RNN/LSTM/GRU -> nn.Linear -> F.cross_entropy, clip_grad_norm_,
    torch.optim.Adam, loss.item() each step, the state detached and carried; PyTorch's default kernels."""
    import torch
    import torch.nn.functional as F
    torch.manual_seed(0)
    rnn = getattr(torch.nn, cells.get(cell).nn_layer)(V, H, num_layers=L, batch_first=True)   # nn.RNN/LSTM/GRU
    dec = torch.nn.Linear(H, V)
    params = list(rnn.parameters()) + list(dec.parameters())
    opt = torch.optim.Adam(params, lr=2e-3)
    streams = Streams(ids, N, T)
    box = {"h": None, "b": 0}

    def step():
        if box["b"] == 0:
            box["h"] = None
        x, y = (torch.from_numpy(a) for a in streams.batch(box["b"]))
        out, h = rnn(F.one_hot(x, V).float(), box["h"])                    # (N, T, H)
        loss = F.cross_entropy(dec(out).reshape(N * T, V), y.reshape(N * T))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        loss.item()
        box["h"] = tuple(s.detach() for s in h) if cell == "lstm" else h.detach()
        box["b"] = (box["b"] + 1) % streams.num_batches
        return N * T
    return step


def reference_rate():
    """A rate function (seconds, first_round) -> chars/s for measure.alternate that runs
    ../shared/reference/min_char_rnn.py in a subprocess and returns its own training chars/s (its clock excludes
    start-up); None when the reference or tinyshakespeare is absent."""
    if not REFERENCE.exists() or not SHAKESPEARE.exists():
        return None
    return lambda seconds, first_round: reference_chars_per_s(seconds)


def reference_chars_per_s(seconds: float) -> float:
    """min_char_rnn.py's training chars/s over `seconds`, as it reports it."""
    out = subprocess.run([sys.executable, str(REFERENCE), "--data", str(SHAKESPEARE), "--seconds", str(seconds),
                          "--sample-every", "0", "--checkpoints", str(seconds), "--no-val",
                          "--window", str(max(seconds / 2, 0.5))],
                         capture_output=True, text=True, check=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])["chars_per_s_overall"])
