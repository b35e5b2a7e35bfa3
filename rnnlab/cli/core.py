"""The character model's commands: hello, train, sample, eval. rnnlab/cli/__init__.py calls add_subcommands(sub)
once; each subcommand stores its function as `run`.

    rnnlab hello                          the paper's case study
    rnnlab train [--data FILE] [--out DIR] [--preset paper] [...]
    rnnlab train --resume DIR [--max-steps N]
    rnnlab sample RUN_OR_CHECKPOINT [--prime TEXT] [--length N] [--temperature T] [...]
    rnnlab eval RUN_OR_CHECKPOINT --data FILE
"""
from __future__ import annotations

from ..config import PRESETS, ModelConfig, TrainConfig
from ..errors import UserError
from .args import (add_config_flags, add_engine, configs, engine_options, first_line, note, number, progress,
                   read_prime, resume_overrides, run_dir, text_output, write_samples)


def add_hello(sub):
    h = sub.add_parser("hello", help="the paper's case study: a vanilla RNN learns to spell 'hello'",
                       description="Train a vanilla RNN on 'hello' (vocabulary h, e, l, o), print each step's "
                                   "probabilities, and generate from the seed 'h'.")
    h.add_argument("--steps", type=number(int), default=300, help="training steps (default: 300)")
    h.add_argument("--hidden-size", type=number(int), default=16, help="hidden units (default: 16)")
    h.add_argument("--seed", type=number(int), default=0, help="random seed (default: 0)")
    h.set_defaults(run=cmd_hello)


def add_train(sub):
    t = sub.add_parser("train", help="train a character model on a text file (or the embedded corpus)",
                       description="Train a character-level model with truncated BPTT. Writes latest.safetensors, "
                                   "best.safetensors, metrics.jsonl and data.ids (the text as ids, memory-mapped, "
                                   "a cache) to the run directory. Ctrl-C or SIGTERM checkpoints and exits 130/143; "
                                   "a second Ctrl-C exits at once.")
    t.add_argument("--out", help="run directory (default: runs/<cell>-<date>-<time>)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR where it stopped; config flags "
                   "given with it change its course (e.g. --lr, --schedule, --dropout, --batch-size, --max-steps, "
                   "--data: a text in the run's alphabet), each change logged; the network's own flags (--cell, "
                   "--hidden-size, ...) cannot change")
    t.add_argument("--init-from", metavar="RUN_OR_CHECKPOINT", help="fine-tune: a new run (--out) that starts "
                   "from this trained model's weights, on --data (new characters get new rows); the network is "
                   "the source's, the optimiser fresh, every other flag this run's own")
    t.add_argument("--preset", choices=sorted(PRESETS), help="paper: the paper's rnn, H=100, T=25, batch 1, "
                   "Adagrad lr 0.1, clip +-5, float64. shakespeare: the recommended CPU recipe for ~1 MB of text "
                   "and 10 minutes (lstm, 2 layers of H=512, embedding 64, dropout 0.3, N=32, T=32, Adam 4e-3 with "
                   "weight decay 0.2 on a cosine over --max-time 600 s, clip-norm 50; with --engine auto, 1.39 "
                   "nats/char on "
                   "tinyshakespeare on 2 cores). shakespeare-quick: the recipe for 75 s (1 layer of H=512, dropout "
                   "0.1, Adam 5e-3: 1.44). Change --max-time and the cosine follows it")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_engine(t, train=True)
    add_config_flags(t, ModelConfig, skip=("vocab_size",))
    add_config_flags(t, TrainConfig)
    t.set_defaults(run=cmd_train)
    return t


def add_sample(sub):
    s = sub.add_parser("sample", help="generate text from a trained model",
                       description="Generate text one character at a time, each output fed back as the next "
                                   "input. Characters stream to stdout as they are generated.")
    s.add_argument("path", metavar="RUN_OR_CHECKPOINT", help="a run directory or a .safetensors checkpoint")
    s.add_argument("--which", choices=("best", "latest"), default="best", help="checkpoint in a run directory "
                   "(default: best)")
    s.add_argument("--prime", default="", help="text to start from (default: a newline)")
    s.add_argument("--prime-file", metavar="FILE", help="read the prime from FILE (- for standard input): any "
                   "length, any characters the model knows")
    s.add_argument("--stop", metavar="STRING", help="end each sample just before the first STRING it writes "
                   "(e.g. a blank line: --stop $'\\n\\n'); --length stays the most it writes")
    s.add_argument("--length", type=number(int), default=500, help="characters to generate (default: 500)")
    s.add_argument("--temperature", type=number(float), default=1.0, help="softmax temperature; 0 = argmax")
    s.add_argument("--top-k", type=number(int), default=0, help="sample from the k most likely (0 = all)")
    s.add_argument("--top-p", type=number(float), default=1.0, help="nucleus sampling mass (1 = all)")
    s.add_argument("--argmax", action="store_true", help="always take the most likely character")
    s.add_argument("--seed", type=number(int), default=0, help="random seed (default: 0)")
    s.add_argument("--num-samples", type=number(int), default=1, help="K samples generated in one batch")
    s.add_argument("--unknown", choices=("error", "skip"), default="error",
                   help="prime characters not in the vocabulary: error (default) or skip them")
    add_engine(s)
    s.set_defaults(run=cmd_sample)
    return s


def add_eval(sub):
    e = sub.add_parser("eval", help="loss of a trained model on any text, in nats and bits per character",
                       description="Evaluate a checkpoint on a text file with the checkpoint's vocabulary: one "
                                   "pass, the hidden state carried from zeros.")
    e.add_argument("path", metavar="RUN_OR_CHECKPOINT")
    e.add_argument("--data", required=True, help="text file to evaluate on")
    e.add_argument("--which", choices=("best", "latest"), default="best")
    e.add_argument("--unknown", choices=("error", "skip"), default="error",
                   help="characters not in the vocabulary: error (default) or skip them")
    add_engine(e)
    e.set_defaults(run=cmd_eval)


def add_subcommands(sub):
    """Add hello, train, sample and eval to the subparsers; return the train and sample parsers (the top module
    adds the conditional flags to them)."""
    add_hello(sub)
    t = add_train(sub)
    s = add_sample(sub)
    add_eval(sub)
    return t, s


def cmd_train(args):
    from ..lm import train
    if args.resume:
        if args.init_from:
            raise UserError("--resume continues a run, --init-from starts a new one from a trained model: give one")
        train(None, None, args.resume, args.engine, resume=True, overrides=resume_overrides(args),
              engine_options=engine_options(args), progress=progress(args))
        return
    mcfg, tcfg = configs(args)
    if args.init_from:
        from .. import finetune
        if args.preset:
            raise UserError("--preset sets the network, which --init-from takes from its source; give the "
                            "training flags one by one")
        flags = {k: getattr(args, k) for k in finetune.ARCHITECTURE + ("dropout",) if getattr(args, k) is not None}
        mcfg = finetune.model_config(finetune.load_source(args.init_from).mcfg, flags)
    train(mcfg, tcfg, run_dir(args, mcfg), args.engine, progress=progress(args), engine_options=engine_options(args),
          init_from=args.init_from)


def _load(path, which, engine_name, engine_options=None, job="eval"):
    from ..models import open_model
    return open_model(path, "lm", which, engine_name, job, **(engine_options or {}))


def cmd_sample(args):
    from ..sample import generate
    prime = read_prime(args)
    options = {**engine_options(args), "rows": args.num_samples}      # K sequences a step: the threads' job
    snap, engine, params = _load(args.path, args.which, args.engine, options, job="sample")
    text_output(snap.vocab)
    write_samples(lambda on_text: generate(engine, params, snap.vocab, prime, args.length, args.num_samples,
                                           args.seed, args.temperature, args.top_k, args.top_p, args.argmax,
                                           args.unknown, on_text, stop=args.stop or ""), args.num_samples,
                  first_line("sample", engine))


def cmd_eval(args):
    from ..lm import evaluate_stream
    snap, engine, params = _load(args.path, args.which, args.engine, {**engine_options(args), "rows": 1})
    nats, n = evaluate_stream(engine, params, snap.vocab, args.data, args.unknown)
    note(first_line("eval", engine))           # after the text was read: an error stays the only stderr line
    print(f"{args.data}: {nats:.4f} nats/char, {nats / 0.6931471805599453:.4f} bits/char over {n:,} "
          f"predicted characters (checkpoint step {snap.step}, engine {engine.name})")


def cmd_hello(args):
    from ..hello import run
    word = run(args.steps, args.hidden_size, args.seed)
    if word != "hello":
        raise UserError(f"the network produced {word!r}, not 'hello'; train longer with --steps")
