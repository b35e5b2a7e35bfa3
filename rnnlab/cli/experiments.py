"""The command line of the paper's claims: `rnnlab experiment gradients|memory`, `rnnlab viz`, `rnnlab plot`.

rnnlab/cli/__init__.py calls add_subcommands(sub) once; each subcommand stores its function as `run`, and cli.main
calls it (UserError -> one line `error: ...`, exit 2, as for every command). Numbers always go to CSV; pictures to PNG
when matplotlib is installed (pip install 'rnnlab[plot]'), otherwise the command says how to get them.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .args import add_engine, engine_options, number


def _list(kind, name):
    def parse(s):
        try:
            items = [kind(v) for v in s.split(",") if v.strip()]
        except ValueError:
            raise UserError(f"--{name} {s!r}: expected a comma-separated list of {kind.__name__}s") from None
        if not items:
            raise UserError(f"--{name} is empty; give a comma-separated list")
        return items
    return parse


def _radius(s: str):
    return None if s.strip() in ("as-is", "none") else float(s)


def add_experiment(sub):
    e = sub.add_parser("experiment", help="the paper's claims as experiments: gradients, memory",
                       description="Reproduce the paper's claims; each experiment prints a table, writes CSV and "
                                   "(with matplotlib) a PNG.")
    esub = e.add_subparsers(dest="experiment", metavar="EXPERIMENT", parser_class=type(e))
    esub.required = True
    add_gradients(esub)
    add_memory(esub)


def add_gradients(esub):
    g = esub.add_parser("gradients", help="||dL_T/dh_k|| against the distance T-k: vanishing and exploding",
                        description="Backpropagate the loss at the last step L_T through time with the NumPy "
                                    "cells' own step_backward and record ||dL_T/dh_k|| for k = T..1 (mean over the "
                                    "batch). Writes OUT/gradients.csv and OUT/gradients.png (log scale).")
    g.add_argument("--checkpoint", metavar="RUN_OR_CHECKPOINT", help="a trained model (default: fresh "
                   "initialisations of --cells)")
    g.add_argument("--which", choices=("best", "latest"), default="best", help="checkpoint in a run directory")
    g.add_argument("--cells", default="rnn,lstm,gru", help="fresh models to measure (default: rnn,lstm,gru)")
    g.add_argument("--hidden-size", type=number(int), default=64, help="fresh models: H (default: 64)")
    g.add_argument("--vocab-size", type=number(int), default=65, help="fresh models without --text: V (default: 65)")
    g.add_argument("--radius", default="as-is,0.5,2", help="comma list of spectral radii for every HxH block of "
                   "W_hh; 'as-is' keeps the weights (default: as-is,0.5,2)")
    g.add_argument("--seq-len", type=number(int), default=60, help="T (default: 60)")
    g.add_argument("--batch-size", type=number(int), default=32, help="sequences averaged over (default: 32)")
    g.add_argument("--loss", choices=("xent", "proj"), default="xent", help="xent: cross-entropy of the last "
                   "prediction (default); proj: a fixed random projection u.h_T")
    g.add_argument("--text", help="take the input sequences from this text (default: random characters)")
    g.add_argument("--seed", type=number(int), default=0, help="random seed (default: 0)")
    g.add_argument("--out", default="experiments/gradients", help="output folder (default: experiments/gradients)")
    g.set_defaults(run=cmd_gradients)


def add_memory(esub):
    m = esub.add_parser("memory", help="recall a symbol after a lag: rnn vs lstm vs gru on equal parameters",
                        description="The recall task at growing lags, each cell with the same parameter budget and "
                                    "step budget, by default with a curriculum over lags for every cell and "
                                    "chrono initialisation for the LSTM (why: docs/paper.md section 6). Prints "
                                    "accuracy against lag; writes OUT/memory.csv and OUT/memory.png.")
    m.add_argument("--quick", action="store_true", help="CI size: lags 5,10, 300 steps, 500 test sequences")
    m.add_argument("--cells", default="rnn,lstm,gru", help="default: rnn,lstm,gru")
    m.add_argument("--lags", help="comma list (default: 5,10,20,50,100; --quick: 5,10)")
    m.add_argument("--steps", type=number(int), help="Adam steps per (cell, lag) (default: 2000; --quick: 300)")
    m.add_argument("--params", type=number(int), default=6500, help="parameter budget per model (default: 6500)")
    m.add_argument("--batch-size", type=number(int), default=32, help="sequences per step (default: 32)")
    m.add_argument("--lr", type=number(float), default=3e-3, help="Adam learning rate (default: 3e-3)")
    m.add_argument("--symbols", type=number(int), default=8, help="K symbols to recall; chance = 1/K (default: 8)")
    m.add_argument("--distractors", type=number(int), default=4, help="distractor symbols (default: 4)")
    m.add_argument("--eval", type=number(int), help="held-out sequences per score (default: 2000; --quick: 500)")
    m.add_argument("--init", default="chrono", metavar="chrono|default", help="the LSTM's initialisation: chrono "
                   "(Tallec & Ollivier 2018: b_f ~ log U(1, lag - 1), b_i = -b_f; the default, see docs/paper.md "
                   "section 6) or default (PyTorch's, what rnnlab train uses)")
    m.add_argument("--no-curriculum", dest="curriculum", action="store_false", help="train at the target lag "
                   "from the first step (default: a curriculum, the lag growing from 5 to the target over the "
                   "first half of the steps, the same for every cell)")
    m.add_argument("--forget-bias", type=number(float), default=0.0, help="lstm: add this to the forget gate's "
                   "bias at initialisation (default: 0, PyTorch's initialisation; 1 is the classic remedy)")
    m.add_argument("--seed", type=number(int), default=0, help="random seed (default: 0)")
    m.add_argument("--out", default="experiments/memory", help="output folder (default: experiments/memory)")
    add_engine(m)
    m.set_defaults(run=cmd_memory)


def add_viz(sub):
    v = sub.add_parser("viz", help="an HTML page: the text coloured by one hidden unit, top-5 predictions on hover",
                       description="Run a checkpoint over a text and write a self-contained HTML page (no network): "
                                   "each character coloured by a chosen unit's activation, a unit picker, the "
                                   "top-5 next-character predictions on hover, and the units most correlated with "
                                   "quotes, position in line and brackets (also printed).")
    v.add_argument("path", metavar="RUN_OR_CHECKPOINT")
    v.add_argument("--text", required=True, help="the text to read (its first --max-chars characters)")
    v.add_argument("--out", default="viz.html", help="the HTML file to write (default: viz.html)")
    v.add_argument("--which", choices=("best", "latest"), default="best")
    v.add_argument("--layer", type=number(int), default=-1, help="layer whose units are shown (default: -1, top)")
    v.add_argument("--unit", type=number(int), help="unit shown first (default: the most feature-correlated)")
    v.add_argument("--max-chars", type=number(int), default=2000, help="characters shown (default: 2000)")
    v.add_argument("--unknown", choices=("error", "skip"), default="error",
                   help="characters not in the vocabulary: error (default) or skip them")
    v.set_defaults(run=cmd_viz)


def add_plot(sub):
    p = sub.add_parser("plot", help="training and validation loss curves of a run (PNG)",
                       description="Read RUN_DIR/metrics.jsonl and draw training loss and validation loss against "
                                   "the step. Writes RUN_DIR/loss.csv and a PNG (default RUN_DIR/loss.png).")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", help="PNG file (default: RUN_DIR/loss.png)")
    p.set_defaults(run=cmd_plot)


def add_subcommands(sub) -> None:
    """Register experiment (gradients, memory), viz and plot on the command line's subparsers."""
    add_experiment(sub)
    add_viz(sub)
    add_plot(sub)


def _outputs(out: str, header: list, rows: list, csv_name: str):
    from ..plot import write_csv
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--out {folder} is a file; pass a folder for the CSV and PNG")
    try:
        return write_csv(folder / csv_name, header, rows)
    except OSError as e:
        raise UserError(f"cannot write to {folder}: {e.strerror or e}; choose a writable --out") from None


def cmd_gradients(args):
    import numpy as np

    from .. import checkpoint, snapshot
    from ..config import CELLS, ModelConfig
    from ..engines.numpy import model
    from ..experiments import gradients
    from ..plot import PLOT_HINT, line_plot
    from ..text import read_text
    from ..vocab import Vocab
    radii = _list(_radius, "radius")(args.radius)
    if any(r is not None and r <= 0 for r in radii):
        raise UserError("--radius values must be > 0 (or as-is)")
    if args.seq_len < 21 or args.batch_size < 1:
        raise UserError("--seq-len must be >= 21 (the table compares distances 1 and 20) and --batch-size >= 1")
    ids, configs = None, []
    if args.checkpoint:
        snap = snapshot.load(checkpoint.resolve(args.checkpoint, args.which))
        if args.text:
            ids = snap.vocab.encode(read_text(args.text, snap.vocab.encoding), unknown="skip")
        configs.append((f"{snap.mcfg.cell} (trained)", snap.mcfg, snap.params))
    else:
        cells = _list(str, "cells")(args.cells)
        bad = [c for c in cells if c not in CELLS]
        if bad:
            raise UserError(f"--cells: unknown {', '.join(bad)}; choose from {', '.join(CELLS)}")
        vocab_size = args.vocab_size
        if args.text:
            data = read_text(args.text)
            vocab = Vocab.from_text(data)
            ids, vocab_size = vocab.encode(data), len(vocab)
        for c in cells:
            cfg = ModelConfig(cell=c, vocab_size=vocab_size, hidden_size=args.hidden_size)
            configs.append((c, cfg, model.init_params(cfg, args.seed, np.float64)))
    rows = _gradient_rows(gradients, configs, radii, args, ids)
    print(f"||dL_T/dh_k|| (mean over {args.batch_size} sequences, loss {args.loss}) at distance d = T-k, T = "
          f"{args.seq_len}:")
    print("\n".join(gradients.summary(rows)))
    csv_path = _outputs(args.out, gradients.HEADER, rows, "gradients.csv")
    series, styles, dashes = {}, {}, ["-", "--", ":", "-."]
    for label, cell, radius, dist, _, gh, _ in rows:          # colour = model, line style = radius
        key = f"{label}, radius {radius}" if radius != "" else f"{label}, W_hh as is"
        if key not in series:
            series[key] = ([], [])
            styles[key] = {"color": f"C{[c[0] for c in configs].index(label)}",
                           "linestyle": dashes[(radii + [None]).index(radius if radius != "" else None) % len(dashes)]}
        series[key][0].append(dist)
        series[key][1].append(max(gh, 1e-300))
    png = line_plot(Path(args.out) / "gradients.png", series, "distance T - k (steps back in time)",
                    "||dL_T / dh_k||", title=f"gradient norm vs distance ({args.loss} loss at step T, "
                    f"T = {args.seq_len}, mean over {args.batch_size} sequences)", logy=True, styles=styles)
    print(f"wrote {csv_path}" + (f" and {png}" if png else f"; {PLOT_HINT}"))


def _gradient_rows(gradients, configs, radii, args, ids) -> list:
    """gradients.run's rows; a cell without W_hh (its row of rnnlab.cells lists no weight_hh: minGRU, minLSTM) has
    no spectral radius to set, so it is measured as it is, once, whatever --radius says."""
    from .. import cells
    plain = [c for c in configs if "weight_hh" not in cells.get(c[1].cell).params]
    rows = gradients.run([c for c in configs if c not in plain], radii, args.seq_len, args.batch_size, args.loss,
                         args.seed, ids) if len(plain) < len(configs) else []
    if plain:
        rows += gradients.run(plain, [None], args.seq_len, args.batch_size, args.loss, args.seed, ids)
    return rows


def cmd_memory(args):
    from ..config import CELLS
    from ..experiments import memory
    from ..plot import PLOT_HINT, line_plot
    cells = _list(str, "cells")(args.cells)
    bad = [c for c in cells if c not in CELLS]
    if bad:
        raise UserError(f"--cells: unknown {', '.join(bad)}; choose from {', '.join(CELLS)}")
    if args.init not in memory.INITS:
        raise UserError(f"--init {args.init!r}: choose one of {', '.join(memory.INITS)}")
    lags = _list(int, "lags")(args.lags) if args.lags else list(memory.QUICK_LAGS if args.quick else memory.LAGS)
    steps = args.steps or (300 if args.quick else 2000)
    n_eval = args.eval or (500 if args.quick else 2000)
    if min(lags) < 1 or steps < 1 or n_eval < 1 or args.batch_size < 1 or args.lr <= 0:
        raise UserError("--lags, --steps, --eval and --batch-size must be >= 1 and --lr > 0")
    if args.symbols < 2 or args.distractors < 1:
        raise UserError("--symbols must be >= 2 and --distractors >= 1")
    task = memory.Task(args.symbols, args.distractors)
    smallest = min(memory.count_params(memory.ModelConfig(cell=c, vocab_size=task.vocab_size, hidden_size=1))
                   for c in cells)
    if args.params < smallest:
        raise UserError(f"--params {args.params} is below the smallest model ({smallest} parameters with H=1)")
    results = memory.run(cells, lags, steps, args.params, args.batch_size, args.lr, args.seed, task, n_eval,
                         args.forget_bias, engine=args.engine, engine_options=engine_options(args), init=args.init,
                         curriculum=args.curriculum)
    print("\n".join(memory.table(results, 1 / task.symbols)))
    csv_path = _outputs(args.out, memory.HEADER, [[r[k] for k in memory.HEADER] for r in results], "memory.csv")
    series = {}
    for r in results:
        xs, ys = series.setdefault(f"{r['cell']} (H={r['hidden']}, {r['params']} params)", ([], []))
        xs.append(r["lag"])
        ys.append(r["accuracy"])
    png = line_plot(Path(args.out) / "memory.png", series, "lag (steps between the symbol and the recall)",
                    "accuracy on held-out sequences", title=f"recall after a lag: {steps} Adam steps each"
                    + (", curriculum" if args.curriculum else "") + (", lstm chrono" if args.init == "chrono" else ""),
                    hline=(1 / task.symbols, "chance"), markers=True, logx=True)
    print(f"wrote {csv_path}" + (f" and {png}" if png else f"; {PLOT_HINT}"))


def cmd_viz(args):
    from .. import viz
    page = viz.build(args.path, args.text, args.layer, args.max_chars, args.which, args.unknown)
    out = viz.write(page, args.out, args.unit)
    print(f"units most correlated with simple features ({page['cell']} layer {page['layer']}, "
          f"{len(page['chars'])} characters):")
    print("\n".join(viz.report(page)))
    print(f"wrote {out}: open it in a browser (it needs no network)")


def cmd_plot(args):
    from ..plot import plot_run
    plot_run(args.run_dir, args.out)
