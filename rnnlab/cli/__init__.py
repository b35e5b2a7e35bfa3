"""rnnlab's command line: argparse subcommands, and the single place that turns a UserError into
`error: ...` on stderr with exit code 2 (no traceback).

    rnnlab hello                          the paper's case study
    rnnlab train [--data FILE] [--out DIR] [--preset paper] [...]
    rnnlab train --resume DIR [--max-steps N]
    rnnlab sample RUN_OR_CHECKPOINT [--prime TEXT] [--length N] [--temperature T] [...]
    rnnlab eval RUN_OR_CHECKPOINT --data FILE
    rnnlab experiment gradients|memory    the paper's claims (rnnlab/cli/experiments.py), as are viz and plot
    rnnlab viz RUN_OR_CHECKPOINT --text FILE --out page.html
    rnnlab plot RUN_DIR
    rnnlab bench [--quick] [--time-to-quality --budget S]   speed and time-to-quality tables
    rnnlab classify | predict | seq2seq | synth | speakers  the task shapes (rnnlab/cli/tasks.py)
    rnnlab export RUN_OR_CHECKPOINT --format html|onnx --out FILE   a web page that samples, or ONNX (cli/export.py)

One module per command family, each with add_subcommands(sub): core.py (hello, train, sample, eval), bench.py,
experiments.py, tasks.py, export.py, and conditional.py (the flags `train --condition-column` and `sample --condition`). They
share args.py; only this module imports them. Every subcommand stores its function as `run`.
"""
from __future__ import annotations

from ..threads import prepare_env

prepare_env()       # how idle BLAS/OpenMP threads wait: read once, when NumPy and torch load (rnnlab/threads.py)

import argparse  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from ..errors import UserError  # noqa: E402
from ..run import Interrupted  # noqa: E402
from . import bench, conditional, core, experiments, export, tasks  # noqa: E402
from .args import Parser  # noqa: E402


def cmd_train(args):
    """rnnlab train: a table with --condition-column (or the resume of such a run) is conditional.py's, the rest
    core.py's."""
    if not conditional.train_conditional(args):
        core.cmd_train(args)


def cmd_sample(args):
    """rnnlab sample: --condition (or any conditional model) is conditional.py's, the rest core.py's."""
    if not conditional.sample_conditional(args):
        core.cmd_sample(args)


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(prog="rnnlab", description="Recurrent networks on sequences: train character models, sample, "
                                           "evaluate. Every subcommand has --help.")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    t, s = core.add_subcommands(sub)             # hello, train, sample, eval: rnnlab/cli/core.py
    bench.add_subcommands(sub)                   # bench: speed tables, time to quality (rnnlab/cli/bench.py)
    experiments.add_subcommands(sub)             # experiment gradients|memory, viz, plot: rnnlab/cli/experiments.py
    tasks.add_subcommands(sub)                   # classify, predict, seq2seq, synth, speakers: rnnlab/cli/tasks.py
    export.add_subcommands(sub)                  # export --format html|onnx: rnnlab/cli/export.py
    conditional.add_condition_flags(t, s)        # train --condition-column, sample --condition (one-to-many)
    t.set_defaults(run=cmd_train)                # core's train and sample, after the conditional check
    s.set_defaults(run=cmd_sample)
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except UserError as e:
        sys.stdout.flush()
        sys.stderr.write(f"error: {e}\n")
        return 2
    except BrokenPipeError:          # `rnnlab sample ... | head`: the reader left, that is fine; not for training
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())    # no second error at exit's flush
        if not hasattr(args, "resume"):
            return 0
        sys.stderr.write("error: training stopped: its output pipe closed (the reader, e.g. `| head`, exited); "
                         "continue from its last checkpoint with --resume RUN_DIR, or redirect the output to a file\n")
        return 2
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
