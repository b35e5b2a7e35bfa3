"""rnnlab export, run as a user runs it, on tiny real models of each cell (a few hundred steps on a text of
distinct lines, so greedy text goes somewhere):

- html: the page, driven in headless Chromium (tests/cdp.py), writes exactly `rnnlab sample --argmax`'s stdout
  for 3 primes x each cell; its JS step equals the NumPy engine's for every cell of its table (also minGRU and
  minLSTM, against their equations here); the query string fills the controls; sizes are within the targets;
- onnx: both graphs, loaded by onnxruntime in a Python that cannot import rnnlab, give the torch engine's logits
  within 1e-5 over a 200-character text, with the vocabulary in their metadata;
- bad inputs are one-line errors.
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from urllib.parse import urlencode

import numpy as np
import pytest

from helpers import ROOT, assert_user_error, rnnlab
from rnnlab.cells import NAMES

LINES = ["one little cat sat on the mat,", "two quick dogs ran to the park;", "three old birds sang in a tree!",
         "four big fish swam (far away)", 'five "red" foxes hid by the den.', "six tired owls slept until noon?",
         "seven grey mice ate the café cheese"]
TEXT = "\n".join(LINES * 40) + "\n"
# Every cell of rnnlab.cells gets a model; these cover other paths of the page: bytes (UTF-8 decoding of é),
# an embedding, several layers. A cell not named here trains with DEFAULT_FLAGS.
CELL_FLAGS = {"rnn": ["--encoding", "bytes", "--hidden-size", 48],
              "lstm": ["--hidden-size", 32, "--num-layers", 2, "--embed-dim", 8],
              "gru": ["--hidden-size", 40]}
DEFAULT_FLAGS = ["--hidden-size", 32]
PRIMES = ["", "two q", 'five "r']
have_chromium = pytest.mark.skipif(not shutil.which("chromium") and not shutil.which("chromium-browser"),
                                   reason="chromium is not installed (scripts/test.sh installs Debian's package)")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    (root / "lines.txt").write_text(TEXT, encoding="utf-8")
    out = {}
    for cell in NAMES:
        p = rnnlab("train", "--data", root / "lines.txt", "--out", root / cell, "--cell", cell,
                   *CELL_FLAGS.get(cell, DEFAULT_FLAGS),
                   "--batch-size", 8, "--seq-len", 32, "--max-steps", 300, "--eval-every", 100, "--lr", 0.01,
                   "--no-progress", "--seed", 1)
        assert p.returncode == 0, p.stderr
        out[cell] = root / cell
    return out


def page_text(b, page, **query):
    """Open the page with a query string; wait for its run to end; (state, #output's text, #error's text)."""
    b.open(page.resolve().as_uri() + "?" + urlencode(query))
    state = b.eval("new Promise(r => { const f = () => ['done', 'error'].includes(document.body.dataset.state) ?"
                   " r(document.body.dataset.state) : setTimeout(f, 20); f(); })")
    return state, b.eval("document.getElementById('output').textContent"), \
        b.eval("document.getElementById('error').textContent")


@have_chromium
@pytest.mark.parametrize("cell", NAMES)
def test_page_greedy_text_is_rnnlab_sample_argmax(runs, cell, tmp_path):
    from cdp import Browser
    page = tmp_path / "page.html"
    p = rnnlab("export", runs[cell], "--format", "html", "--out", page)
    assert p.returncode == 0, p.stderr
    html = page.read_text(encoding="utf-8")
    for banned in ("<script src", "http://", "https://", "@import", "<link rel=\"stylesheet\""):
        assert banned not in html, banned
    with Browser() as b:
        for prime in PRIMES:
            s = rnnlab("sample", runs[cell], "--prime", prime, "--length", 160, "--argmax")
            assert s.returncode == 0, s.stderr
            state, text, err = page_text(b, page, prime=prime, length=160, argmax=1, autorun=1)
            assert (state, err) == ("done", ""), err
            assert text == s.stdout, (prime, text, s.stdout)
            assert len(set(text[len(prime):])) >= 8, text          # not a trivial loop: the test means something
        assert b.eval("document.scripts.length") == 3
        card = b.eval("document.getElementById('card').textContent")
        assert cell in card and "300" in card and "nats/char" in card
        if cell == "lstm":
            shot = b.screenshot(tmp_path / "export.png")
        assert b.errors == [], b.errors
    if cell == "lstm":
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10000
        if os.environ.get("RNNLAB_KEEP_EXPORT_SCREENSHOT"):
            shutil.copy(shot, os.environ["RNNLAB_KEEP_EXPORT_SCREENSHOT"])


@have_chromium
def test_page_controls_query_string_and_seeded_sampling(runs, tmp_path):
    from cdp import Browser
    page = tmp_path / "page.html"
    assert rnnlab("export", runs["gru"], "--format", "html", "--out", page).returncode == 0
    greedy = rnnlab("sample", runs["gru"], "--prime", "six", "--length", 60, "--argmax").stdout
    with Browser() as b:
        a = page_text(b, page, prime="six", length=60, temperature=1.2, seed=7, autorun=1)
        assert b.eval("['prime', 'length', 'temperature', 'seed'].map(k => document.getElementById(k).value)"
                      ".concat([document.getElementById('argmax').checked])") == ["six", "60", "1.2", "7", False]
        assert a[0] == "done" and a[1].startswith("six") and len(a[1]) == len("six") + 60 + 1
        assert page_text(b, page, prime="six", length=60, temperature=1.2, seed=7, autorun=1) == a   # seeded
        assert page_text(b, page, prime="six", length=60, temperature=1.2, seed=8, autorun=1)[1] != a[1]
        for q in ({"temperature": 0}, {"top_k": 1, "temperature": 2}, {"top_p": 0.01, "temperature": 0.5}):
            assert page_text(b, page, prime="six", length=60, autorun=1, **q)[1] == greedy, q
        b.open(page.resolve().as_uri() + "?prime=si&length=5")          # no autorun: ready, nothing generated
        assert b.eval("document.body.dataset.state") == "ready" and b.eval("output.textContent") == ""
        b.eval("document.getElementById('go').click()")
        assert b.eval("new Promise(r => setTimeout(() => r(output.textContent), 300))").startswith("si")
        for q, needle in (({"prime": "si\u00e7"}, "not in the vocabulary"), ({"length": -1}, "length"),
                          ({"top_p": 0}, "top-p"), ({"temperature": -1}, "temperature")):
            state, text, err = page_text(b, page, autorun=1, **q)
            assert state == "error" and needle in err and err.startswith("error: ") and "\n" not in err, err
        assert b.errors == [], b.errors


def random_page(tmp_path, cell, gates, state, names, V=11, H=6, L=2, E=0, seed=0):
    """A page of random float32 weights for a cell given by its row (not necessarily in rnnlab.cells yet)."""
    from rnnlab.export import html
    rng = np.random.default_rng(seed)
    params = {"encoder.weight": rng.normal(size=(V, E))} if E else {}
    for k in range(L):
        D = (E or V) if k == 0 else H
        shapes = {"weight_ih": (gates * H, D), "weight_hh": (gates * H, H), "bias_ih": (gates * H,),
                  "bias_hh": (gates * H,)}
        params.update({f"rnn.{n}_l{k}": rng.uniform(-0.8, 0.8, shapes[n]) for n in names})
    params.update({"decoder.weight": rng.normal(size=(V, H)), "decoder.bias": rng.normal(size=V)})
    params = {k: v.astype(np.float32) for k, v in params.items()}
    manifest, weights = html.pack(params, list(params))
    data = {"cell": cell, "gates": gates, "state": list(state), "params": list(names), "V": V, "H": H, "L": L,
            "E": E, "encoding": "utf-8", "symbols": list("abcdefghij\n")[:V], "start": V - 1, "dtype": "float32",
            "tensors": manifest, "card": [["cell", cell]]}
    page = tmp_path / f"{cell}.html"
    page.write_text(html.render(data, weights), encoding="utf-8")
    return page, {k: v.astype(np.float64) for k, v in params.items()}


def sig(a):
    return 1 / (1 + np.exp(-a))


def min_step(cell, p, k, x, h):
    """minGRU and minLSTM, from their equations (rows [z; h~] and [f; i; h~] of weight_ih, no recurrent weight)."""
    g = p[f"rnn.weight_ih_l{k}"] @ x + p[f"rnn.bias_ih_l{k}"]
    H = h.shape[0]
    if cell == "mingru":
        z = sig(g[:H])
        return (1 - z) * h + z * g[H:]
    f, i = sig(g[:H]), sig(g[H:2 * H])
    return f / (f + i) * h + i / (f + i) * g[2 * H:]


@have_chromium
def test_page_step_matches_numpy_for_every_cell_of_its_table(tmp_path):
    """The JS step of each cell against the NumPy engine's step (rnn, lstm, gru; float64 over the same float32
    weights) and against the equations of minGRU and minLSTM, over 30 steps; also the page's list of cells."""
    from cdp import Browser

    from rnnlab import cells
    from rnnlab.config import ModelConfig
    from rnnlab.engines.numpy import step
    from rnnlab.export.page_js import cells_js
    CELL_NAMES = cells_js()[0]
    ids = np.random.default_rng(1).integers(0, 11, 30).tolist()
    js = (f"(() => {{ const m = window.rnnlab.model, s = m.zero(), out = [];"
          f" for (const i of {ids}) out.push(Array.from(m.step(i, s))); return out; }})()")
    with Browser() as b:
        for cell in ("rnn", "lstm", "gru", "mingru", "minlstm"):
            known = cell in cells.CELLS
            row = cells.CELLS[cell] if known else None
            gates, state = (row.gates, row.state) if known else ((2, ("h",)) if cell == "mingru" else (3, ("h",)))
            names = row.params if known else ("weight_ih", "bias_ih")
            E = 4 if cell == "gru" else 0
            page, p = random_page(tmp_path, cell, gates, state, names, E=E)
            b.open(page.resolve().as_uri())
            got = np.array(b.eval(js))                                           # (30, V)
            if known:
                cfg = ModelConfig(cell=cell, vocab_size=11, hidden_size=6, num_layers=2, embed_dim=E)
                s = tuple(np.zeros((2, 1, 6)) for _ in state)
                want = []
                for i in ids:
                    logits, s = step.step(p, cfg, np.array([i]), s)
                    want.append(logits[0])
            else:
                hs, want = [np.zeros(6), np.zeros(6)], []
                for i in ids:
                    x = np.eye(11)[i]
                    for k in range(2):
                        hs[k] = min_step(cell, p, k, x, hs[k])
                        x = hs[k]
                    want.append(p["decoder.weight"] @ x + p["decoder.bias"])
            assert np.abs(got - np.array(want)).max() < 1e-9, cell
        assert b.eval("window.rnnlab.cells") == list(CELL_NAMES)
        assert b.errors == [], b.errors


def test_page_sizes(tmp_path):
    """float32: <= 1.4x the weights + 50 KB; float16: <= 0.75x + 50 KB (an H=192 LSTM, 2 layers)."""
    from rnnlab import snapshot
    data = tmp_path / "t.txt"
    data.write_text(TEXT, encoding="utf-8")
    p = rnnlab("train", "--data", data, "--out", tmp_path / "run", "--cell", "lstm", "--hidden-size", 192,
               "--num-layers", 2, "--batch-size", 2, "--seq-len", 8, "--max-steps", 2, "--eval-every", 2,
               "--no-progress")
    assert p.returncode == 0, p.stderr
    weights = 4 * sum(a.size for a in snapshot.load(tmp_path / "run" / "best.safetensors").params.values())
    sizes = {}
    for dtype in ("float32", "float16"):
        out = tmp_path / f"{dtype}.html"
        p = rnnlab("export", tmp_path / "run", "--format", "html", "--out", out, "--dtype", dtype)
        assert p.returncode == 0 and dtype in p.stdout, p.stderr
        sizes[dtype] = out.stat().st_size
        assert dtype in out.read_text(encoding="utf-8")
    assert weights > 1_000_000
    assert sizes["float32"] <= 1.4 * weights + 50_000, (sizes, weights)
    assert sizes["float16"] <= 0.75 * weights + 50_000, (sizes, weights)


ORT_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.modules["rnnlab"] = None                          # no rnnlab here: onnxruntime alone runs the files
    import numpy as np, onnxruntime as ort
    seq, step = (ort.InferenceSession(f) for f in sys.argv[1:3])
    meta = seq.get_modelmeta().custom_metadata_map
    given = np.load(sys.argv[3])
    ids, states, W = given["ids"], given["states"], int(given["window"])  # (N, T), (T, S, L, N, H)
    names = [i.name for i in seq.get_inputs()][1:]
    at = lambda t: dict(zip(names, states[t]))
    steps = [step.run(None, {"id": ids[:, t], **at(t)})[0] for t in range(ids.shape[1])]
    windows = [seq.run(None, {"ids": ids[:, t:t + W], **at(t)})[0] for t in range(0, ids.shape[1], W)]
    free = seq.run(None, {"ids": ids, **at(0)})[0]
    np.savez(sys.argv[4], steps=np.stack(steps, 1), windows=np.concatenate(windows, 1), free=free)
    print(json.dumps({"vocab": json.loads(meta["rnnlab.vocabulary"]), "graph": meta["rnnlab.graph"],
                      "inputs": [i.name for i in seq.get_inputs()], "outputs": [o.name for o in step.get_outputs()]}))
""")


def engine_reference(engine, params, ids, window):
    """The torch engine over ids (N, T) from zeros: its state before each step (T, S, L, N, H), its step logits
    (N, T, V), its sequence logits over windows of `window` started from that state, and over the whole text."""
    state, states, steps = engine.zero_state(ids.shape[0]), [], []
    for t in range(ids.shape[1]):
        states.append(np.stack(engine.export_state(state)))
        logits, state = engine.step(params, ids[:, t], state)
        steps.append(logits)
    windows = [engine.logits(params, {"x": ids[:, t:t + window]}, engine.load_state(tuple(states[t])))[0]
               for t in range(0, ids.shape[1], window)]
    return np.stack(states).astype(np.float32), np.stack(steps, 1), np.concatenate(windows, 1), \
        engine.logits(params, {"x": ids})[0]


def onnx_differences(run, out, tmp_path) -> dict:
    """Run the graphs `out` and its .step twin, exported from `run`, in onnxruntime in a Python that cannot import
    rnnlab, and return the largest |ONNX - torch engine| of each comparison (see the test below)."""
    from rnnlab import cells
    from rnnlab.models import open_model
    assert out.exists() and (tmp_path / "model.step.onnx").exists()
    snap, engine, params = open_model(run, "lm", "best", "torch", device="cpu")
    text = TEXT[100:300]                                                     # 200 characters
    ids = np.stack([snap.vocab.encode(text), snap.vocab.encode(text[::-1])]).astype(np.int64)   # (2, T)
    states, steps, windows, free = engine_reference(engine, params, ids, 10)
    np.savez(tmp_path / "in.npz", ids=ids, states=states, window=10)
    (tmp_path / "ort.py").write_text(ORT_SCRIPT)
    r = subprocess.run([sys.executable, "-I", tmp_path / "ort.py", out, tmp_path / "model.step.onnx",
                        tmp_path / "in.npz", tmp_path / "out.npz"], capture_output=True, text=True, cwd=tmp_path,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    info, got = json.loads(r.stdout), np.load(tmp_path / "out.npz")
    names = list(cells.get(snap.mcfg.cell).state)
    assert info == {"vocab": snap.vocab.to_json(), "graph": "sequence", "inputs": ["ids", *names],
                    "outputs": ["logits", *(n + "_out" for n in names)]}
    diff = {k: float(np.abs(got[k] - want).max()) for k, want in
            (("steps", steps), ("windows", windows), ("free", free))}
    own = float(np.abs(windows - steps).max())                               # the engine: sequence vs step
    print(f"{snap.mcfg.cell}: largest |ONNX - torch engine| over {ids.shape[1]} symbols: {diff}; the engine's own "
          f"sequence vs step paths: {own:.1e}")
    return diff


def needs_onnx():
    for name in ("onnx", "onnxruntime", "torch"):
        pytest.importorskip(name)


@pytest.mark.parametrize("cell", NAMES)
def test_onnx_graphs_match_the_torch_engine(runs, cell, tmp_path):
    """Both graphs give the torch engine's logits within 1e-5 at each of 200 characters, from the engine's state
    there (the step graph one character at a time, the sequence graph 10 at a time). Run freely over all 200 from
    zeros the gap grows to ~1e-4: float32 rounding, amplified by the recurrence (the torch engine itself is as far
    from a float64 run), so that comparison gets a float32 bound."""
    needs_onnx()
    p = rnnlab("export", runs[cell], "--format", "onnx", "--out", tmp_path / "model.onnx")
    assert p.returncode == 0 and "model.step.onnx" in p.stdout, p.stderr
    diff = onnx_differences(runs[cell], tmp_path / "model.onnx", tmp_path)
    assert diff["steps"] <= 1e-5 and diff["windows"] <= 1e-5, diff
    assert diff["free"] <= 1e-3, diff


def test_onnx_cell_without_a_torch_layer(tmp_path, monkeypatch):
    """A cell PyTorch lacks (tests/test_new_cell.py's throwaway toy cell, which the torch engine steps in a Python
    loop) exports too: its sequence graph is an ONNX Loop around the traced step, and runs any T."""
    needs_onnx()
    import test_new_cell as toy

    from rnnlab import cells
    from rnnlab.config import ModelConfig, TrainConfig
    from rnnlab.engines.torch import cells as torch_cells
    from rnnlab.export import onnx
    from rnnlab.lm import train
    monkeypatch.setitem(cells.CELLS, "toy", toy.ROW)
    monkeypatch.setitem(sys.modules, "rnnlab.engines.numpy.toy", toy.toy_module())
    monkeypatch.setattr(torch_cells, "toy", toy.toy_torch, raising=False)
    (tmp_path / "t.txt").write_text(TEXT, encoding="utf-8")
    train(ModelConfig(cell="toy", hidden_size=8, num_layers=2), TrainConfig(data=str(tmp_path / "t.txt"),
          batch_size=4, seq_len=16, max_steps=30, eval_every=30, lr=0.01), tmp_path / "run", progress=False,
          log=lambda *a: None)
    onnx.write(tmp_path / "run", tmp_path / "model.onnx")                  # in this process, where toy exists
    diff = onnx_differences(tmp_path / "run", tmp_path / "model.onnx", tmp_path)
    assert diff["steps"] <= 1e-5 and diff["windows"] <= 1e-5 and diff["free"] <= 1e-3, diff


def test_bad_inputs_are_one_line_errors(runs, tmp_path, monkeypatch):
    run = runs["gru"]
    assert_user_error(rnnlab("export", tmp_path / "nowhere", "--format", "html", "--out", tmp_path / "p.html"),
                      "no checkpoint")
    assert_user_error(rnnlab("export", run, "--format", "html", "--out", tmp_path), "is a directory")
    assert_user_error(rnnlab("export", run, "--format", "pdf", "--out", tmp_path / "p"), "--format")
    assert_user_error(rnnlab("export", run, "--format", "onnx", "--out", tmp_path / "m.onnx", "--dtype", "float16"),
                      "--dtype float16 is for --format html")
    stub = tmp_path / "stub" / "onnx"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('onnx is hidden by this test')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(stub.parent), str(ROOT)]))
    hidden = subprocess.run([sys.executable, "-m", "rnnlab", "export", run, "--format", "onnx", "--out",
                             tmp_path / "m.onnx"], env=env, capture_output=True, text=True, timeout=300)
    assert_user_error(hidden, "pip install 'rnnlab[onnx]'")
    classify = tmp_path / "parity.tsv"
    assert rnnlab("synth", "parity", "--out", classify).returncode == 0
    c = rnnlab("classify", "--data", classify, "--out", tmp_path / "cls", "--hidden-size", 8, "--max-steps", 2,
               "--eval-every", 2, "--no-progress")
    assert c.returncode == 0, c.stderr
    for fmt in ("html", "onnx"):
        assert_user_error(rnnlab("export", tmp_path / "cls", "--format", fmt, "--out", tmp_path / "x"),
                          "supports character models only")
    from rnnlab.errors import UserError
    from rnnlab.export import html
    from rnnlab.export import page_js
    real = page_js.cells_js
    monkeypatch.setattr(page_js, "cells_js", lambda: (("rnn", "lstm"), real()[1]))   # a cell the page lacks
    with pytest.raises(UserError, match="does not implement the cell 'gru'"):
        html.write(run, tmp_path / "p.html")
    assert not (tmp_path / "p.html").exists()
