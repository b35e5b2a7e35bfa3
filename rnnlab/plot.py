"""Pictures of numbers: CSV always, PNG when matplotlib is installed (the optional extra `rnnlab[plot]`).

Every experiment writes its numbers as CSV first, so nothing depends on matplotlib; `line_plot` then draws the
same numbers with the Agg backend (no display needed) or, without matplotlib, returns None and the caller prints
PLOT_HINT. `rnnlab plot RUN_DIR` draws a run's training and validation loss from its metrics.jsonl:

    training lines   {"step": 100, "loss": 2.31, ...}        (rnnlab.loop, every --log-every steps)
    evaluation lines {"step": 200, "val_loss": 2.05, ...}     (every --eval-every steps)
    skipped steps    {"step": 7, "skipped": true, "loss": null}   ignored here

    >>> series = {"train": ([1, 2, 3], [3.0, 2.0, 1.5])}
    >>> line_plot("loss.png", series, "step", "loss")          # doctest: +SKIP
    PosixPath('loss.png')
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from .errors import UserError

PLOT_HINT = "install matplotlib for the PNG plots: pip install 'rnnlab[plot]'"


def pyplot():
    """matplotlib.pyplot on the Agg backend, or None when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def write_csv(path, header: list, rows: list) -> Path:
    """Write rows (lists in header order) to path; the folder is created. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def line_plot(path, series: dict, xlabel: str, ylabel: str, title: str = "", logy: bool = False, logx: bool = False,
              hline: tuple | None = None, markers: bool = False, styles: dict | None = None) -> Path | None:
    """One figure, one line per entry of series {label: (xs, ys)}; hline = (y, label) draws a dashed reference;
    styles {label: matplotlib line keywords} (e.g. color, linestyle). Writes a PNG and returns its path, or returns
    None without matplotlib."""
    plt = pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    try:
        for label, (xs, ys) in series.items():
            style = {"marker": "o" if markers else None, "markersize": 4, "linewidth": 1.6}
            style.update((styles or {}).get(label, {}))
            ax.plot(xs, ys, label=label, **style)
        if hline is not None:
            ax.axhline(hline[0], color="grey", linestyle="--", linewidth=1, label=hline[1])
        if logy:
            ax.set_yscale("log")
        if logx:
            ax.set_xscale("log")
            ax.set_xticks(sorted({x for xs, _ in series.values() for x in xs}), minor=False)
            ax.xaxis.set_major_formatter(plt.matplotlib.ticker.ScalarFormatter())
            ax.xaxis.set_minor_locator(plt.matplotlib.ticker.NullLocator())
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def read_metrics(run_dir) -> tuple:
    """(train, val) from RUN_DIR/metrics.jsonl: train = [(step, loss)], val = [(step, val_loss)], in file order."""
    path = Path(run_dir)
    if path.is_file() and path.name == "metrics.jsonl":
        path = path.parent
    f = path / "metrics.jsonl"
    if not path.is_dir():
        raise UserError(f"'{path}' is not a run directory; pass the folder given to rnnlab train --out")
    if not f.is_file():
        raise UserError(f"'{path}' has no metrics.jsonl; pass a run directory written by rnnlab train")
    train, val = [], []
    for n, line in enumerate(f.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise UserError(f"{f}, line {n}: not JSON; the file is corrupt (delete that line to plot the "
                            f"rest)") from None
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            continue
        for key, out in (("loss", train), ("val_loss", val)):
            v = row.get(key)
            if isinstance(v, (int, float)) and math.isfinite(v):
                out.append((row["step"], float(v)))
    if not train and not val:
        raise UserError(f"{f} holds no loss values yet; train for at least --log-every steps, then plot")
    return train, val


def plot_run(run_dir, out=None, log=print) -> Path:
    """Draw a run's losses to `out` (default RUN_DIR/loss.png); always writes RUN_DIR/loss.csv too."""
    train, val = read_metrics(run_dir)
    run = Path(run_dir)
    run = run.parent if run.is_file() else run
    rows = [[s, v, ""] for s, v in train] + [[s, "", v] for s, v in val]
    csv_path = write_csv(run / "loss.csv", ["step", "loss", "val_loss"], sorted(rows, key=lambda r: r[0]))
    series = {}
    if train:
        series["training loss"] = tuple(zip(*train))
    if val:
        series["validation loss"] = tuple(zip(*val))
    png = line_plot(out or run / "loss.png", series, "step", "nats per character", title=f"rnnlab run {run}",
                    styles={"validation loss": {"marker": "o"}})
    log(f"wrote {csv_path} ({len(train)} training, {len(val)} validation points)")
    if png is None:
        log(PLOT_HINT)
    else:
        last = f"last training loss {train[-1][1]:.4f}" if train else "no training lines"
        best = f", best validation loss {min(v for _, v in val):.4f}" if val else ""
        log(f"wrote {png} ({last}{best} nats/char)")
    return png or csv_path
