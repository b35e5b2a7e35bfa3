"""`rnnlab train --condition-column` and `rnnlab sample --condition`: the core's train and sample commands hand
over to rnnlab/tasks/conditional.py here when a table's label column is named or a conditional model is read.

rnnlab/cli/__init__.py adds the flags with add_condition_flags(train_parser, sample_parser) and asks
train_conditional(args) / sample_conditional(args) first; each returns False when the command is not conditional,
leaving it to core.py.
"""
from __future__ import annotations

from ..errors import UserError
from .args import (configs, engine_options, first_line, need_data, progress, read_prime, resume_overrides,
                   run_dir, say, text_output, write_samples)


def add_condition_flags(train_parser, sample_parser):
    """--condition-column/--text-column/--delimiter for `rnnlab train`, --condition for `rnnlab sample`."""
    g = train_parser.add_argument_group("one-to-many: conditional generation (a label picks the initial state)")
    g.add_argument("--condition-column", metavar="COLUMN", help="train on a CSV/TSV (--data): each row's text is "
                   "one line, generated from a learned initial state for the row's label in COLUMN")
    g.add_argument("--text-column", metavar="COLUMN", help="column with the text (default: the other column of "
                   "a two-column table)")
    g.add_argument("--delimiter", help="field delimiter, one character or 'tab' (default: from the file name)")
    sample_parser.add_argument("--condition", metavar="LABEL", help="a model trained with --condition-column: "
                               "write as LABEL (every line starts from LABEL's learned state)")


def train_conditional(args) -> bool:
    """`rnnlab train --condition-column` (or --resume of such a run): train here and return True; else False."""
    from ..snapshot import task_of
    resuming = args.resume and task_of(args.resume) == "conditional"
    if not (args.condition_column or resuming):
        if args.text_column or args.delimiter:
            raise UserError("--text-column and --delimiter are for tables: add --condition-column COLUMN")
        return False
    from ..tasks import conditional
    engine = {"engine": args.engine, "engine_options": engine_options(args)}
    if args.resume:
        if args.condition_column or args.text_column or args.delimiter:
            raise UserError("--condition-column, --text-column and --delimiter cannot change when resuming")
        conditional.train(None, None, {}, args.resume, resume=True, overrides=resume_overrides(args),
                          progress=progress(args), **engine)
        out = args.resume
    else:
        mcfg, tcfg = configs(args)
        need_data(tcfg)
        if tcfg.encoding != "utf-8":
            raise UserError("--condition-column reads a UTF-8 table; drop --encoding bytes")
        out = run_dir(args, mcfg, "conditional")
        conditional.train(mcfg, tcfg, {"condition_column": args.condition_column, "text_column": args.text_column,
                                       "delimiter": args.delimiter}, out, progress=progress(args), **engine)
    say(f"done; sample with: rnnlab sample {out} --condition LABEL")
    return True


def sample_conditional(args) -> bool:
    """`rnnlab sample --condition LABEL` (or any sample from a conditional model): sample here and return True."""
    from ..models import open_model
    from ..snapshot import load, task_of
    from ..tasks import conditional
    if args.condition is None:
        if task_of(args.path) == "conditional":
            from ..checkpoint import resolve
            labels = load(resolve(args.path, args.which), "conditional").extra["labels"]
            raise UserError(f"this model writes as one of {len(labels)} labels; choose one with --condition "
                            f"(e.g. --condition {labels[0]!r})")
        return False
    task = task_of(args.path)
    if task not in ("conditional", None):
        raise UserError(f"--condition needs a model trained with --condition-column; {args.path} holds a "
                        f"{'character-model' if task == 'lm' else task} checkpoint: drop --condition")
    prime = read_prime(args)
    run, engine, params = open_model(args.path, "conditional", args.which, args.engine, "sample",
                                     **engine_options(args), rows=args.num_samples)
    text_output(run.vocab)
    write_samples(lambda on_text: conditional.generate(
        engine, params, run.vocab, run.extra["labels"], args.condition, prime, args.length, args.num_samples,
        args.seed, args.temperature, args.top_k, args.top_p, args.argmax, args.unknown, on_text,
        args.stop or ""), args.num_samples, first_line("sample", engine))
    return True
