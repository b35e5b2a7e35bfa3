"""Configuration: two frozen dataclasses, stored whole in every checkpoint.

ModelConfig says what the network is (enough to rebuild it and load its weights); TrainConfig says how it was
trained (enough to resume it exactly). Both validate themselves on construction and raise UserError with a fix,
so a nonsense value never reaches the maths. No registries, no `exec` configurator: argparse fills these.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from . import cells
from .cells import NAMES as CELLS
from .errors import UserError

TASKS = ("lm", "classify", "seq2seq", "conditional")
OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam")
SCHEDULES = ("constant", "step", "cosine")
SCHEDULE_CLOCKS = ("steps", "time")
DTYPES = ("float32", "float64")
ENCODINGS = ("utf-8", "bytes")
MAX_WIDTH, MAX_LAYERS = 1 << 16, 1024
FLOAT32_TINY = 1.1754943508222875e-38       # numpy.finfo(numpy.float32).tiny


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise UserError(msg)


@dataclass(frozen=True)
class ModelConfig:
    """The network: cell type, sizes, dropout.

    embed_dim == 0 feeds one-hot characters straight into the first layer (the paper's W_xh x_t); embed_dim > 0
    puts a learned embedding table (V, D) in front, as nn.Embedding does.
    """
    cell: str = "lstm"
    vocab_size: int = 0          # V, filled in from the data
    hidden_size: int = 256       # H
    num_layers: int = 1          # L
    embed_dim: int = 0           # D; 0 = one-hot input of size V
    dropout: float = 0.0         # training only: between layers per element; on the top layer one mask per sequence
    task: str = "lm"             # lm: character model; classify, seq2seq, conditional: the task shapes
    num_labels: int = 0          # C: classes (classify) or conditions (conditional); 0 for lm and seq2seq

    def __post_init__(self):
        cells.get(self.cell)                       # UserError naming the cells for any other name
        _check(self.vocab_size >= 0, "vocab_size must be >= 0")
        # Upper bounds far beyond any real model, so an absurd size is this error, not a NumPy one mid-allocation.
        _check(1 <= self.hidden_size <= MAX_WIDTH, f"--hidden-size must be in [1, {MAX_WIDTH}], got {self.hidden_size}")
        _check(1 <= self.num_layers <= MAX_LAYERS, f"--num-layers must be in [1, {MAX_LAYERS}], got {self.num_layers}")
        _check(0 <= self.embed_dim <= MAX_WIDTH,
               f"--embed-dim must be in [0, {MAX_WIDTH}] (0 = one-hot), got {self.embed_dim}")
        _check(0.0 <= self.dropout < 1.0, f"--dropout must be in [0, 1), got {self.dropout}")
        _check(self.task in TASKS, f"unknown task {self.task!r}; the file is corrupt or from a newer rnnlab")
        _check(self.num_labels >= 0, f"num_labels must be >= 0, got {self.num_labels}")

    @property
    def input_size(self) -> int:
        return self.embed_dim or self.vocab_size


@dataclass(frozen=True)
class TrainConfig:
    """How to train: data, batching, optimiser, schedule, budget. Defaults are a sound CPU LSTM recipe;
    `--preset paper` gives the paper's (rnn, H=100, T=25, batch 1, Adagrad 0.1, clip +-5, float64)."""
    data: str = ""               # "" = the embedded corpus (CPython's pydoc_data topics)
    encoding: str = "utf-8"
    val_frac: float = 0.1
    batch_size: int = 32         # N streams
    seq_len: int = 64            # T unrolled steps
    optimizer: str = "adam"
    lr: float = 2e-3
    momentum: float = 0.0        # sgd
    beta1: float = 0.9           # adam
    beta2: float = 0.999         # adam; rmsprop uses beta2 as its alpha
    eps: float = 1e-8
    weight_decay: float = 0.0    # decoupled (AdamW's): p *= 1 - lr * weight_decay before each update; 0 = off
    clip_value: float = 0.0      # elementwise clip to [-v, v]; 0 = off (the paper: 5)
    clip_norm: float = 5.0       # global-norm clip; 0 = off
    schedule: str = "constant"
    warmup_steps: int = 0
    step_size: int = 1000        # schedule=step: multiply by gamma every step_size steps
    gamma: float = 0.5
    min_lr_frac: float = 0.1     # schedule=cosine: final lr = lr * min_lr_frac
    schedule_by: str = "steps"   # schedule=cosine decays over max_steps ("steps") or max_time seconds ("time")
    max_steps: int = 2000
    max_time: float = 0.0        # seconds of training over the whole run (evaluation not counted); 0 = no limit
    eval_every: int = 200
    log_every: int = 10
    seed: int = 1337
    dtype: str = "float32"
    max_bad_steps: int = 10      # stop after this many bad steps in a row (non-finite, or the loss exploding)
    max_loss_ratio: float = 3.0  # a step whose loss is above this many times the run's first loss is exploding
    patience: int = 0            # stop after this many evaluations without improvement; 0 = off

    def __post_init__(self):
        _check(self.encoding in ENCODINGS, f"--encoding must be one of {', '.join(ENCODINGS)}")
        _check(0.0 <= self.val_frac < 1.0, f"--val-frac must be in [0, 1), got {self.val_frac}")
        _check(self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}")
        _check(self.seq_len >= 1, f"--seq-len must be >= 1, got {self.seq_len}")
        _check(self.optimizer in OPTIMIZERS, f"--optimizer must be one of {', '.join(OPTIMIZERS)}")
        _check(self.lr > 0, f"--lr must be > 0, got {self.lr}")
        _check(0.0 <= self.momentum < 1.0, f"--momentum must be in [0, 1), got {self.momentum}")
        _check(0.0 <= self.beta1 < 1.0 and 0.0 <= self.beta2 < 1.0, "--beta1/--beta2 must be in [0, 1)")
        _check(self.eps > 0, f"--eps must be > 0, got {self.eps}")
        _check(0.0 <= self.weight_decay < 1.0 / self.lr,
               f"--weight-decay must be >= 0 and below 1 / --lr ({1.0 / self.lr:g}), got {self.weight_decay}: "
               f"each update multiplies the weights by 1 - lr * weight_decay")
        _check(self.dtype != "float32" or self.eps >= FLOAT32_TINY,
               f"--eps {self.eps:g} is below float32's smallest normal number ({FLOAT32_TINY:.3g}): it would round "
               f"to 0 and 0/0 makes NaN; use --eps >= {FLOAT32_TINY:.3g}, or --dtype float64")
        _check(self.clip_value >= 0, f"--clip-value must be >= 0 (0 = off), got {self.clip_value}")
        _check(self.clip_norm >= 0, f"--clip-norm must be >= 0 (0 = off), got {self.clip_norm}")
        _check(self.schedule in SCHEDULES, f"--schedule must be one of {', '.join(SCHEDULES)}")
        _check(self.warmup_steps >= 0, f"--warmup-steps must be >= 0, got {self.warmup_steps}")
        _check(self.step_size >= 1, f"--step-size must be >= 1, got {self.step_size}")
        _check(0.0 < self.gamma <= 1.0, f"--gamma must be in (0, 1], got {self.gamma}")
        _check(0.0 <= self.min_lr_frac <= 1.0, f"--min-lr-frac must be in [0, 1], got {self.min_lr_frac}")
        _check(self.schedule_by in SCHEDULE_CLOCKS, f"--schedule-by must be one of {', '.join(SCHEDULE_CLOCKS)}")
        _check(self.max_time >= 0, f"--max-time must be >= 0 (0 = no limit), got {self.max_time}")
        _check(self.schedule_by == "steps" or (self.schedule == "cosine" and self.max_time > 0),
               "--schedule-by time decays a cosine schedule over the time budget: it needs --schedule cosine "
               "and --max-time > 0")
        _check(self.max_steps >= 1, f"--max-steps must be >= 1, got {self.max_steps}")
        _check(self.eval_every >= 1, f"--eval-every must be >= 1, got {self.eval_every}")
        _check(self.log_every >= 1, f"--log-every must be >= 1, got {self.log_every}")
        _check(self.dtype in DTYPES, f"--dtype must be one of {', '.join(DTYPES)}")
        _check(self.max_bad_steps >= 1, f"--max-bad-steps must be >= 1, got {self.max_bad_steps}")
        _check(self.max_loss_ratio == 0 or self.max_loss_ratio > 1,
               f"--max-loss-ratio must be > 1 (0 = off), got {self.max_loss_ratio}")
        _check(self.patience >= 0, f"--patience must be >= 0 (0 = off), got {self.patience}")
        _check(self.seed >= 0, f"--seed must be >= 0, got {self.seed}")

    def time_spent(self, seconds: float) -> bool:
        """Whether `seconds` of training use up --max-time (never when it is 0, no limit)."""
        return bool(self.max_time) and seconds >= self.max_time


# The paper's configuration (min-char-rnn): what `--preset paper` sets before explicit flags apply.
PRESETS = {
    "paper": dict(cell="rnn", hidden_size=100, num_layers=1, embed_dim=0, dropout=0.0, batch_size=1, seq_len=25,
                  optimizer="adagrad", lr=0.1, clip_value=5.0, clip_norm=0.0, schedule="constant",
                  dtype="float64"),
    # The recommended CPU recipes for tinyshakespeare-sized text (about 1 MB), measured on 2 cores with --engine auto
    # (the torch engine, bf16 autocast where the CPU has AVX512-BF16 or AMX; bench/RESULTS.md, `rnnlab bench
    # --time-to-quality`). Both decay a cosine over their time budget (schedule_by="time"), so they fit whatever
    # number of steps the machine manages; change --max-time and the decay follows. A learned 64-wide embedding, not
    # one-hot: with PyTorch's initialisation the one-hot input weights start ~U(+-1/sqrt(H)) and take hundreds of
    # Adam steps to grow (75 s, H=256: 1.78 nats/char one-hot vs 1.61 embedded). T=32, not 64: the same characters
    # a second in twice the updates (75 s, H=512, bf16: 1.4415 against 1.4771 at T=64). clip-norm 50 is a guard,
    # not a brake: the summed-over-T loss's gradient norm runs 12-23 (clip-norm 5 clipped every step). max_steps
    # is no limit: the clock is. In 600 s a model sees 10-35 passes over the text and overfits: two layers with
    # dropout 0.4 alone measured 1.4405-1.4481; decoupled weight decay is what pays (AdamW's, 0.2): with dropout 0.3
    # 1.3930, 0.2 1.3945, and decay 0.1 with dropout 0.3 1.3951 (an EMA of the weights: 1.4526; T=64: 1.4429).
    "shakespeare": dict(cell="lstm", hidden_size=512, num_layers=2, embed_dim=64, dropout=0.3, batch_size=32,
                        seq_len=32, optimizer="adam", lr=4e-3, weight_decay=0.2, clip_value=0.0, clip_norm=50.0,
                        schedule="cosine", schedule_by="time", min_lr_frac=0.02, max_time=600.0,
                        max_steps=10 ** 9, dtype="float32", eval_every=1000),
    "shakespeare-quick": dict(cell="lstm", hidden_size=512, num_layers=1, embed_dim=64, dropout=0.1, batch_size=32,
                              seq_len=32, optimizer="adam", lr=5e-3, clip_value=0.0, clip_norm=50.0,
                              schedule="cosine", schedule_by="time", min_lr_frac=0.02, max_time=75.0,
                              max_steps=10 ** 9, dtype="float32", eval_every=500),
}


# What a resumed run keeps whatever the flags say: the fields that define its network and its data's encoding (and
# the seed its initialisation and data order come from). Every other field may change on --resume (a change of
# course: a lower lr, another schedule, dropout, batch size, a new text), and is recorded in the run's history.
FIXED_ON_RESUME = ("cell", "vocab_size", "hidden_size", "num_layers", "embed_dim", "task", "num_labels", "dtype",
                   "seed", "encoding")


def split_changes(mcfg, tcfg, changes: dict):
    """(ModelConfig, TrainConfig, {field: [old, new]} of what really changed) after applying `changes`, a dict of
    field -> value for either config. A UserError for a field in FIXED_ON_RESUME that would change."""
    fixed = sorted(k for k, v in changes.items() if k in FIXED_ON_RESUME and v != _get(mcfg, tcfg, k))
    if fixed:
        raise UserError(f"{', '.join('--' + k.replace('_', '-') for k in fixed)} cannot change when resuming: it "
                        f"defines the run's network or data; start a new run, or fine-tune this one with "
                        f"rnnlab train --init-from RUN --out NEW")
    order = [f.name for c in (ModelConfig, TrainConfig) for f in dataclasses.fields(c)]   # the configs' order
    changed = {k: [_get(mcfg, tcfg, k), changes[k]] for k in order if k in changes and changes[k] != _get(mcfg, tcfg, k)}
    mnames = {f.name for f in dataclasses.fields(ModelConfig)}
    return (dataclasses.replace(mcfg, **{k: v for k, v in changes.items() if k in mnames}),
            dataclasses.replace(tcfg, **{k: v for k, v in changes.items() if k not in mnames}), changed)


def _get(mcfg, tcfg, name):
    return getattr(mcfg, name) if hasattr(mcfg, name) else getattr(tcfg, name)


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(cls, d: dict, where: str = "checkpoint"):
    """Rebuild a config from JSON. Missing keys take defaults (older files); unknown keys are an error (newer files)."""
    if not isinstance(d, dict):
        raise UserError(f"{where}: config is not a JSON object; the file is corrupt or not from rnnlab")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise UserError(f"{where}: unknown {cls.__name__} fields {unknown}; it was written by a newer rnnlab "
                        f"(upgrade with pip install -U rnnlab)")
    try:
        return cls(**d)
    except TypeError as e:
        raise UserError(f"{where}: bad {cls.__name__}: {e}") from None


def replace(cfg, **changes):
    return dataclasses.replace(cfg, **changes)


__all__ = ["ModelConfig", "TrainConfig", "PRESETS", "CELLS", "TASKS", "to_dict", "from_dict", "replace"]
