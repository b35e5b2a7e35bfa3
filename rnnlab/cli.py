"""rnnlab's command line: argparse subcommands, and the single place that turns a UserError into
`error: ...` on stderr with exit code 2 (no traceback).

    rnnlab hello                          the paper's case study
    rnnlab train [--data FILE] [--out DIR] [--preset paper] [...]
    rnnlab train --resume DIR [--max-steps N]
    rnnlab sample RUN_OR_CHECKPOINT [--prime TEXT] [--length N] [--temperature T] [...]
    rnnlab eval RUN_OR_CHECKPOINT --data FILE
    rnnlab experiment gradients|memory    the paper's claims (rnnlab/experiments/cli.py), as are viz and plot
    rnnlab viz RUN_OR_CHECKPOINT --text FILE --out page.html
    rnnlab plot RUN_DIR
    rnnlab bench [--quick] [--time-to-quality --budget S]   speed and time-to-quality tables
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time

from .config import CELLS, PRESETS, ModelConfig, TrainConfig
from .benchmarks.cli import add_subcommand as add_bench_command
from .experiments.cli import add_subcommands as add_experiment_commands
from .tasks.cli import add_subcommands as add_task_commands
from .tasks.cli_conditional import add_condition_flags, sample_conditional, train_conditional
from .errors import UserError
from .train import Interrupted

# Help for every config field; the flag is the field name with dashes (hidden_size -> --hidden-size).
HELP = {
    "cell": "recurrent cell: rnn (the paper's tanh RNN), lstm or gru",
    "hidden_size": "hidden units per layer (H)", "num_layers": "stacked recurrent layers (L)",
    "embed_dim": "learned embedding size; 0 feeds one-hot characters (the paper)",
    "dropout": "dropout between layers and before the decoder, in [0, 1)",
    "data": "UTF-8 text file to train on (default: the embedded corpus, CPython's pydoc topics)",
    "encoding": "utf-8 (characters) or bytes (raw bytes: any file)",
    "val_frac": "last fraction of the text held out for validation", "batch_size": "parallel streams (N)",
    "seq_len": "unrolled time steps per batch (T)", "optimizer": "sgd, adagrad (the paper), rmsprop or adam",
    "lr": "learning rate", "momentum": "SGD momentum", "beta1": "Adam beta1",
    "beta2": "Adam beta2 (RMSprop: smoothing constant alpha)", "eps": "optimiser epsilon",
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
    "max_bad_steps": "stop after this many non-finite steps in a row",
}
CHOICES = {"cell": CELLS, "optimizer": ("sgd", "adagrad", "rmsprop", "adam"),
           "schedule": ("constant", "step", "cosine"), "schedule_by": ("steps", "time"),
           "dtype": ("float32", "float64"),
           "encoding": ("utf-8", "bytes")}
RESUME_OVERRIDES = ("max_steps", "max_time", "eval_every", "log_every", "data")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        sys.stderr.write(f"error: {message} (see '{self.prog} --help')\n")
        sys.exit(2)


def _number(kind):
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


def _add_config_flags(p, cls, skip=(), defaults=None, helps=None, title="defaults shown; --preset applies first"):
    """One --flag per field of config dataclass `cls` (hidden_size -> --hidden-size), default None so that only
    explicit flags override; `defaults` and `helps` replace the shown default and help text of some fields."""
    defaults, helps = defaults or {}, helps or {}
    g = p.add_argument_group(f"{cls.__name__} ({title})")
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kind = {"int": int, "float": float}.get(f.type)
        text = helps.get(f.name, HELP[f.name])
        shown = text if f.name == "data" else f"{text} (default: {defaults.get(f.name, f.default)!r})"
        g.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None, metavar=f.name.upper(),
                       type=_number(kind) if kind else str, choices=CHOICES.get(f.name), help=shown)


def _add_engine(p, train=False):
    p.add_argument("--engine", default="numpy", choices=("numpy", "torch", "auto"),
                   help="numpy (exact, readable), torch (fast LSTMs, GPUs, torchrun; pip install "
                        "'rnnlab[torch]'), or auto: the faster one for this cell and job here (on a CPU: torch for "
                        "LSTM training, numpy for rnn, gru and sampling) (default: numpy)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                   help="torch engine: where to compute; auto = cuda, else mps, else cpu (default: auto)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"),
                   help="torch engine: fp32, or bf16 autocast (CUDA only; weights stay float32) (default: fp32)")
    if train:
        p.add_argument("--ddp-timeout", type=_number(float), default=None, metavar="SECONDS",
                       help="under torchrun: stop with an error when another process is gone or silent this long "
                            "(default: 60 with gloo on CPUs, 600 with nccl on GPUs)")


def _engine_options(args) -> dict:
    return {"device": args.device, "precision": args.precision, "ddp_timeout": getattr(args, "ddp_timeout", None)}


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="rnnlab", description="Recurrent networks on sequences: train character models, sample, "
                                            "evaluate. Every subcommand has --help.")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    h = sub.add_parser("hello", help="the paper's case study: a vanilla RNN learns to spell 'hello'",
                       description="Train a vanilla RNN on 'hello' (vocabulary h, e, l, o), print each step's "
                                   "probabilities, and generate from the seed 'h'.")
    h.add_argument("--steps", type=_number(int), default=300, help="training steps (default: 300)")
    h.add_argument("--hidden-size", type=_number(int), default=16, help="hidden units (default: 16)")
    h.add_argument("--seed", type=_number(int), default=0, help="random seed (default: 0)")

    t = sub.add_parser("train", help="train a character model on a text file (or the embedded corpus)",
                       description="Train a character-level model with truncated BPTT. Writes latest.safetensors, "
                                   "best.safetensors, metrics.jsonl and data.ids (the text as ids, memory-mapped, "
                                   "a cache) to the run directory. Ctrl-C or SIGTERM checkpoints and exits 130/143; "
                                   "a second Ctrl-C exits at once.")
    t.add_argument("--out", help="run directory (default: runs/<cell>-<date>-<time>)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR exactly where it stopped; "
                   "only --max-steps, --max-time, --eval-every, --log-every and --data may change")
    t.add_argument("--preset", choices=sorted(PRESETS), help="paper: the paper's rnn, H=100, T=25, batch 1, "
                   "Adagrad lr 0.1, clip +-5, float64. shakespeare: the recommended CPU recipe for ~1 MB of text "
                   "and 10 minutes (lstm H=512, embedding 64, dropout 0.2, N=32, T=64, Adam 5e-3 on a cosine over "
                   "--max-time 600 s, clip-norm 50; with --engine torch, 1.44 nats/char on tinyshakespeare on 2 "
                   "cores). shakespeare-quick: the same for 75 s (H=256, no dropout, Adam 1e-2). Change --max-time "
                   "and the cosine follows it")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_engine(t, train=True)
    _add_config_flags(t, ModelConfig, skip=("vocab_size", "task", "num_labels"))
    _add_config_flags(t, TrainConfig)

    s = sub.add_parser("sample", help="generate text from a trained model",
                       description="Generate text one character at a time, each output fed back as the next "
                                   "input. Characters stream to stdout as they are generated.")
    s.add_argument("path", metavar="RUN_OR_CHECKPOINT", help="a run directory or a .safetensors checkpoint")
    s.add_argument("--which", choices=("best", "latest"), default="best", help="checkpoint in a run directory "
                   "(default: best)")
    s.add_argument("--prime", default="", help="text to start from (default: a newline)")
    s.add_argument("--length", type=_number(int), default=500, help="characters to generate (default: 500)")
    s.add_argument("--temperature", type=_number(float), default=1.0, help="softmax temperature; 0 = argmax")
    s.add_argument("--top-k", type=_number(int), default=0, help="sample from the k most likely (0 = all)")
    s.add_argument("--top-p", type=_number(float), default=1.0, help="nucleus sampling mass (1 = all)")
    s.add_argument("--argmax", action="store_true", help="always take the most likely character")
    s.add_argument("--seed", type=_number(int), default=0, help="random seed (default: 0)")
    s.add_argument("--num-samples", type=_number(int), default=1, help="K samples generated in one batch")
    s.add_argument("--unknown", choices=("error", "skip"), default="error",
                   help="prime characters not in the vocabulary: error (default) or skip them")
    _add_engine(s)

    e = sub.add_parser("eval", help="loss of a trained model on any text, in nats and bits per character",
                       description="Evaluate a checkpoint on a text file with the checkpoint's vocabulary: one "
                                   "pass, the hidden state carried from zeros.")
    e.add_argument("path", metavar="RUN_OR_CHECKPOINT")
    e.add_argument("--data", required=True, help="text file to evaluate on")
    e.add_argument("--which", choices=("best", "latest"), default="best")
    e.add_argument("--unknown", choices=("error", "skip"), default="error",
                   help="characters not in the vocabulary: error (default) or skip them")
    _add_engine(e)
    add_bench_command(sub)                       # bench: speed tables, time to quality (rnnlab/benchmarks/cli.py)
    add_experiment_commands(sub)                 # experiment gradients|memory, viz, plot: rnnlab/experiments/cli.py
    add_task_commands(sub)                       # classify, predict, seq2seq, synth, speakers: rnnlab/tasks/cli.py
    add_condition_flags(t, s)                    # train --condition-column, sample --condition (one-to-many)
    return ap


def _configs(args, base=None):
    """(ModelConfig, TrainConfig) from `base` values (a preset's, or a task's defaults) overridden by every flag
    given explicitly."""
    values = dict(PRESETS.get(getattr(args, "preset", None) or "", {}) if base is None else base)
    values.update({k: v for k, v in vars(args).items() if v is not None})
    pick = lambda cls: {f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values}  # noqa: E731
    return ModelConfig(**pick(ModelConfig)), TrainConfig(**pick(TrainConfig))


def cmd_train(args):
    from .train import train
    if train_conditional(args):                  # --condition-column: rnnlab/tasks/conditional.py
        return
    if args.resume:
        names = {f.name for c in (ModelConfig, TrainConfig) for f in dataclasses.fields(c)}
        fixed = sorted(n for n in names if getattr(args, n, None) is not None and n not in RESUME_OVERRIDES)
        if fixed or args.preset or args.out:
            bad = [f"--{n.replace('_', '-')}" for n in fixed] + (["--preset"] if args.preset else []) + \
                  (["--out"] if args.out else [])
            raise UserError(f"{', '.join(bad)} cannot change when resuming (the run's own config is used); "
                            f"only {', '.join('--' + n.replace('_', '-') for n in RESUME_OVERRIDES)} may")
        overrides = {n: getattr(args, n) for n in RESUME_OVERRIDES if getattr(args, n) is not None}
        train(None, None, args.resume, args.engine, resume=True, overrides=overrides,
              engine_options=_engine_options(args),
              progress=False if args.no_progress else None)
        return
    mcfg, tcfg = _configs(args)
    out = args.out or f"runs/{mcfg.cell}-{time.strftime('%Y%m%d-%H%M%S')}"
    train(mcfg, tcfg, out, args.engine, progress=False if args.no_progress else None,
          engine_options=_engine_options(args))


def _load(path, which, engine_name, engine_options=None, job="eval"):
    from . import checkpoint, snapshot
    from .engines import make_engine
    snap = snapshot.load(checkpoint.resolve(path, which))
    engine = make_engine(engine_name, snap.mcfg, snap.tcfg, job, **(engine_options or {}))
    return snap, engine, engine.load_params(snap.params)


def cmd_sample(args):
    from .sample import generate
    if sample_conditional(args):                 # --condition: rnnlab/tasks/conditional.py
        return
    snap, engine, params = _load(args.path, args.which, args.engine, _engine_options(args), job="sample")
    stream = args.num_samples == 1
    out = sys.stdout

    def on_text(k, s):
        out.write(s)
        out.flush()
    texts = generate(engine, params, snap.vocab, args.prime, args.length, args.num_samples, args.seed,
                     args.temperature, args.top_k, args.top_p, args.argmax, args.unknown,
                     on_text if stream else None)
    if stream:
        out.write("\n")
    else:
        for k, text in enumerate(texts):
            out.write(f"--- sample {k + 1} ---\n{text}\n")


def cmd_eval(args):
    from .text import read_text
    from .train import evaluate_ids
    snap, engine, params = _load(args.path, args.which, args.engine, _engine_options(args))
    data = read_text(args.data, snap.vocab.encoding)
    ids = snap.vocab.encode(data, unknown=args.unknown)
    if len(ids) < 2:
        raise UserError(f"{args.data} has fewer than 2 known characters; there is nothing to predict")
    nats = evaluate_ids(engine, params, ids)
    print(f"{args.data}: {nats:.4f} nats/char, {nats / 0.6931471805599453:.4f} bits/char over {len(ids) - 1:,} "
          f"predicted characters (checkpoint step {snap.step}, engine {engine.name})")


def cmd_hello(args):
    from .hello import run
    word = run(args.steps, args.hidden_size, args.seed)
    if word != "hello":
        raise UserError(f"the network produced {word!r}, not 'hello'; train longer with --steps")


COMMANDS = {"hello": cmd_hello, "train": cmd_train, "sample": cmd_sample, "eval": cmd_eval}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        (COMMANDS.get(args.command) or args.run)(args)   # subcommands added elsewhere set `run`
    except UserError as e:
        sys.stdout.flush()
        sys.stderr.write(f"error: {e}\n")
        return 2
    except BrokenPipeError:          # `rnnlab sample ... | head`: the reader left, that is fine
        return 0
    except Interrupted as e:         # train caught SIGINT/SIGTERM and saved a checkpoint
        return 128 + e.signum
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return 130
    except MemoryError:              # an absurd size (--hidden-size 10**9): say so, without a traceback
        sys.stdout.flush()
        sys.stderr.write("error: not enough memory for this model, batch or sample count; use a smaller "
                         "--hidden-size, --num-layers, --batch-size, --seq-len or --num-samples\n")
        return 2
    return 0
