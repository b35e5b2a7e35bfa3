"""The paper's claims as commands, run as a user runs them: experiment gradients and memory, plot, and viz (its
page driven in headless Chromium over the DevTools protocol: renders, no console errors, the unit picker recolours
the text, hover shows the top-5, a screenshot is written)."""
import csv
import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from helpers import ROOT, assert_user_error, rnnlab

PNG = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_bytes=5000):
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) >= min_bytes, (path, len(data))


def rnnlab_env(*args, pythonpath=(), **env):
    """helpers.rnnlab with extra environment variables and PYTHONPATH entries in front of the repository."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*map(str, pythonpath), str(ROOT)]), PYTHONUNBUFFERED="1",
               **env)
    return subprocess.run([sys.executable, "-m", "rnnlab", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=300)


def have_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A real run directory: a small LSTM trained for 60 steps on text with quotes, brackets and line lengths."""
    root = tmp_path_factory.mktemp("paper")
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma"]
    lines = []
    for i in range(300):
        w = [words[j] for j in rng.integers(0, len(words), 1 + i % 5)]
        form = i % 3
        lines.append(" ".join(w) + (f' "{w[0]}"' if form == 0 else f" ({w[-1]} [x])" if form == 1 else ""))
    lines += ["if x < 1 and y > 0: print(x / y)", "<script>alert(1)</script>"] * 5   # see the viz test
    (root / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = root / "run"
    p = rnnlab("train", "--data", root / "train.txt", "--out", run, "--cell", "lstm", "--hidden-size", 12,
               "--batch-size", 8, "--seq-len", 32, "--max-steps", 60, "--eval-every", 20, "--log-every", 5,
               "--no-progress", "--seed", 1)
    assert p.returncode == 0, p.stderr
    return root, run


def test_plot_writes_loss_png_and_csv(tiny_run):
    _, run = tiny_run
    p = rnnlab("plot", run)
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(open(run / "loss.csv")))
    metrics = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    n_train = sum(isinstance(m.get("loss"), float) for m in metrics)             # 60 steps, --log-every 5
    n_val = sum("val_loss" in m for m in metrics)                                  # --eval-every 20
    assert n_train >= 10 and n_val >= 3
    assert sum(r["loss"] != "" for r in rows) == n_train and sum(r["val_loss"] != "" for r in rows) == n_val
    if have_matplotlib():
        assert_png(run / "loss.png")
        assert "loss.png" in p.stdout
    assert_user_error(rnnlab("plot", run / "nowhere"), "not a run directory")


def test_without_matplotlib_commands_write_csv_and_say_how_to_get_plots(tiny_run, tmp_path):
    _, run = tiny_run
    stub = tmp_path / "stub" / "matplotlib"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('matplotlib is hidden by this test')\n")
    def run_hidden(*args):
        return rnnlab_env(*args, pythonpath=[stub.parent])
    out = tmp_path / "plotless"
    shutil.copytree(run, out)
    (out / "loss.png").unlink(missing_ok=True)
    p = run_hidden("plot", out)
    g = run_hidden("experiment", "gradients", "--cells", "rnn", "--hidden-size", 4, "--seq-len", 21,
                   "--batch-size", 2, "--out", tmp_path / "g")
    for proc in (p, g):
        assert proc.returncode == 0, proc.stderr
        assert "pip install 'rnnlab[plot]'" in proc.stdout
    assert (out / "loss.csv").stat().st_size > 0 and not (out / "loss.png").exists()
    assert (tmp_path / "g" / "gradients.csv").exists() and not (tmp_path / "g" / "gradients.png").exists()


def test_experiment_gradients_fresh_and_from_a_checkpoint(tiny_run, tmp_path):
    _, run = tiny_run
    p = rnnlab("experiment", "gradients", "--cells", "rnn,gru", "--hidden-size", 16, "--seq-len", 25,
               "--batch-size", 4, "--radius", "0.5,as-is,2", "--out", tmp_path / "fresh")
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(open(tmp_path / "fresh" / "gradients.csv")))
    assert len(rows) == 2 * 3 * 25
    assert {r["radius"] for r in rows} == {"0.5", "", "2.0"}
    assert "g(20)/g(1)" in p.stdout
    if have_matplotlib():
        assert_png(tmp_path / "fresh" / "gradients.png")
    c = rnnlab("experiment", "gradients", "--checkpoint", run, "--seq-len", 30, "--batch-size", 4,
               "--radius", "as-is", "--text", tiny_run[0] / "train.txt", "--out", tmp_path / "trained")
    assert c.returncode == 0, c.stderr
    rows = list(csv.DictReader(open(tmp_path / "trained" / "gradients.csv")))
    assert len(rows) == 30 and rows[0]["model"] == "lstm (trained)" and float(rows[1]["grad_norm_c"]) > 0
    assert_user_error(rnnlab("experiment", "gradients", "--cells", "rnn,tree"), "unknown tree")
    assert_user_error(rnnlab("experiment", "gradients", "--radius", "0.5,-1"), "--radius")


def test_experiment_memory_quick_produces_its_table(tmp_path):
    # One BLAS thread: these matrices are tiny, and OpenBLAS's threads only fight over a busy CI machine's cores.
    p = rnnlab_env("experiment", "memory", "--quick", "--out", tmp_path, OPENBLAS_NUM_THREADS="1")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.split()[:1] == ["lag"])
    assert [c.split()[0] for c in lines[head].split("  ") if c.strip()][1:] == ["rnn", "lstm", "gru"]
    table = {int(ln.split()[0]): [float(v) for v in ln.split()[1:]] for ln in lines[head + 2:head + 4]}
    assert sorted(table) == [5, 10] and all(0.0 <= a <= 1.0 for row in table.values() for a in row)
    rows = list(csv.DictReader(open(tmp_path / "memory.csv")))
    assert len(rows) == 6
    params = {r["cell"]: int(r["params"]) for r in rows}
    assert max(params.values()) <= 6500 and min(params.values()) > 0.9 * 6500          # equal budgets
    # The default setup (docs/paper.md section 6): a curriculum for every cell, chrono initialisation for the lstm.
    assert {(r["cell"], r["init"], r["curriculum"]) for r in rows} == {
        ("rnn", "default", "True"), ("lstm", "chrono", "True"), ("gru", "default", "True")}
    # Lag 5 is learnable by every cell in 300 steps on this seed (chance is 1/8): the training does something.
    assert max(table[5]) >= 0.5, table
    if have_matplotlib():
        assert_png(tmp_path / "memory.png")



def test_memory_chrono_init_sets_the_lstm_gates_bias_and_nothing_else():
    """Chrono (Tallec & Ollivier 2018): b_ih + b_hh of the forget gate is log u, u ~ U(1, lag - 1), the input gate's
    -log u; the g and o blocks and every weight keep their initialisation; only the lstm gets a hook."""
    from rnnlab.config import ModelConfig
    from rnnlab.engines.numpy import model
    from rnnlab.experiments import memory
    H, lag = 6, 50
    fresh = model.init_params(ModelConfig(cell="lstm", vocab_size=13, hidden_size=H), 0, np.float32)
    p = memory.chrono(H, lag, seed=0)({k: v.copy() for k, v in fresh.items()})
    b = p["rnn.bias_ih_l0"] + p["rnn.bias_hh_l0"]                                  # (4H,) gates i, f, g, o
    assert np.all(b[H:2 * H] >= 0) and np.all(b[H:2 * H] <= np.log(lag - 1) + 1e-6)
    assert np.array_equal(b[:H], -b[H:2 * H]) and len(set(b[H:2 * H].tolist())) == H
    assert np.array_equal(p["rnn.bias_ih_l0"][2 * H:], fresh["rnn.bias_ih_l0"][2 * H:])
    assert np.array_equal(p["rnn.bias_hh_l0"][2 * H:], fresh["rnn.bias_hh_l0"][2 * H:])
    assert all(np.array_equal(p[k], fresh[k]) for k in fresh if "bias" not in k)
    assert memory.INITS[0] == "chrono"                                        # the experiment's default
    assert memory.lstm_init("gru", H, lag, 0, "chrono", 0.0) is None
    assert memory.lstm_init("lstm", H, lag, 0, "default", 0.0) is None
    assert_user_error(rnnlab("experiment", "memory", "--init", "zeros"), "--init")


def test_memory_plain_setup_is_a_flag_away(tmp_path):
    p = rnnlab("experiment", "memory", "--cells", "lstm,mingru", "--lags", 8, "--steps", 20, "--eval", 50,
               "--init", "default", "--no-curriculum", "--out", tmp_path)
    assert p.returncode == 0, p.stderr
    assert "| no curriculum" in p.stdout and "chrono" not in p.stdout
    rows = list(csv.DictReader(open(tmp_path / "memory.csv")))
    assert [(r["cell"], r["init"], r["curriculum"]) for r in rows] == [("lstm", "default", "False"),
                                                                        ("mingru", "default", "False")]

# ---- viz ---------------------------------------------------------------------------------------------------------

def test_viz_features_and_correlations():
    from rnnlab import viz
    chars = list('say "hi" (a [b]) ok\nnext "x"\n')
    f = viz.features(chars)
    assert f["quotes"][chars.index("h")] == 1 and f["quotes"][chars.index("a")] == 0
    assert f["brackets"][chars.index("b")] == 1 and f["brackets"][chars.index("o")] == 0
    assert f["column"][chars.index("n")] == 0 and f["column"][chars.index("y")] == 2
    rng = np.random.default_rng(0)
    acts = rng.uniform(-1, 1, (len(chars), 6))
    acts[:, 4] = 0.3 * f["brackets"] - 0.1                   # unit 4 tracks brackets exactly
    r = viz.correlations(acts, f)
    assert viz.top_units(r["brackets"], 1) == [(4, pytest.approx(1.0))]
    assert viz.correlations(acts, {"quotes": np.zeros(len(chars))})["quotes"] is None


def test_viz_errors(tiny_run, tmp_path):
    root, run = tiny_run
    (tmp_path / "odd.txt").write_text("alpha \u00e9\u00e9 beta\n", encoding="utf-8")
    assert_user_error(rnnlab("viz", run, "--text", tmp_path / "odd.txt", "--out", tmp_path / "p.html"),
                      "--unknown skip")
    assert_user_error(rnnlab("viz", run, "--text", root / "train.txt", "--layer", 3), "--layer 3")
    assert_user_error(rnnlab("viz", run, "--text", root / "train.txt", "--unit", 99, "--out", tmp_path / "p.html"),
                      "--unit 99")
    assert not (tmp_path / "p.html").exists()


def rgba(s):
    """'rgba(214, 39, 40, 0.5)' or 'rgb(...)' -> (r, g, b, a)."""
    v = [float(x) for x in s[s.index("(") + 1:-1].split(",")]
    return tuple(v) if len(v) == 4 else (*v, 1.0)


@pytest.mark.skipif(not shutil.which("chromium") and not shutil.which("chromium-browser"),
                    reason="chromium is not installed (scripts/test.sh installs Debian's package when it can)")
def test_viz_page_in_headless_chromium(tiny_run, tmp_path):
    from cdp import Browser

    from rnnlab import viz
    root, run = tiny_run
    text = root / "sample.txt"
    text.write_text(textwrap.dedent('''\
        alpha "beta gamma" delta (omega [sigma] beta)
        gamma "delta" (alpha) <script>alert(1)</script>
        beta beta "omega (sigma)" alpha
        '''), encoding="utf-8")
    page_file = tmp_path / "page.html"
    p = rnnlab("viz", run, "--text", text, "--out", page_file)
    assert p.returncode == 0, p.stderr
    assert "quotes" in p.stdout and "brackets" in p.stdout and "unit" in p.stdout
    html = page_file.read_text(encoding="utf-8")
    for banned in ("<script src", "http://", "https://", "@import", "<link rel=\"stylesheet\""):
        assert banned not in html, banned
    page = viz.build(run, text)                                  # the same numbers, computed here
    T, H = len(page["chars"]), page["hidden"]
    acts = np.clip(np.rint(page["acts"] * 127), -127, 127) / 127  # what the page holds

    colours = "Array.from(document.querySelectorAll('#text span.c')).map(s => getComputedStyle(s).backgroundColor)"
    with Browser() as b:
        b.open(page_file.resolve().as_uri())
        assert b.eval("document.querySelectorAll('#text span.c').length") == T
        # The text's '<script>alert(1)</script>' is shown as text, never run: still only the page's two scripts.
        assert "<script>alert(1)</script>" in b.eval("document.getElementById('text').textContent")
        assert b.eval("document.scripts.length") == 2
        u0 = int(b.eval("document.body.dataset.unit"))
        before = [rgba(c) for c in b.eval(colours)]

        def check_colours(cols, u):
            for t, (r, g, bl, a) in enumerate(cols):
                assert a == pytest.approx(abs(acts[t, u]), abs=0.005), (t, u)   # CSS alpha: 8 bits
                if abs(acts[t, u]) > 0.05:
                    assert (r > bl) == (acts[t, u] > 0), (t, u, r, bl)   # red positive, blue negative
        check_colours(before, u0)

        box = b.eval("(() => { const r = document.getElementById('next').getBoundingClientRect();"
                     " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        b.click(*box)                                            # a real mouse click on the 'next unit' button
        u1 = int(b.eval("document.body.dataset.unit"))
        assert u1 == (u0 + 1) % H and b.eval("document.getElementById('unit').value") == str(u1)
        after = [rgba(c) for c in b.eval(colours)]
        assert after != before
        check_colours(after, u1)

        u2 = (u0 + 3) % H                                        # the picker itself
        b.eval(f"(() => {{ const s = document.getElementById('unit'); s.value = '{u2}';"
               " s.dispatchEvent(new Event('change')); })()")
        check_colours([rgba(c) for c in b.eval(colours)], u2)

        t = page["chars"].index("g")
        xy = b.eval(f"(() => {{ const r = document.querySelectorAll('#text span.c')[{t}].getBoundingClientRect();"
                    " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        b.hover(*xy)
        assert b.eval("document.getElementById('tip').hidden") is False
        rows = b.eval("Array.from(document.querySelectorAll('#tip .pred')).map(r => r.textContent)")
        assert len(rows) == 5
        first_sym, first_p = page["preds"][t][0]
        shown = {" ": "\u2423 space", "\n": "\u21b5 newline", "\t": "\u21e5 tab"}.get(first_sym, first_sym)
        assert rows[0].startswith(f"'{shown}'") and f"{100 * first_p:.1f}%" in rows[0], (rows, first_sym)
        shot = b.screenshot(tmp_path / "viz.png")
        assert b.errors == [], b.errors
    assert_png(shot, 20000)
    keep = os.environ.get("RNNLAB_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
