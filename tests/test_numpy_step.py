"""model.step (sampling's one-character path, through the cells' step_forward) equals model.forward with T = 1,
in float64, for every cell, one-hot and embedded input, several layers, K sequences at once."""
import numpy as np
import pytest

from rnnlab.config import ModelConfig
from rnnlab.engines.numpy import model


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("embed_dim", [0, 5])
def test_step_equals_forward_of_one_step(cell, embed_dim):
    cfg = ModelConfig(cell=cell, vocab_size=11, hidden_size=7, num_layers=3, embed_dim=embed_dim)
    params = model.init_params(cfg, 0, np.float64)
    rng = np.random.default_rng(1)
    state = tuple(rng.standard_normal(s.shape) for s in model.zero_state(cfg, 4, np.float64))   # (L, K, H)
    before = tuple(s.copy() for s in state)
    ids = np.array([0, 3, 10, 3])
    logits, new_state, _ = model.forward(params, cfg, ids[:, None], state)
    step_logits, step_state = model.step(params, cfg, ids, state)
    assert step_logits.shape == (4, 11)
    np.testing.assert_allclose(step_logits, logits[:, 0], rtol=0, atol=1e-13)
    for a, b in zip(step_state, new_state):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-13)
    assert all(np.array_equal(a, b) for a, b in zip(state, before))       # the caller's state is not modified


@pytest.mark.parametrize("embed_dim", [0, 5])
def test_lstm_step_with_prepared_weights_equals_forward(embed_dim):
    cfg = ModelConfig(cell="lstm", vocab_size=11, hidden_size=7, num_layers=3, embed_dim=embed_dim)
    params = model.init_params(cfg, 0, np.float64)
    rng = np.random.default_rng(1)
    state = tuple(rng.standard_normal(s.shape) for s in model.zero_state(cfg, 4, np.float64))   # (L, K, H)
    before = tuple(s.copy() for s in state)
    ids = np.array([0, 3, 10, 3])
    logits, new_state, _ = model.forward(params, cfg, ids[:, None], state)
    fast_logits, fast_state = model.lstm_step(params, model.prepare_lstm_step(params, cfg), cfg, ids, state)
    np.testing.assert_allclose(fast_logits, logits[:, 0], rtol=0, atol=1e-13)
    for a, b in zip(fast_state, new_state):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-13)
    assert all(np.array_equal(a, b) for a, b in zip(state, before))       # the caller's state is not modified


def test_engine_step_cache_follows_training():
    """Engine.step caches prepared LSTM weights per params dict; a train_step changes params in place, and the
    next step must see the new weights, not the cached ones."""
    from rnnlab.config import TrainConfig
    from rnnlab.engines.numpy import Engine
    cfg = ModelConfig(cell="lstm", vocab_size=11, hidden_size=7, num_layers=2)
    eng = Engine(cfg, TrainConfig(dtype="float64", lr=0.1))
    params = eng.init_params(0)
    ids = np.array([1, 2])
    before, _ = eng.step(params, ids, eng.zero_state(2))
    x = np.random.default_rng(0).integers(0, 11, (2, 5))
    eng.train_step(params, eng.init_opt_state(params), x, x, eng.zero_state(2), 0.1, None)
    after, _ = eng.step(params, ids, eng.zero_state(2))
    expect, _ = model.step(params, cfg, ids, eng.zero_state(2))
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, expect, rtol=0, atol=1e-13)
