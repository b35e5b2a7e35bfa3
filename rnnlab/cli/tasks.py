"""Command line of the task shapes. rnnlab/cli/__init__.py calls add_subcommands(sub) once (and routes `train
--condition-column` and `sample --condition` to conditional.py); it turns every UserError into one line, exit 2.

    rnnlab classify --data FILE.tsv [--text-column text] [--label-column label] --out DIR     many-to-one
    rnnlab predict RUN (--text TEXT ... | --data FILE)
    rnnlab train --data FILE.tsv --condition-column speaker --out DIR                          one-to-many
    rnnlab sample RUN --condition LABEL
    rnnlab seq2seq train --data FILE.tsv [--source-column source] [--target-column target] --out DIR
    rnnlab seq2seq predict RUN (--text SOURCE ... | --data FILE) [--beam K]                    many-to-many
    rnnlab synth TASK --out FILE          parity, brackets, reverse, sort, words, dates, styles
    rnnlab speakers PLAY --out FILE       a play in tinyshakespeare's layout -> speaker<TAB>line
"""
from __future__ import annotations

import sys

import numpy as np

from ..config import ModelConfig, TrainConfig
from ..errors import UserError
from .args import (add_config_flags, add_engine, configs, engine_options, need_data, number, progress,
                   resume_overrides, run_dir, say, text_output)

# Each task's defaults (instead of the character model's); explicit flags win. Measured on 2 CPU cores.
DEFAULTS = {
    "classify": dict(cell="gru", hidden_size=64, batch_size=32, lr=0.01, max_steps=1000, eval_every=100,
                     log_every=10),
    "seq2seq": dict(cell="lstm", hidden_size=128, batch_size=64, lr=0.01, schedule="cosine", min_lr_frac=0.05,
                    max_steps=2000, eval_every=250, val_frac=0.05, log_every=10),
}
# Tasks batch whole sequences of characters (no seq_len, no encoding); their loop counts the schedule in steps.
SKIP = ("vocab_size", "seq_len", "encoding", "schedule_by")
TASK_HELP = {"data": "CSV or TSV table to train on (required)", "batch_size": "sequences per batch (N)",
             "val_frac": "fraction of the rows held out for validation (a seeded random split)"}


def _train_or_resume(args, task, train, opts):
    """Continue the run in --resume, or start one from the flags; returns (train's result, run directory)."""
    if args.resume:
        return train(None, None, opts, args.resume, resume=True, overrides=resume_overrides(args),
                     progress=progress(args), engine=args.engine, engine_options=engine_options(args)), args.resume
    mcfg, tcfg = configs(args, DEFAULTS[task])
    need_data(tcfg)
    out = run_dir(args, mcfg, task)
    return train(mcfg, tcfg, opts, out, progress=progress(args), engine=args.engine,
                 engine_options=engine_options(args)), out


def cmd_classify(args):
    from ..tasks.classify import train
    if args.max_len < 0:
        raise UserError(f"--max-len must be >= 0 (0 = whole texts), got {args.max_len}")
    opts = {"text_column": args.text_column, "label_column": args.label_column, "delimiter": args.delimiter,
            "max_len": args.max_len}
    res, out = _train_or_resume(args, "classify", train, opts)
    if "report" in res:
        say(f"validation at step {res['step']} (latest.safetensors):\n{res['report']}")
    if res.get("best"):
        say(f"best validation accuracy {res['best'][0]:.4f} (best.safetensors, which predict uses)")
    say(f"done: step {res['step']}; predict with: rnnlab predict {out} --text '...'")


def cmd_predict(args):
    from ..models import open_model
    from ..tasks import classify, data
    run, engine, params = open_model(args.path, "classify", args.which, args.engine, "eval", **engine_options(args))
    labels, opts = run.extra["labels"], run.extra["options"]
    if bool(args.text) == bool(args.data):
        raise UserError("give the text to classify with --text TEXT (repeatable) or --data FILE, one of the two")
    cut = (lambda t: t[:opts["max_len"]]) if opts.get("max_len") else (lambda t: t)
    if args.text:
        texts, truth = [cut(t) for t in args.text], None
    else:
        cols = {"text": args.text_column or opts["text_column"]}
        label_col = args.label_column or opts["label_column"]
        try:
            both = data.read_table(args.data, {**cols, "label": label_col}, args.delimiter)
            texts, truth = both["text"], both["label"]
        except UserError:
            texts, truth = data.read_table(args.data, cols, args.delimiter)["text"], None
        texts = [cut(t) for t in texts]
    seqs = data.encode_all(run.vocab, texts, "text to classify", args.unknown)
    text_output(run.vocab)
    probs = classify.predict_proba(engine, params, seqs)
    for t, p in zip(texts, probs):
        best = int(p.argmax())
        if args.text:
            print(f"{labels[best]}\t{t}")
            print("  " + "  ".join(f"{labels[c]} {p[c]:.4f}" for c in np.argsort(-p, kind="stable")))
        else:
            print(f"{labels[best]}\t{p[best]:.4f}\t{t}")
    if truth is not None:
        unknown = sorted(set(truth) - set(labels))
        if unknown:
            raise UserError(f"{args.data}: labels {unknown[:5]} are not among the model's {labels[:8]}")
        conf = classify.confusion([labels.index(s) for s in truth], probs.argmax(1), len(labels))
        sys.stderr.write(classify.report(labels, conf) + "\n")


def cmd_seq2seq_train(args):
    from ..tasks.seq2seq import train
    opts = {"source_column": args.source_column, "target_column": args.target_column, "delimiter": args.delimiter}
    res, out = _train_or_resume(args, "seq2seq", train, opts)
    if "val_exact" in res:
        say(f"validation at step {res['step']}: exact match {res['val_exact']:.4f}, character error rate "
              f"{res['val_cer']:.4f} (greedy)")
    if res.get("best"):
        say(f"best: exact match {res['best'][0]:.4f}, character error rate {-res['best'][1]:.4f} "
              f"(best.safetensors, which predict uses)")
    say(f"done: step {res['step']}; predict with: rnnlab seq2seq predict {out} --text '...'")


def cmd_seq2seq_predict(args):
    from ..models import open_model
    from ..tasks import data, seq2seq
    run, engine, params = open_model(args.path, "seq2seq", args.which, args.engine, "sample", **engine_options(args))
    opts = run.extra["options"]
    if bool(args.text) == bool(args.data):
        raise UserError("give the sources with --text SOURCE (repeatable) or --data FILE, one of the two")
    if args.beam < 1 or args.max_len < 0:
        raise UserError(f"--beam must be >= 1 and --max-len >= 0, got {args.beam} and {args.max_len}")
    targets = None
    if args.text:
        sources = args.text
    else:
        cols = {"source": args.source_column or opts["source_column"]}
        try:
            both = data.read_table(args.data, {**cols, "target": args.target_column or opts["target_column"]},
                                   args.delimiter)
            sources, targets = both["source"], both["target"]
        except UserError:
            sources = data.read_table(args.data, cols, args.delimiter)["source"]
    seqs = data.encode_all(run.vocab, sources, "source", args.unknown)
    text_output(run.vocab)
    max_len = args.max_len or 2 * run.extra["max_target_len"] + 10
    preds = seq2seq.decode(engine, params, run.vocab, seqs, max_len, args.beam)
    for s, p in zip(sources, preds):
        print(p if args.text and len(sources) == 1 else f"{s}\t{p}")
    if targets is not None:
        sc = seq2seq.scores(preds, targets)
        how = "greedy" if args.beam == 1 else f"beam {args.beam}"
        sys.stderr.write(f"{args.data}: exact match {sc['exact']:.4f}, character error rate {sc['cer']:.4f} over "
                         f"{len(targets)} pairs ({how})\n")


def cmd_synth(args):
    from ..tasks import data, synthetic
    rows = synthetic.generate(args.task, args.n, args.seed, args.max_len)
    data.write_tsv(args.out, synthetic.HEADERS[args.task], rows)
    use = {"text": "rnnlab classify --data", "source": "rnnlab seq2seq train --data",
           "label": "rnnlab train --condition-column label --data"}[synthetic.HEADERS[args.task][0]]
    print(f"wrote {len(rows)} rows of {args.task} to {args.out} (columns {', '.join(synthetic.HEADERS[args.task])})"
          f"; train with: {use} {args.out}")


def cmd_speakers(args):
    from ..tasks import data
    from ..text import read_text
    if args.top < 0:
        raise UserError(f"--top must be >= 0 (0 = every speaker), got {args.top}")
    rows = data.play_to_rows(read_text(args.play), args.top, args.unit)
    data.write_tsv(args.out, ("speaker", args.unit), rows)
    counts = {}
    for s, _ in rows:
        counts[s] = counts.get(s, 0) + 1
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:8]
    print(f"wrote {len(rows)} rows ({len(counts)} speakers) to {args.out}: " +
          ", ".join(f"{s} {n}" for s, n in top) + (", ..." if len(counts) > 8 else ""))


def _predict_flags(p, what):
    p.add_argument("path", metavar="RUN_OR_CHECKPOINT", help="a run directory or a .safetensors checkpoint")
    p.add_argument("--text", action="append", help=f"a {what} (repeat for several)")
    p.add_argument("--data", help=f"a CSV/TSV file of {what}s (its columns as in training unless given)")
    p.add_argument("--which", choices=("best", "latest"), default="best", help="checkpoint in a run directory")
    p.add_argument("--delimiter", help="field delimiter of --data, one character or 'tab' (default: from the name)")
    p.add_argument("--unknown", choices=("error", "skip"), default="error",
                   help="characters the model never saw: error (default) or skip them")
    add_engine(p)


def _train_flags(p, task):
    p.add_argument("--out", help=f"run directory (default: runs/{task}-<cell>-<date>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR exactly where it stopped; only "
                   "--max-steps, --max-time, --eval-every, --log-every and --data may change")
    p.add_argument("--delimiter", help="field delimiter, one character or 'tab' (default: tab for .tsv, comma for "
                                       ".csv, else tab if the first line has one)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_engine(p, train=True)
    for cls in (ModelConfig, TrainConfig):
        add_config_flags(p, cls, skip=SKIP, defaults=DEFAULTS[task], helps=TASK_HELP, title="defaults shown")


def add_classify(sub):
    c = sub.add_parser("classify", help="many-to-one: train a sequence classifier on a CSV/TSV of text and label",
                       description="Train a classifier: the recurrent net reads each text; its true last state "
                                   "(padding masked) goes through a linear layer and a softmax over the labels. "
                                   "Prints accuracy, per-class precision/recall and the confusion matrix on the "
                                   "validation split. Columns are header names or 0-based numbers.")
    c.add_argument("--text-column", default="text", help="column with the text (default: text)")
    c.add_argument("--label-column", default="label", help="column with the label (default: label)")
    c.add_argument("--max-len", type=number(int), default=0, help="cut texts to this many characters "
                   "(default: 0 = whole)")
    _train_flags(c, "classify")
    c.set_defaults(run=cmd_classify)


def add_predict(sub):
    p = sub.add_parser("predict", help="labels and probabilities from a classifier (rnnlab classify)",
                       description="Classify texts with a trained classifier: the label, then every label's "
                                   "probability. With --data, one line per row (label, probability, text); when "
                                   "the file also has the label column, the accuracy report goes to stderr.")
    _predict_flags(p, "text")
    p.add_argument("--text-column", help="column of --data with the text (default: the training one)")
    p.add_argument("--label-column", help="column of --data with true labels, if any (default: the training one)")
    p.set_defaults(run=cmd_predict)


def add_seq2seq(sub):
    s = sub.add_parser("seq2seq", help="many-to-many: an encoder-decoder from sources to targets (train, predict)",
                       description="Encoder-decoder: the encoder's final state starts the decoder, trained with "
                                   "teacher forcing, decoded greedily or by beam search.")
    ss = s.add_subparsers(dest="seq2seq_command", metavar="ACTION")
    ss.required = True
    t = ss.add_parser("train", help="train on a CSV/TSV of source and target",
                      description="Train an encoder-decoder on source<TAB>target pairs; reports exact match and "
                                  "character error rate (edit distance / target length) on the validation split.")
    t.add_argument("--source-column", default="source", help="column with the source (default: source)")
    t.add_argument("--target-column", default="target", help="column with the target (default: target)")
    _train_flags(t, "seq2seq")
    t.set_defaults(run=cmd_seq2seq_train)
    q = ss.add_parser("predict", help="outputs for new sources",
                      description="Decode sources with a trained encoder-decoder. With --data, one line per row "
                                  "(source, output); when the file also has targets, exact match and character "
                                  "error rate go to stderr.")
    _predict_flags(q, "source")
    q.add_argument("--beam", type=number(int), default=1, help="beam width; 1 = greedy (default: 1)")
    q.add_argument("--max-len", type=number(int), default=0,
                   help="longest output (default: 0 = twice the longest training target + 10)")
    q.add_argument("--source-column", help="column of --data with sources (default: the training one)")
    q.add_argument("--target-column", help="column of --data with targets, if any (default: the training one)")
    q.set_defaults(run=cmd_seq2seq_predict)


def add_synth(sub):
    from ..tasks.synthetic import TASKS
    g = sub.add_parser("synth", help="write a small synthetic task as TSV (no download needed)",
                       description="Synthetic tasks: parity and brackets (classify); reverse, sort, words (number "
                                   "-> English), dates (ISO -> '4 March 2021') (seq2seq); styles (conditional).")
    g.add_argument("task", choices=TASKS)
    g.add_argument("--out", required=True, help="TSV file to write (never overwritten)")
    g.add_argument("--n", type=number(int), default=5000, help="rows (default: 5000)")
    g.add_argument("--seed", type=number(int), default=0, help="random seed (default: 0)")
    g.add_argument("--max-len", type=number(int), default=0, help="longest input (default: the task's)")
    g.set_defaults(run=cmd_synth)


def add_speakers(sub):
    k = sub.add_parser("speakers", help="turn a play (tinyshakespeare's layout) into speaker<TAB>line rows",
                       description="Real labelled data with no download: each speech of the play becomes rows "
                                   "labelled with its speaker, for rnnlab classify or rnnlab train "
                                   "--condition-column speaker.")
    k.add_argument("play", help="the play, e.g. ../shared/data/tinyshakespeare.txt")
    k.add_argument("--out", required=True, help="TSV file to write (never overwritten)")
    k.add_argument("--top", type=number(int), default=0, help="keep the K speakers with most lines (0 = all)")
    k.add_argument("--unit", choices=("line", "speech"), default="line", help="a row per line of verse (default) "
                   "or per whole speech")
    k.set_defaults(run=cmd_speakers)


def add_subcommands(sub):
    """Add classify, predict, seq2seq, synth and speakers to the subparsers; each sets `run`."""
    add_classify(sub)
    add_predict(sub)
    add_seq2seq(sub)
    add_synth(sub)
    add_speakers(sub)
