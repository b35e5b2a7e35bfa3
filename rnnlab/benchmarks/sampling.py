"""Sampling throughput: rnnlab.sample.generate (what `rnnlab sample` runs) on each engine, next to a bare PyTorch
loop, one character at a time for one sample (K=1) and for K samples in one batch.

Each step function generates `chunk` characters per sample and returns K * chunk; a sampled character goes back
to the host every step in every contender (it has to be printed).

    >>> from rnnlab.benchmarks.measure import corpus
    >>> vocab, _, _ = corpus()
    >>> engine_sampler("numpy", "lstm", vocab, 16, 1, k=2, chunk=5)()
    10
"""
from __future__ import annotations

import numpy as np

from .. import cells
from ..config import ModelConfig, TrainConfig
from ..engines import make_engine
from ..sample import generate


def engine_sampler(engine_name, cell, vocab, H, L, k=1, chunk=100):
    """Step function: `chunk` characters of K samples through rnnlab.sample.generate (temperature 1)."""
    mcfg = ModelConfig(cell=cell, vocab_size=len(vocab), hidden_size=H, num_layers=L)
    engine = make_engine(engine_name, mcfg, TrainConfig(), device="cpu")
    params = engine.init_params(0)
    seed = iter(range(1 << 30))

    def step():
        generate(engine, params, vocab, length=chunk, num_samples=k, seed=next(seed))
        return k * chunk
    return step


def bare_torch_sampler(cell, V, H, L, k=1, chunk=100):
    """What a PyTorch user writes: model(x (K, 1)) -> softmax -> torch.multinomial, the ids back on the host each
    step, under torch.no_grad(), PyTorch's default kernels (oneDNN on where it applies)."""
    import torch
    torch.manual_seed(0)
    rnn = getattr(torch.nn, cells.get(cell).nn_layer)(V, H, num_layers=L, batch_first=True).eval()   # nn.RNN/...
    dec = torch.nn.Linear(H, V).eval()

    def step():
        x, h = torch.zeros(k, 1, dtype=torch.long), None
        with torch.no_grad():
            for _ in range(chunk):
                out, h = rnn(torch.nn.functional.one_hot(x, V).float(), h)     # (K, 1, H)
                p = torch.softmax(dec(out[:, 0]), -1)                           # (K, V)
                x = torch.multinomial(p, 1)                                     # (K, 1)
                np.asarray(x.tolist())                                          # the characters, on the host
        return k * chunk
    return step
