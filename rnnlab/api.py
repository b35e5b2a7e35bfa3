"""rnnlab from Python: train a character model, load one, generate text, score text. The command line calls the
same functions (rnnlab.lm.train, rnnlab.sample.generate, rnnlab.lm.evaluate_stream).

    >>> import rnnlab
    >>> summary = rnnlab.train(data=TEXT, out=RUN, cell="gru", hidden_size=32, batch_size=8, seq_len=32,
    ...                        max_steps=40, eval_every=20)
    >>> summary["step"], summary["best_val"] < 3.5
    (40, True)
    >>> m = rnnlab.load(RUN, engine="numpy")
    >>> text = m.generate(prime="the ", length=30, seed=1)
    >>> text.startswith("the ") and len(text) == 34
    True
    >>> m.generate(prime="the ", length=30, argmax=True) == m.generate(prime="the ", length=30, temperature=0)
    True
    >>> sorted(m.evaluate("the cat sat on the mat"))
    ['bits_per_char', 'chars', 'nats_per_char']

(TEXT and RUN are a small text file and a new folder; README.md runs this example as a doctest.)
"""
from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path

from . import finetune, lm
from .config import PRESETS, ModelConfig, TrainConfig
from .errors import UserError
from .models import open_model
from .sample import generate as sample_generate


class Model:
    """A trained character model on an engine. `snapshot` holds its configs, vocabulary and metadata."""

    def __init__(self, snapshot, engine, params):
        self.snapshot, self.engine, self.params = snapshot, engine, params
        self.vocab = snapshot.vocab

    def __repr__(self):
        m = self.snapshot.mcfg
        return f"<rnnlab.Model {m.cell} H={m.hidden_size} L={m.num_layers} V={m.vocab_size}, step " \
               f"{self.snapshot.step}, engine {self.engine.name}>"

    def generate(self, prime: str = "", length: int = 200, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, seed: int | None = None, stop: str | None = None,
                 argmax: bool = False, unknown: str = "error") -> str:
        """`length` characters after `prime` (included in the result), one at a time, as `rnnlab sample` makes
        them: softmax(logits / temperature) over the top_k most likely symbols within top_p of the mass (None:
        all); temperature 0 or argmax=True takes the most likely. seed None draws a fresh one; `stop` ends the
        text just before its first occurrence. Raises UserError for settings out of range or an unseen prime
        character (unknown="skip" drops them)."""
        seed = int.from_bytes(__import__("os").urandom(4), "little") if seed is None else seed
        return sample_generate(self.engine, self.params, self.vocab, prime, length, 1, seed, temperature,
                               top_k or 0, 1.0 if top_p is None else top_p, argmax, unknown, stop=stop or "")[0]

    def evaluate(self, text: str, unknown: str = "error") -> dict:
        """How well the model predicts `text` (a str, or bytes for a bytes model): {"nats_per_char",
        "bits_per_char", "chars"} over every character after the first, the state carried from zeros."""
        if not isinstance(text, (str, bytes)):
            raise TypeError(f"evaluate takes the text as str (or bytes), not {type(text).__name__}")
        with tempfile.TemporaryDirectory() as tmp:            # the same streaming path as `rnnlab eval FILE`
            path = Path(tmp) / "text"
            path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
            try:
                nats, n = lm.evaluate_stream(self.engine, self.params, self.vocab, path, unknown)
            except UserError as e:
                raise UserError(str(e).replace(f"text file '{path}'", "the text").replace(str(path), "the text")) \
                    from None
        return {"nats_per_char": nats, "bits_per_char": nats / math.log(2), "chars": n}


def load(run_or_checkpoint, engine: str = "auto", which: str = "best", device: str = "auto") -> Model:
    """The character model in a run directory (its best.safetensors, or which="latest") or a checkpoint file, on
    `engine` ("numpy", "torch", or "auto": the faster one here for sampling). Raises UserError for a missing or
    corrupt checkpoint, or one of another task."""
    return Model(*open_model(run_or_checkpoint, "lm", which, engine, "sample", device=device))


def train(data: str | None = None, out=None, resume: bool = False, init_from=None, preset: str | None = None,
          engine: str | None = None, device: str = "auto", precision: str | None = None, progress: bool = False,
          log=None, **config) -> dict:
    """Train a character model on the text file `data` (None: the embedded corpus) into run directory `out`, as
    `rnnlab train` does; `config` takes any ModelConfig/TrainConfig field (cell, hidden_size, lr, max_steps, ...),
    applied after `preset`. resume=True continues the run in `out` (config: its changes of course); init_from
    fine-tunes a new run from a trained model. engine: numpy, torch or auto; None: numpy for a new run, and for a
    resumed one the engine (and precision) it last ran with; precision: fp32 or bf16 (the torch engine, as
    --precision). The thread pools are the calling process's own (the command line sizes them, and adapts them, for
    its own process only). log(str) receives the progress lines (None: silent).
    Returns the run's summary: step, loss, best_val (nats/char), latest (checkpoint path). Raises UserError for bad
    input."""
    if out is None:
        raise UserError("rnnlab.train needs out=: the run directory to write")
    names = {f.name for c in (ModelConfig, TrainConfig) for f in dataclasses.fields(c)}
    unknown = sorted(set(config) - names)
    if unknown:
        raise UserError(f"rnnlab.train: unknown settings {unknown}; see rnnlab train --help for the fields")
    if preset is not None and preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose one of {', '.join(sorted(PRESETS))}")
    if resume and init_from is not None:
        raise UserError("resume=True continues a run, init_from starts a new one from a trained model: give one")
    quiet = log or (lambda *a, **k: None)
    opts = {"device": device, "precision": precision}
    if data is not None:
        config["data"] = str(data)
    if resume:
        return lm.train(None, None, out, engine, resume=True, overrides=config, progress=progress, log=quiet,
                        engine_options=opts)
    values = {**PRESETS.get(preset or "", {}), **config}
    pick = lambda cls: {f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values}  # noqa: E731
    mcfg = ModelConfig(**pick(ModelConfig))
    if init_from is not None:                     # the source's network; only dropout may be given
        mcfg = finetune.model_config(finetune.load_source(init_from).mcfg, pick(ModelConfig))
    return lm.train(mcfg, TrainConfig(**pick(TrainConfig)), out, engine, progress=progress, log=quiet,
                    engine_options=opts, init_from=init_from)
