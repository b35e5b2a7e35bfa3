"""A new cell is three pieces: its NumPy file, its torch step, one row in rnnlab/cells.py. This test writes a
throwaway cell as exactly those three pieces (here, in memory: `toy` is what rnnlab/engines/numpy/toy.py would hold,
`toy_torch` what rnnlab/engines/torch/cells.py would gain, ROW the line of cells.py) and nothing else: the config,
both engines, the one loop, checkpoints and the task shapes then take it, and the engines agree in float64.

The toy cell is a two-gate minimal gated unit, PyTorch-style layout (rows z then n):
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)      n = tanh(W_in x + b_in + W_hn h + b_hn)
    h' = (1 - z) * h + z * n
"""
import sys
import types

import numpy as np
import pytest

from rnnlab import cells
from rnnlab.config import ModelConfig, TrainConfig
from rnnlab.engines import make_engine
from rnnlab.engines.numpy import sequence
from rnnlab.engines.numpy.layers import sigmoid

torch = pytest.importorskip("torch")

ROW = cells.Cell("toy", 2, ("h",), "", "numpy", "a throwaway two-gate cell (tests/test_new_cell.py)")


def _step_forward(x_t, state, p):
    (h,) = state
    H = h.shape[1]
    a = sequence.project(x_t, p["weight_ih"]) + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]   # (N, 2H)
    z, n = sigmoid(a[:, :H]), np.tanh(a[:, H:])
    return ((1 - z) * h + z * n,), (x_t, h, z, n, p)


def _step_backward(dstate, cache):
    (dh,) = dstate
    x_t, h, z, n, p = cache
    da = np.concatenate([dh * (n - h) * z * (1 - z), dh * z * (1 - n * n)], axis=1)   # (N, 2H)
    dx, dw_ih = sequence.project_backward(da, x_t, p["weight_ih"])
    grads = {"weight_ih": dw_ih, "weight_hh": da.T @ h, "bias_ih": da.sum(0), "bias_hh": da.sum(0)}
    return dx, (dh * (1 - z) + da @ p["weight_hh"],), grads


def toy_module():
    m = types.ModuleType("rnnlab.engines.numpy.toy")
    m.step_forward, m.step_backward = _step_forward, _step_backward
    m.forward = lambda x, s0, p: sequence.sequence_forward(m, x, s0, p)            # no fused twin: the plain pass
    m.backward = lambda dout, dsT, cache: sequence.sequence_backward(m, dout, dsT, cache)
    return m


def toy_torch(x_t, state, w_ih, w_hh, b_ih, b_hh):
    (h,) = state
    H = h.shape[1]
    a = x_t @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    z, n = torch.sigmoid(a[:, :H]), torch.tanh(a[:, H:])
    return ((1 - z) * h + z * n,)


@pytest.fixture
def toy_cell(monkeypatch):
    from rnnlab.engines.torch import cells as torch_cells
    monkeypatch.setitem(cells.CELLS, "toy", ROW)
    monkeypatch.setitem(sys.modules, "rnnlab.engines.numpy.toy", toy_module())
    monkeypatch.setattr(torch_cells, "toy", toy_torch, raising=False)
    return "toy"


def test_the_step_pair_is_its_own_gradient(toy_cell):
    """Central differences through the plain sequence pass (float64), every parameter and the input."""
    rng = np.random.default_rng(0)
    N, T, D, H = 3, 4, 2, 3
    p = {"weight_ih": rng.normal(size=(2 * H, D)), "weight_hh": rng.normal(size=(2 * H, H)),
         "bias_ih": rng.normal(size=2 * H), "bias_hh": rng.normal(size=2 * H)}
    x, h0, w = rng.normal(size=(N, T, D)), (rng.normal(size=(N, H)),), rng.normal(size=(N, T, H))
    m = sys.modules["rnnlab.engines.numpy.toy"]
    out, _, cache = m.forward(x, h0, p)
    dx, _, grads = m.backward(w, None, cache)

    def loss():
        return float((m.forward(x, h0, p)[0] * w).sum())
    for arr, g in [(p[k], grads[k]) for k in p] + [(x, dx)]:
        num = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            old = arr[i]
            arr[i] = old + 1e-6
            up = loss()
            arr[i] = old - 1e-6
            num[i] = (up - loss()) / 2e-6
            arr[i] = old
        assert np.abs(num - g).max() <= 1e-6 * max(1.0, np.abs(num).max())


@pytest.mark.parametrize("task", ["lm", "classify", "seq2seq"])
def test_both_engines_train_it_alike(toy_cell, task):
    mcfg = ModelConfig(cell=toy_cell, vocab_size=6, hidden_size=4, num_layers=2, task=task,
                       num_labels=3 if task == "classify" else 0)
    tcfg = TrainConfig(dtype="float64", optimizer="adam", lr=0.01)
    rng = np.random.default_rng(1)
    b = {"x": rng.integers(0, 6, (4, 5)), "y": rng.integers(0, 6, (4, 5))}
    if task == "classify":
        b.update(y=rng.integers(0, 3, 4), mask=np.arange(5)[None] < np.array([5, 3, 1, 2])[:, None])
    if task == "seq2seq":
        b.update(src=rng.integers(0, 6, (4, 3)), src_mask=np.arange(3)[None] < np.array([3, 1, 2, 3])[:, None])
    engines = [make_engine("numpy", mcfg, tcfg), make_engine("torch", mcfg, tcfg, device="cpu")]
    params = [e.init_params(0) for e in engines]
    opts = [e.init_opt_state(p) for e, p in zip(engines, params)]
    for _ in range(3):
        ms = [e.train_step(p, o, b, e.zero_state(4) if task == "lm" else None, 0.01, None)[0]
              for e, p, o in zip(engines, params, opts)]
        assert abs(ms[0]["loss"] - ms[1]["loss"]) <= 1e-12
    a, t = engines[0].export(params[0]), engines[1].export(params[1])
    assert max(float(np.abs(a[k] - t[k]).max()) for k in a) <= 1e-10


def test_the_loop_trains_and_checkpoints_it(toy_cell, tmp_path):
    from helpers import word_corpus
    from rnnlab import snapshot
    from rnnlab.lm import train
    data = word_corpus(tmp_path, 2000)
    res = train(ModelConfig(cell=toy_cell, hidden_size=8), TrainConfig(data=str(data), batch_size=4, seq_len=8, max_steps=6,
                eval_every=3, lr=0.01), tmp_path / "run", progress=False, log=lambda *a: None)
    assert res["step"] == 6 and res["best_val"] is not None
    snap = snapshot.load(tmp_path / "run" / "latest.safetensors", "lm")
    assert snap.mcfg.cell == "toy" and snap.params["rnn.weight_ih_l0"].shape == (16, snap.mcfg.vocab_size)
