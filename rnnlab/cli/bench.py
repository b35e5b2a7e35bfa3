"""`rnnlab bench`: print the speed tables (or, with --time-to-quality, the validation curve of the recommended
recipe under a wall-clock budget). rnnlab/cli/__init__.py calls add_subcommands(sub) once.

Run it as a user's machine would, without the BLAS settings some CI images export (they halve NumPy's GEMM):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE rnnlab bench             # full tables, ~15 minutes on 2 cores
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE rnnlab bench --quick     # every table, small, under 2 minutes
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE rnnlab bench --only scan # minGRU/minLSTM vs LSTM, T = 64..1024
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE rnnlab bench --time-to-quality --budget 75 --plain
    rnnlab bench --only contention      # train and sample alone and beside other work (~3 minutes; quick ~20 s)
    rnnlab bench --only bf16            # bf16 against fp32 on this CPU: GEMM, training chars/s, loss
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from .. import cells
from ..benchmarks import bf16, contention, measure, quality, sampling, scaling, training
from ..engines import make_engine, torch_available
from ..errors import UserError
from .args import number

SECTIONS = ("training", "paper", "sampling", "scaling", "scan")   # the default tables
EXTRA = ("contention", "bf16")                              # only when asked for with --only


def add_subcommands(sub) -> None:
    """Add bench to the subparsers; it sets `run`."""
    b = sub.add_parser("bench", help="speed tables: engines vs bare PyTorch and min_char_rnn.py; time to quality",
                       description="Print benchmark tables, every row measured in this run: training chars/s of "
                                   "each engine x cell x (H, L, B, T) next to a bare PyTorch loop (with GFLOP/s and "
                                   "%% of the measured float32 GEMM peak), the paper's configuration next to "
                                   "min_char_rnn.py, sampling chars/s, how a step's time and memory grow with "
                                   "T, H and B, and the linear-recurrence cells "
                                   f"({', '.join(training.scan_cells()[1:])}) against the LSTM at the same "
                                   "parameter count for T = 64, 256, 1024 (scan). Contenders alternate within "
                                   "rounds; the tables show medians over "
                                   "the rounds, and each ratio is the median of the ratios within a round: on a "
                                   "shared machine trust the ratios more than the absolute numbers. Run as "
                                   "'env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE rnnlab bench'.")
    b.add_argument("--quick", action="store_true", help="small sizes and short rounds: every table in under 2 "
                   "minutes (what CI runs)")
    b.add_argument("--seconds", type=number(float), default=None, help="timed seconds per contender per round "
                   "(default: 3, quick 0.3)")
    b.add_argument("--rounds", type=number(int), default=None, help="rounds (default: 3, quick 1)")
    b.add_argument("--only", default=",".join(SECTIONS), help=f"comma list of tables: {', '.join(SECTIONS)} "
                   f"(the default), {', '.join(EXTRA)}")
    b.add_argument("--adapt-threads", nargs="?", const="on", default="auto", choices=("auto", "on", "off"),
                   help="contention: the --adapt-threads of every rnnlab train it starts (default: auto)")
    b.add_argument("--threads", type=number(int), default=0, metavar="N",
                   help="contention: the --threads of every rnnlab run it starts (default: 0 = auto)")
    b.add_argument("--steps", type=number(int), default=None, help="bf16: training steps before the validation "
                   "loss is compared (default: 300, quick 5)")
    b.add_argument("--engines", default="numpy,torch", help="engines to measure (torch only when installed)")
    b.add_argument("--time-to-quality", action="store_true", help="instead of speed: train a recommended recipe "
                   "for --budget seconds of training and print the validation curve next to reference numbers")
    b.add_argument("--budget", type=number(float), default=75.0, help="time-to-quality training seconds "
                   "(default: 75)")
    b.add_argument("--preset", choices=("shakespeare-quick", "shakespeare"), default=None,
                   help="time-to-quality recipe (default: shakespeare-quick under 300 s, else shakespeare)")
    b.add_argument("--plain", action="store_true", help="time-to-quality: also train the plain PyTorch LSTM "
                   "script (embedding, nn.LSTM H=256, Adam 2e-3) for the same budget, in this run")
    b.add_argument("--engine", default="auto", choices=("numpy", "torch", "auto"),
                   help="time-to-quality engine (default: auto = torch when installed)")
    b.add_argument("--data", default=None, help="text to train on (default: ../shared/data/tinyshakespeare.txt "
                   "when present, else the embedded corpus)")
    b.set_defaults(run=cmd_bench)


def _pct(gflops, peak):
    return f"{gflops:.1f} ({100 * gflops / peak:.0f}%)"


def training_table(vocab, ids, engines, has_torch, configs, seconds, rounds, peak):
    print("\n## Training chars/s (Adam 2e-3, clip-norm 5, float32, one-hot input; GFLOP/s (% of GEMM peak))\n")
    head = [f"{e} engine" for e in engines] + (["bare PyTorch"] if has_torch else [])
    print("| cell | H | L | B | T | " + " | ".join(head) + " | " +
          " | ".join(f"{e} / bare" for e in engines if has_torch) + " | " + " | ".join(f"{h} GFLOP/s" for h in head)
          + " |")
    print("|---|---:|---:|---:|---:|" + "---:|" * (len(head) + (len(engines) if has_torch else 0) + len(head)))
    V = len(vocab)
    for cell in cells.NAMES:                 # every row of the table of cells; bare PyTorch where torch.nn has it
        bare = has_torch and bool(cells.get(cell).nn_layer)
        for H, L, N, T in configs:
            c = {f"{e} engine": measure.rate(training.engine_trainer(e, cell, V, H, L, N, T, ids)) for e in engines}
            if bare:
                c["bare PyTorch"] = measure.rate(training.bare_torch_trainer(cell, V, H, L, N, T, ids))
            med = measure.alternate(c, seconds, rounds, f"{cell} H={H} L={L} B={N} T={T}")
            f = measure.flops_per_char(cell, V, H, L)
            ratios = [f"{measure.ratio(med, f'{e} engine', 'bare PyTorch'):.2f}x" if bare else "-"
                      for e in engines if has_torch]
            shown = [med.get(h) for h in head]
            print(f"| {cell} | {H} | {L} | {N} | {T} | " + " | ".join(f"{r:,.0f}" if r else "-" for r in shown) +
                  " | " + " | ".join(ratios) + " | " +
                  " | ".join(_pct(r * f / 1e9, peak) if r else "-" for r in shown) + " |", flush=True)


def paper_table(vocab, ids, seconds, rounds):
    print("\n## The paper's configuration (rnn H=100 T=25 B=1, Adagrad 0.1, clip +-5, float64)\n")
    ref = training.reference_rate()
    if ref is None:
        print("(skipped: needs ../shared/reference/min_char_rnn.py and ../shared/data/tinyshakespeare.txt)")
        return
    step = training.engine_trainer("numpy", "rnn", len(vocab), 100, 1, 1, 25, ids, preset="paper")
    med = measure.alternate({"rnnlab numpy": measure.rate(step), "min_char_rnn.py": ref},
                            max(seconds, 1.0), rounds, "paper")
    print("| rnnlab numpy chars/s | min_char_rnn.py chars/s | ratio |\n|---:|---:|---:|")
    print(f"| {med['rnnlab numpy']:,.0f} | {med['min_char_rnn.py']:,.0f} | "
          f"{measure.ratio(med, 'rnnlab numpy', 'min_char_rnn.py'):.2f}x |", flush=True)


def sampling_table(vocab, engines, has_torch, models, ks, seconds, rounds, chunk):
    print("\n## Sampling chars/s (temperature 1; K samples in one batch; chars/s counts all K)\n")
    head = [f"{e} engine" for e in engines] + (["bare PyTorch"] if has_torch else [])
    print("| cell | H | L | K | " + " | ".join(head) + " | best engine / bare |")
    print("|---|---:|---:|---:|" + "---:|" * (len(head) + 1))
    for cell, H, L in models:
        for k in ks:
            c = {f"{e} engine": measure.rate(sampling.engine_sampler(e, cell, vocab, H, L, k, chunk))
                 for e in engines}
            if has_torch:
                c["bare PyTorch"] = measure.rate(sampling.bare_torch_sampler(cell, len(vocab), H, L, k, chunk))
            med = measure.alternate(c, seconds, rounds, f"sample {cell} H={H} L={L} K={k}")
            best = max((f"{e} engine" for e in engines), key=med.get)
            ratio = f"{measure.ratio(med, best, 'bare PyTorch'):.2f}x" if has_torch else "-"
            print(f"| {cell} | {H} | {L} | {k} | " + " | ".join(f"{med[h]:,.0f}" for h in head) + f" | {ratio} |",
                  flush=True)


def scaling_table(vocab, engines, base, grid, steps):
    print(f"\n## Scaling: one LSTM training step around H={base[0]} L={base[1]} B={base[2]} T={base[3]} "
          f"(numpy MB: peak of NumPy's allocations in one step, tracemalloc)\n")
    rows = {e: scaling.scaling_rows(e, "lstm", len(vocab), base, grid, steps) for e in engines}
    first = rows[engines[0]]
    print("| varied | H | B | T | " + " | ".join(f"{e} ms/step" for e in engines) + " | numpy MB |")
    print("|---|---:|---:|---:|" + "---:|" * (len(engines) + 1))
    for i, r in enumerate(first):
        mb = f"{rows['numpy'][i]['mb']:.1f}" if "numpy" in rows else "-"
        print(f"| {r['factor']} | {r['H']} | {r['B']} | {r['T']} | " +
              " | ".join(f"{rows[e][i]['ms']:.1f}" for e in engines) + f" | {mb} |", flush=True)


def scan_table(vocab, ids, engines, sizes, seconds, rounds):
    """The linear-recurrence cells against the LSTM at the same parameter count, for each stack (L layers over
    one-hot input or an embedding of D) and T measured in one set of alternating rounds, on each engine (and the
    torch engine in bf16 where the CPU has it); the ratio is a cell's fastest over the LSTM's, within each round."""
    V, N = len(vocab), sizes["batch"]
    runs = [(e, "fp32") for e in engines] + ([("torch", "bf16")] if "torch" in engines and _cpu_bf16() else [])
    names = [e if p == "fp32" else f"{e} {p}" for e, p in runs]
    print(f"\n## Linear-recurrence cells vs the LSTM: training chars/s at the same parameter count (B={N}, Adam "
          f"2e-3, clip-norm 5, float32 weights; D = 0: one-hot input)\n")
    print("| cell | L | D | H | params | T | " + " | ".join(names) + " | fastest | fastest / lstm's |")
    print("|---|---:|---:|---:|---:|---:|" + "---:|" * len(runs) + "---|---:|")
    for L, D in sizes["stacks"]:
        hidden = training.same_budget(training.scan_cells(), V, sizes["lstm_hidden"], L, D)
        for T in sizes["lengths"]:
            c = {f"{cell}|{n}": measure.rate(training.engine_trainer(e, cell, V, hidden[cell][0], L, N, T, ids,
                                                                     precision=p, embed=D))
                 for cell in hidden for n, (e, p) in zip(names, runs)}
            med = measure.alternate(c, seconds, rounds, f"scan L={L} D={D} T={T}")
            best = {cell: max((f"{cell}|{n}" for n in names), key=med.get) for cell in hidden}
            for cell, (H, P) in hidden.items():
                print(f"| {cell} | {L} | {D} | {H} | {P:,} | {T} | " +
                      " | ".join(f"{med[f'{cell}|{n}']:,.0f}" for n in names) +
                      f" | {best[cell].split('|')[1]} | {measure.ratio(med, best[cell], best['lstm']):.2f}x |",
                      flush=True)


def _cpu_bf16() -> str:
    """The CPU's bf16 instructions ("AMX", "AVX512-BF16") or "" (also without torch)."""
    if not torch_available():
        return ""
    from ..engines.torch.device import cpu_bf16
    return cpu_bf16()


def contention_table(engines, data, quick, threads, adapt="auto"):
    H, seconds, sampling = (64, 3.0, 1.0) if quick else (256, 20.0, 10.0)
    model = ["--hidden-size", H] + (["--data", data] if data else []) + ["--adapt-threads", adapt]
    print(f"\n## Contention: chars/s alone and beside other work (rnnlab train: lstm H={H} N=32 T=64, --max-time "
          f"{seconds:g} each; rnnlab sample: {sampling:g} s of streaming; --threads {threads or 'auto'}"
          f", --adapt-threads {adapt})\n")
    print("| command | engine | beside | alone chars/s | chars/s beside (each) | ratio to alone (each) |")
    print("|---|---|---|---:|---:|---:|")

    def row(cmd, engine, beside, alone, rates):
        print(f"| {cmd} | {engine} | {beside} | {alone:,.0f} | {' / '.join(f'{r:,.0f}' for r in rates)} | "
              f"{' / '.join(f'{r / alone:.2f}' for r in rates)} |", flush=True)
    with tempfile.TemporaryDirectory(prefix="rnnlab-contention-") as tmp:
        folder = Path(tmp)
        for e in engines:
            alone = contention.train_rates(e, 1, seconds, folder, model, threads)[0]
            row("train", e, "a second train", alone, contention.train_rates(e, 2, seconds, folder, model, threads))
        checkpoint = contention.make_model(folder, model)
        for e in engines:
            alone = contention.sample_rate(checkpoint, e, sampling, threads)
            with contention.busy_loop():
                row("sample", e, "a busy loop", alone, [contention.sample_rate(checkpoint, e, sampling, threads)])


def bf16_table(vocab, ids, data, seconds, rounds, quick, steps):
    print("\n## bf16 against fp32 on this CPU (torch engine; --precision bf16 = CPU autocast, float32 weights)\n")
    if not torch_available():
        print("(skipped: torch is not installed)")
        return
    kind = _cpu_bf16()
    if not kind:
        print("(skipped: this CPU has neither AMX nor AVX512-BF16, so --precision bf16 is refused here)")
        return
    n, config = (512, (64, 1, 8, 32)) if quick else (2048, bf16.CONFIG)
    peaks = bf16.gemm_peaks(n)
    med = bf16.training_rates(len(vocab), ids, seconds, rounds, config)
    loss = bf16.losses(data, steps, config)
    H, L, N, T = config
    print(f"CPU: {kind}\n\n| measured | fp32 | bf16 | bf16 / fp32 |\n|---|---:|---:|---:|")
    print(f"| torch.matmul {n}x{n}, GFLOP/s | {peaks['fp32']:.0f} | {peaks['bf16']:.0f} | "
          f"{peaks['bf16'] / peaks['fp32']:.2f}x |")
    print(f"| lstm H={H} L={L} B={N} T={T} training, chars/s | {med['fp32']:,.0f} | {med['bf16']:,.0f} | "
          f"{measure.ratio(med, 'bf16', 'fp32'):.2f}x |")
    print(f"| val nats/char after {steps} steps ({data or 'embedded corpus'}) | {loss['fp32']:.4f} | "
          f"{loss['bf16']:.4f} | {loss['bf16'] - loss['fp32']:+.4f} |", flush=True)


def cmd_bench(args):
    if args.time_to_quality:
        return cmd_time_to_quality(args)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = sorted(set(only) - set(SECTIONS + EXTRA))
    if bad:
        raise UserError(f"--only: unknown table(s) {', '.join(bad)}; choose from {', '.join(SECTIONS + EXTRA)}")
    has_torch = torch_available()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if any(e not in ("numpy", "torch") for e in engines) or not engines:
        raise UserError(f"--engines {args.engines!r}: give a comma list of numpy, torch")
    engines = [e for e in engines if e != "torch" or has_torch]
    q = args.quick
    seconds = args.seconds or (0.3 if q else 3.0)
    rounds = args.rounds or (1 if q else 3)
    vocab, ids, _ = measure.corpus(args.data)
    peak = measure.gemm_peak(1024 if q else 2048)
    print(f"# rnnlab bench{' --quick' if q else ''}\n\nmachine: {measure.machine()}; V={len(vocab)}; median of "
          f"{rounds} round(s) x {seconds:g} s per contender, contenders alternating within each round")
    print("float32 GEMM peak measured now: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items()) +
          " (the % columns use the larger)")
    top = max(peak.values())
    if "training" in only:
        configs = training.CONFIGS[:2] if q else training.CONFIGS
        training_table(vocab, ids, engines, has_torch, configs, seconds, rounds, top)
    if "paper" in only:
        paper_table(vocab, ids, seconds, rounds)
    if "sampling" in only:
        models = [("lstm", 128, 1)] if q else [("rnn", 100, 1), ("lstm", 512, 2), ("gru", 512, 2)]
        sampling_table(vocab, engines, has_torch, models, (1, 32), seconds, rounds, 10 if q else 50)
    if "scaling" in only:
        if q:
            scaling_table(vocab, engines, (64, 1, 8, 32), {"T": [16, 32], "H": [32, 64], "B": [4, 8]}, 1)
        else:
            scaling_table(vocab, engines, scaling.BASE, scaling.GRID, 3)
    if "scan" in only:
        scan_table(vocab, ids, engines, training.SCAN_QUICK if q else training.SCAN, seconds, rounds)
    if "contention" in only:
        contention_table(engines, args.data, q, args.threads, args.adapt_threads)
    if "bf16" in only:
        data = args.data or (str(measure.SHAKESPEARE) if measure.SHAKESPEARE.exists() else None)
        bf16_table(vocab, ids, data, seconds, rounds, q, args.steps or (5 if q else 300))
    print(f"\npeak RSS of this process: {measure.peak_rss_mb():.0f} MB", flush=True)
    sys.stdout.flush()


def cmd_time_to_quality(args):
    data = args.data or (str(measure.SHAKESPEARE) if measure.SHAKESPEARE.exists() else None)
    if data is None:
        raise UserError("--time-to-quality needs a text: pass --data FILE (tinyshakespeare is not at "
                        "../shared/data/tinyshakespeare.txt)")
    preset = args.preset or quality.preset_for(args.budget)
    mcfg, tcfg = quality.configs(data, args.budget, preset)
    engine = make_engine(args.engine, mcfg, tcfg, device="cpu")
    print(f"# rnnlab bench --time-to-quality --budget {args.budget:g}\n\nmachine: {measure.machine()}\n"
          f"recipe: rnnlab train --preset {preset} --engine {args.engine} --max-time {args.budget:g} "
          f"--data {data}\nengine: {engine.name} ({getattr(engine, 'device', 'cpu')})\n", flush=True)
    curve, steps = quality.run(data, args.budget, args.engine, preset)
    result = None
    if args.plain:
        if not torch_available():
            raise UserError("--plain trains a PyTorch script: install torch (pip install torch) or drop --plain")
        from ..benchmarks import plain
        result = dict(plain.run(data, args.budget), hidden=256)
    print("\n".join(quality.report(curve, args.budget, result)))
    print(f"\n{steps} steps; peak RSS {measure.peak_rss_mb():.0f} MB", flush=True)
