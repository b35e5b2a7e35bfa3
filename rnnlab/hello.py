"""The paper's case study: a vanilla RNN learns to spell "hello" from the vocabulary {h, e, l, o}.

The training sequence is one batch: inputs h, e, l, l and targets e, l, l, o. The two l's are the interesting
part: after the first l the answer is l, after the second it is o, so the network must use its hidden state (its
memory) to tell them apart; the input alone cannot. Trained with the paper's recipe: Adagrad, lr 0.1, gradients
clipped to +-5, float64, the state reset to zeros for every pass.
"""
from __future__ import annotations

import numpy as np

from .config import ModelConfig, TrainConfig
from .engines.numpy.engine import Engine
from .errors import UserError
from .sample import generate
from .vocab import Vocab

WORD = "hello"


def train_hello(steps: int = 300, hidden_size: int = 16, seed: int = 0):
    """Train on "hello"; returns (engine, params, vocab, losses)."""
    vocab = Vocab.from_text(WORD)                  # sorted: e, h, l, o
    mcfg = ModelConfig(cell="rnn", vocab_size=len(vocab), hidden_size=hidden_size, num_layers=1)
    tcfg = TrainConfig(batch_size=1, seq_len=len(WORD) - 1, optimizer="adagrad", lr=0.1, clip_value=5.0,
                       clip_norm=0.0, dtype="float64", seed=seed)
    engine = Engine(mcfg, tcfg)
    params, opt_state = engine.init_params(seed), None
    opt_state = engine.init_opt_state(params)
    ids = vocab.encode(WORD).astype(np.int64)
    x, y = ids[None, :-1], ids[None, 1:]           # (1, 4): h e l l -> e l l o
    losses = []
    for _ in range(steps):
        m, _ = engine.train_step(params, opt_state, {"x": x, "y": y}, engine.zero_state(1), tcfg.lr, None)
        losses.append(m["loss"])
    return engine, params, vocab, losses


def run(steps: int = 300, hidden_size: int = 16, seed: int = 0, log=print) -> str:
    """Train, print the per-step table and the generated word; return the generated word."""
    if steps < 1:
        raise UserError(f"--steps must be >= 1, got {steps}")
    engine, params, vocab, losses = train_hello(steps, hidden_size, seed)
    order = [vocab.symbols.index(c) for c in "helo"]                   # show columns in the paper's order
    log(f"trained a vanilla RNN (H={hidden_size}) on {WORD!r} for {steps} steps of Adagrad: "
        f"loss {losses[0]:.3f} -> {losses[-1]:.4f} nats/char")
    log("step  input   p(h)   p(e)   p(l)   p(o)   chosen  target")
    state = engine.zero_state(1)
    for t, (c, target) in enumerate(zip(WORD[:-1], WORD[1:])):
        logits, state = engine.step(params, np.array([vocab.symbols.index(c)]), state)
        p = np.exp(logits[0] - logits[0].max())
        p /= p.sum()
        chosen = vocab.symbols[int(p.argmax())]
        log(f"{t + 1:>4}  {c!r:>5}  " + "  ".join(f"{p[i]:.3f}" for i in order) + f"  {chosen!r:>6}  {target!r:>6}")
    word = generate(engine, params, vocab, prime="h", length=len(WORD) - 1, argmax=True)[0]
    log(f"generated from seed 'h': {word}")
    return word
