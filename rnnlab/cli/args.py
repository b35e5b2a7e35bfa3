"""What every command family of the command line shares: the parser class, the number parser, the config flags
(one --flag per config field), the engine flags, and the run helpers of the commands that train (resume checks, run
directory, progress bar). The family modules (core.py, tasks.py, conditional.py, experiments.py, bench.py) import
only this module and the library modules they drive.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
import time
from pathlib import Path

from ..cells import CELLS, NAMES
from ..config import PRESETS, ModelConfig, TrainConfig
from ..errors import UserError

# Help for every config field; the flag is the field name with dashes (hidden_size -> --hidden-size).
HELP = {
    "cell": "recurrent cell: " + "; ".join(f"{c.name} = {c.help}" for c in CELLS.values()),
    "hidden_size": "hidden units per layer (H)", "num_layers": "stacked recurrent layers (L)",
    "embed_dim": "learned embedding size; 0 feeds one-hot characters (the paper)",
    "dropout": "dropout in [0, 1): between layers (per element) and on the top layer before the decoder (one "
               "mask per sequence and unit for all its steps: variational dropout)",
    "data": "UTF-8 text file to train on (default: the embedded corpus, CPython's pydoc topics)",
    "encoding": "utf-8 (characters) or bytes (raw bytes: any file)",
    "val_frac": "last fraction of the text held out for validation", "batch_size": "parallel streams (N)",
    "seq_len": "unrolled time steps per batch (T)", "optimizer": "sgd, adagrad (the paper), rmsprop or adam",
    "lr": "learning rate", "momentum": "SGD momentum", "beta1": "Adam beta1",
    "beta2": "Adam beta2 (RMSprop: smoothing constant alpha)", "eps": "optimiser epsilon",
    "weight_decay": "decoupled weight decay (AdamW's, any optimiser): every weight shrinks by lr * weight_decay "
                    "of itself before each update; 0 = off",
    "clip_value": "clip each gradient entry to [-v, v], 0 = off (the paper: 5)",
    "clip_norm": "clip the global gradient norm, 0 = off", "schedule": "learning-rate schedule: constant, step, cosine",
    "warmup_steps": "linear warmup steps", "step_size": "schedule=step: decay every N steps",
    "gamma": "schedule=step: decay factor", "min_lr_frac": "schedule=cosine: final lr as a fraction of --lr",
    "schedule_by": "schedule=cosine: decay over --max-steps (steps) or over --max-time (time: the decay ends "
                   "when the time budget does, on any machine)",
    "max_steps": "stop after this many steps",
    "max_time": "stop after this many seconds of training over the whole run, resumes included; evaluation and "
                "checkpoint writes are not counted (0 = no limit)",
    "eval_every": "validate and checkpoint every N steps", "log_every": "log training metrics every N steps",
    "seed": "random seed (initialisation and dropout)", "dtype": "float32 or float64",
    "max_bad_steps": "stop after this many bad steps in a row: a non-finite loss or gradient (the update is "
                     "skipped), or a loss above --max-loss-ratio times the run's first",
    "max_loss_ratio": "a step whose loss is above this many times the run's first loss is a bad step: a run "
                      "that explodes stops instead of ending 'done' with a useless model (char-rnn's rule: 3; "
                      "0 = off)",
    "patience": "stop early after this many evaluations without a better validation score (0 = off)",
}
CHOICES = {"cell": NAMES, "optimizer": ("sgd", "adagrad", "rmsprop", "adam"),
           "schedule": ("constant", "step", "cosine"), "schedule_by": ("steps", "time"),
           "dtype": ("float32", "float64"),
           "encoding": ("utf-8", "bytes")}
# Model fields that the data and the command fill in, never a flag: V, which network, how many labels.
FROM_DATA = ("vocab_size", "task", "num_labels")


class Parser(argparse.ArgumentParser):
    """argparse's parser, but a usage error is one line `error: ... (see 'PROG --help')` and exit code 2."""

    def error(self, message):
        sys.stderr.write(f"error: {message} (see '{self.prog} --help')\n")
        sys.exit(2)


def number(kind):
    """An argparse `type` for int or float: a bad or non-finite value is a usage error naming the kind."""
    def parse(s):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{s!r} is not a valid {kind.__name__}") from None
        if kind is float and not math.isfinite(v):    # nan, inf, 1e999: no setting means that
            raise argparse.ArgumentTypeError(f"{s!r} is not a finite number")
        return v
    parse.__name__ = kind.__name__
    return parse


def add_config_flags(p, cls, skip=(), defaults=None, helps=None, title="defaults shown; --preset applies first"):
    """One --flag per field of config dataclass `cls` (hidden_size -> --hidden-size), default None so that only
    explicit flags override; `defaults` and `helps` replace the shown default and help text of some fields."""
    defaults, helps = defaults or {}, helps or {}
    g = p.add_argument_group(f"{cls.__name__} ({title})")
    for f in dataclasses.fields(cls):
        if f.name in skip or f.name in FROM_DATA:
            continue
        kind = {"int": int, "float": float}.get(f.type)
        text = helps.get(f.name, HELP[f.name])
        shown = text if f.name == "data" else f"{text} (default: {defaults.get(f.name, f.default)!r})"
        g.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None, metavar=f.name.upper(),
                       type=number(kind) if kind else str, choices=CHOICES.get(f.name), help=shown)


def configs(args, base=None):
    """(ModelConfig, TrainConfig) from `base` values (a preset's, or a task's defaults) overridden by every flag
    given explicitly."""
    preset = getattr(args, "preset", None) if base is None else None
    values = dict(PRESETS.get(preset or "", {}) if base is None else base)
    given = {k: v for k, v in vars(args).items() if v is not None}
    values.update(given)
    pick = lambda cls: {f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values}  # noqa: E731
    try:
        return ModelConfig(**pick(ModelConfig)), TrainConfig(**pick(TrainConfig))
    except UserError as e:
        raise UserError(preset_note(str(e), preset, given)) from None


def preset_note(message: str, preset: str | None, given: dict) -> str:
    """`message` (a config error) with the values --preset set for the flags it names, where the command line did
    not give them: "--schedule-by time ... needs --max-time > 0 (--preset shakespeare sets --schedule-by time, ...)"."""
    if not preset:
        return message
    named = dict.fromkeys(f[2:].replace("-", "_") for f in re.findall(r"--[a-z][a-z0-9-]*", message))
    by_preset = [f"--{k.replace('_', '-')} {PRESETS[preset][k]}" for k in named
                 if k in PRESETS[preset] and k not in given]
    return f"{message} (--preset {preset} sets {', '.join(by_preset)})" if by_preset else message


def add_engine(p, train=False):
    """--engine, --device, --precision, --threads (and, for training, --ddp-timeout)."""
    p.add_argument("--engine", default=None if train else "numpy", choices=("numpy", "torch", "auto"),
                   help="numpy (exact, readable), torch (fast LSTMs, GPUs, torchrun; pip install "
                        "'rnnlab[torch]'), or auto: the faster one for this cell and job here (on a CPU: torch to "
                        f"train {', '.join(n for n in NAMES if CELLS[n].cpu_train == 'torch')}, numpy for "
                        f"{', '.join(n for n in NAMES if CELLS[n].cpu_train != 'torch')} and sampling; torch "
                        "trains in bf16 on a CPU with AMX or AVX512-BF16 unless --precision fp32) (default: numpy"
                        + ("; with --resume, the --engine and --precision the run last ran with)" if train else ")"))
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                   help="torch engine: where to compute; auto = cuda, else mps, else cpu (default: auto)")
    p.add_argument("--precision", default=None, choices=("fp32", "bf16"),
                   help="torch engine: fp32, or bf16 autocast on CUDA or on a CPU with AMX or AVX512-BF16 "
                        "(weights, optimiser state and checkpoints stay float32) (default: fp32; bf16 with "
                        "--engine auto where the CPU has it)")
    p.add_argument("--threads", type=number(int), default=0, metavar="N",
                   help="threads for the maths (NumPy's BLAS, torch); 0 = auto: the CPUs this process may use "
                        "(affinity, cgroup quota, OMP_NUM_THREADS), 1 where a time step's matrices are too small to "
                        "share, as in sampling one sequence (default: 0)")
    if train:
        p.add_argument("--adapt-threads", nargs="?", const="on", default="auto", choices=("auto", "on", "off"),
                       help="with --threads 0: time 1 thread against all as training goes and keep the faster, so "
                            "a run beside other work keeps its speed instead of collapsing. auto: where a step "
                            "gives the same bits on 1 thread as on all (checked before the first switch; the run "
                            "stays bit-reproducible), or where all threads ran over 3x slower than 1 at that check "
                            "(said in a line); on (the flag alone): always, at the cost of bit-reproducibility where "
                            "the rounding differs; off: never (default: auto)")
        p.add_argument("--ddp-timeout", type=number(float), default=None, metavar="SECONDS",
                       help="under torchrun: stop with an error when another process is gone or silent this long "
                            "(default: 60 with gloo on CPUs, 600 with nccl on GPUs)")


def engine_options(args) -> dict:
    """make_engine's options from the flags add_engine added: the torch engine's, and --threads."""
    options = {"device": args.device, "precision": args.precision, "threads": args.threads,
               "ddp_timeout": getattr(args, "ddp_timeout", None)}
    if hasattr(args, "adapt_threads"):                              # training only: the loop's governor
        if args.adapt_threads == "on" and args.threads != 0:
            raise UserError(f"--adapt-threads switches between 1 thread and the auto count; it needs --threads 0 "
                            f"(auto), not --threads {args.threads}")
        options["adapt_threads"] = args.adapt_threads
    return options


def first_line(command: str, engine) -> str:
    """The first line of sample and eval, for stderr (stdout is the sample, or the result): the engine, where it
    computes, and on how many threads. Written once the command has output, so that an error stays one line."""
    from ..threads import describe
    return f"rnnlab {command}: engine {engine.name} ({engine.device}) on {describe(engine.name)}"


def note(line: str) -> None:
    """`line` on stderr, before the stdout written after it."""
    sys.stdout.flush()
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def resume_overrides(args) -> dict:
    """The config flags given explicitly with --resume: a change of course (lr, schedule, clipping, dropout, batch
    size, budget, a new --data, ...), checked against the run's config when it is read (config.split_changes).
    --preset and --out are a UserError: a resumed run keeps its folder, and a preset would rebuild the network."""
    names = {f.name for c in (ModelConfig, TrainConfig) for f in dataclasses.fields(c)}
    bad = [flag for flag, given in (("--preset", getattr(args, "preset", None)), ("--out", getattr(args, "out", None)))
           if given]
    if bad:
        raise UserError(f"{', '.join(bad)} cannot be given with --resume: the run keeps its own folder and "
                        f"network; change its course with the config flags (e.g. --lr), or start a new run")
    changes = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    if changes.get("data") and not Path(changes["data"]).is_file():
        raise UserError(f"--data {changes['data']}: no such file; give an existing text to go on with, or leave "
                        f"--data out to go on with the run's own")
    return changes


def progress(args):
    """The `progress` argument of the training loops: False with --no-progress, else None (a bar on a terminal)."""
    return False if args.no_progress else None


def run_dir(args, mcfg, task=None) -> str:
    """--out, or runs/[<task>-]<cell>-<date>-<time>."""
    return args.out or f"runs/{task + '-' if task else ''}{mcfg.cell}-{time.strftime('%Y%m%d-%H%M%S')}"


def say(text: str) -> None:
    """print() on the process that reports: rank 0 under torchrun (the others train in step, silently)."""
    from ..engines import process_rank
    if process_rank() == 0:
        print(text)


def need_data(tcfg):
    """The tables' commands have no embedded corpus: --data is required."""
    if not tcfg.data:
        raise UserError("--data FILE is required: a CSV or TSV table (make one with `rnnlab synth TASK --out FILE`)")


def read_prime(args) -> str:
    """--prime, or the text of --prime-file (- for standard input); both at once is a UserError."""
    if getattr(args, "prime_file", None) is None:
        return args.prime
    if args.prime:
        raise UserError("give the prime with --prime TEXT or --prime-file FILE, not both")
    if args.prime_file == "-":
        return sys.stdin.read()
    from pathlib import Path

    from ..text import read_text
    path = Path(args.prime_file)
    if path.is_file() and path.stat().st_size == 0:
        return ""                                                   # as an empty stdin: the default start
    try:
        return read_text(path)
    except UserError as e:                                          # read_text's hints speak of training data
        reason = str(e).split(";")[0]
        raise UserError(f"--prime-file: {reason}; give a UTF-8 text file (or - for standard input)") from None


def text_output(vocab) -> None:
    """Make stdout able to print every symbol of `vocab`. A stream whose encoding can't (a cp1252 console,
    PYTHONIOENCODING, Windows redirecting to a file) gets UTF-8 when it is a file or a pipe, and '?' for the
    characters it lacks, with one warning on stderr, when it is a terminal (which shows what it can)."""
    stream = sys.stdout
    enc = getattr(stream, "encoding", None) or "utf-8"
    text = "".join(vocab.symbols) if vocab.encoding == "utf-8" else ""     # bytes models print UTF-8 text
    try:
        text.encode(enc)
        if vocab.encoding == "utf-8" or enc.lower().replace("-", "") in ("utf8", "utf_8"):
            return
    except (UnicodeEncodeError, LookupError):
        pass
    if not hasattr(stream, "reconfigure"):
        return
    if stream.isatty():
        stream.reconfigure(errors="replace")
        sys.stderr.write(f"warning: this terminal's encoding ({enc}) lacks some of the model's characters; they "
                         f"show as '?' (redirect to a file for UTF-8)\n")
    else:
        stream.reconfigure(encoding="utf-8")


def write_samples(generate, num_samples, header: str):
    """Print what `generate(on_text)` produces: one sample streams to stdout as it is made (on_text(k, piece)),
    several are printed after each other under `--- sample k ---` (on_text is None then). `header` goes to
    stderr before the first text (not at all when generating fails first)."""
    stream, started = num_samples == 1, []

    def on_text(k, s):
        if not started:
            note(header)
            started.append(True)
        sys.stdout.write(s)
        sys.stdout.flush()
    texts = generate(on_text if stream else None)
    if not started:
        note(header)
    if stream:
        sys.stdout.write("\n")
    else:
        for k, text in enumerate(texts):
            sys.stdout.write(f"--- sample {k + 1} ---\n{text}\n")
