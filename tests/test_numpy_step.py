"""One step. Each NumPy cell's step pair, for every row of rnnlab.cells: step_backward against central
differences in float64 for every parameter, the input x_t and every state entry; ids equal their one-hot vectors.
Then model.step (sampling's one-character path, through the cells' step_forward) equals model.forward with T = 1,
in float64, for every cell, one-hot and embedded input, several layers, K sequences at once."""
import numpy as np
import pytest

from helpers import assert_central_differences, cell_input, cell_params, cell_state, numpy_cell
from rnnlab import cells
from rnnlab.cells import NAMES
from rnnlab.config import ModelConfig
from rnnlab.engines.numpy import model, step

KEYS = {name: cells.get(name).params for name in cells.NAMES}   # each row's layer parameters


@pytest.mark.parametrize("ids", [False, True], ids=["floats", "ids"])
@pytest.mark.parametrize("name", NAMES)
def test_step_backward_matches_central_differences(name, ids):
    """loss = sum over the new state's arrays of <s_new, G>; step_backward's dx_t, dstate_prev and this step's
    grads of every parameter against central differences (eps 1e-6, relative errors <= 1e-6)."""
    cell, rng = numpy_cell(name), np.random.default_rng(0)
    N, D, H = 3, 4, 3
    p, state = cell_params(cell, D, H, rng), cell_state(cell, N, H, rng)
    x_t = cell_input(ids, (N,), D, rng)
    G = cell_state(cell, N, H, rng)

    def loss():
        new, _ = cell.step_forward(x_t, state, p)
        return float(sum((s * g).sum() for s, g in zip(new, G, strict=True)))

    before = [a.copy() for a in (x_t, *state, *p.values())]
    new, cache = cell.step_forward(x_t, state, p)
    assert len(new) == cell.STATE_SIZE and all(s.shape == (N, H) for s in new)
    dx_t, dstate_prev, grads = cell.step_backward(G, cache)
    assert all(np.array_equal(a, b) for a, b in zip(before, (x_t, *state, *p.values())))   # inputs untouched
    assert (dx_t is None) == ids and set(grads) == set(KEYS[name]) and len(dstate_prev) == cell.STATE_SIZE
    checks = [(p[k], grads[k], k) for k in KEYS[name]]
    checks += [(s, d, f"state[{i}]") for i, (s, d) in enumerate(zip(state, dstate_prev, strict=True))]
    if not ids:
        checks.append((x_t, dx_t, "x_t"))
    worst, worst_elem = assert_central_differences(loss, checks, f"{name} ids={ids}")
    print(f"{name} ids={ids}: worst relative gradient error {worst:.1e} (2-norm), {worst_elem:.1e} (entries)")


@pytest.mark.parametrize("name", NAMES)
def test_step_with_ids_equals_step_with_one_hot_vectors(name):
    cell, rng = numpy_cell(name), np.random.default_rng(1)
    N, D, H = 4, 5, 3
    p, state = cell_params(cell, D, H, rng), cell_state(cell, N, H, rng)
    ids = np.array([0, 4, 2, 4])
    G = cell_state(cell, N, H, rng)
    new_i, cache_i = cell.step_forward(ids, state, p)
    new_f, cache_f = cell.step_forward(np.eye(D)[ids], state, p)
    _, ds_i, g_i = cell.step_backward(G, cache_i)
    _, ds_f, g_f = cell.step_backward(G, cache_f)
    for a, b in zip(new_i + ds_i, new_f + ds_f, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-14)
    for k in KEYS[name]:
        np.testing.assert_allclose(g_i[k], g_f[k], rtol=0, atol=1e-14)


@pytest.mark.parametrize("cell", NAMES)
@pytest.mark.parametrize("embed_dim", [0, 5])
def test_step_equals_forward_of_one_step(cell, embed_dim):
    cfg = ModelConfig(cell=cell, vocab_size=11, hidden_size=7, num_layers=3, embed_dim=embed_dim)
    params = model.init_params(cfg, 0, np.float64)
    rng = np.random.default_rng(1)
    state = tuple(rng.standard_normal(s.shape) for s in model.zero_state(cfg, 4, np.float64))   # (L, K, H)
    before = tuple(s.copy() for s in state)
    ids = np.array([0, 3, 10, 3])
    logits, new_state, _ = model.forward(params, cfg, {"x": ids[:, None]}, state)
    step_logits, step_state = step.step(params, cfg, ids, state)
    assert step_logits.shape == (4, 11)
    np.testing.assert_allclose(step_logits, logits[:, 0], rtol=0, atol=1e-13)
    for a, b in zip(step_state, new_state):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-13)
    assert all(np.array_equal(a, b) for a, b in zip(state, before))       # the caller's state is not modified


@pytest.mark.parametrize("embed_dim", [0, 5])
@pytest.mark.parametrize("cell", [c for c in NAMES if hasattr(model.cell_module(c), "prepare_step")])
def test_step_with_prepared_weights_equals_forward(cell, embed_dim):
    cfg = ModelConfig(cell=cell, vocab_size=11, hidden_size=7, num_layers=3, embed_dim=embed_dim)
    params = model.init_params(cfg, 0, np.float64)
    rng = np.random.default_rng(1)
    state = tuple(rng.standard_normal(s.shape) for s in model.zero_state(cfg, 4, np.float64))   # (L, K, H)
    before = tuple(s.copy() for s in state)
    ids = np.array([0, 3, 10, 3])
    logits, new_state, _ = model.forward(params, cfg, {"x": ids[:, None]}, state)
    fast_logits, fast_state = step.fast_step(step.prepare_fast_step(params, cfg), ids, state)
    np.testing.assert_allclose(fast_logits, logits[:, 0], rtol=0, atol=1e-13)
    for a, b in zip(fast_state, new_state):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-13)
    assert all(np.array_equal(a, b) for a, b in zip(state, before))       # the caller's state is not modified


def test_engine_step_cache_follows_training():
    """Engine.step caches prepared LSTM weights per params dict; a train_step changes params in place, and the
    next step must see the new weights, not the cached ones."""
    from rnnlab.config import TrainConfig
    from rnnlab.engines.numpy.engine import Engine
    cfg = ModelConfig(cell="lstm", vocab_size=11, hidden_size=7, num_layers=2)
    eng = Engine(cfg, TrainConfig(dtype="float64", lr=0.1))
    params = eng.init_params(0)
    ids = np.array([1, 2])
    before, _ = eng.step(params, ids, eng.zero_state(2))
    x = np.random.default_rng(0).integers(0, 11, (2, 5))
    eng.train_step(params, eng.init_opt_state(params), {"x": x, "y": x}, eng.zero_state(2), 0.1, None)
    after, _ = eng.step(params, ids, eng.zero_state(2))
    expect, _ = step.step(params, cfg, ids, eng.zero_state(2))
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, expect, rtol=0, atol=1e-13)
