"""Optimisers, clipping and schedules of the NumPy engine, against torch.optim (float64) and by hand."""
import math

import numpy as np
import pytest

from rnnlab.config import TrainConfig
from rnnlab.engines.numpy import optim
from rnnlab.errors import UserError
from rnnlab.schedule import learning_rate


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    params = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal(5)}
    grads = [{k: rng.standard_normal(v.shape) for k, v in params.items()} for _ in range(6)]
    return params, grads


@pytest.mark.parametrize("name, kw, torch_cls, torch_kw", [
    ("sgd", dict(momentum=0.0), "SGD", dict(momentum=0.0)),
    ("sgd", dict(momentum=0.9), "SGD", dict(momentum=0.9)),
    ("rmsprop", dict(beta2=0.95, eps=1e-8), "RMSprop", dict(alpha=0.95, eps=1e-8)),
    ("adam", dict(beta1=0.8, beta2=0.99, eps=1e-8), "Adam", dict(betas=(0.8, 0.99), eps=1e-8)),
    ("adam", dict(beta1=0.8, beta2=0.99, eps=1e-8, weight_decay=0.3), "AdamW",
     dict(betas=(0.8, 0.99), eps=1e-8, weight_decay=0.3)),
])
def test_matches_torch_optim(name, kw, torch_cls, torch_kw):
    torch = pytest.importorskip("torch")
    params, grads = _problem()
    cfg = TrainConfig(optimizer=name, lr=0.05, **kw)
    state = optim.init_state(params, cfg)
    tparams = {k: torch.tensor(v.copy(), dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    topt = getattr(torch.optim, torch_cls)(list(tparams.values()), lr=0.05, **torch_kw)
    for g in grads:
        optim.update_(params, {k: v.copy() for k, v in g.items()}, state, cfg, 0.05)
        for k, t in tparams.items():
            t.grad = torch.tensor(g[k])
        topt.step()
    for k in params:
        np.testing.assert_allclose(params[k], tparams[k].detach().numpy(), rtol=1e-12, atol=1e-14)
    assert int(state["step"]) == len(grads)


def _by_hand(name: str, weight_decay: float, seed: int):
    """(params after optim.update_ over _problem's gradients, the same written out: p *= 1 - lr * wd, then SGD's
    p -= lr * g, or the paper's Adagrad mem += g*g; p -= lr * g / sqrt(mem + 1e-8), as min-char-rnn writes it)."""
    lr = 0.1
    params, grads = _problem(seed)
    cfg = TrainConfig(optimizer=name, lr=lr, eps=1e-8, weight_decay=weight_decay)
    state = optim.init_state(params, cfg)
    ref = {k: v.copy() for k, v in params.items()}
    mem = {k: np.zeros_like(v) for k, v in params.items()}
    for g in grads:
        optim.update_(params, {k: v.copy() for k, v in g.items()}, state, cfg, lr)
        for k in ref:
            if weight_decay:
                ref[k] *= 1.0 - lr * weight_decay
            mem[k] += g[k] * g[k]
            ref[k] += -lr * g[k] / (np.sqrt(mem[k] + 1e-8) if name == "adagrad" else 1.0)
    return params, ref


def test_weight_decay_is_decoupled_for_every_optimiser():
    """p *= 1 - lr * wd, then the rule's own update from the unchanged gradient (AdamW's order; Adam's case is
    checked against torch.optim.AdamW above): SGD and the paper's Adagrad by hand."""
    for name in ("sgd", "adagrad"):
        params, ref = _by_hand(name, 0.2, 2)
        for k in params:
            np.testing.assert_allclose(params[k], ref[k], rtol=1e-14, atol=1e-15)
    with pytest.raises(UserError, match="--weight-decay"):
        TrainConfig(lr=0.1, weight_decay=10.0)
    with pytest.raises(UserError, match="--weight-decay"):
        TrainConfig(weight_decay=-0.1)


def test_adagrad_is_the_papers():
    """mem += g*g; p -= lr * g / sqrt(mem + 1e-8), exactly as min-char-rnn writes it (bit for bit)."""
    params, ref = _by_hand("adagrad", 0.0, 1)
    for k in params:
        np.testing.assert_array_equal(params[k], ref[k])


def test_clip_value_then_norm():
    g = {"a": np.array([10.0, -7.0, 0.5]), "b": np.array([[3.0, -4.0]])}
    cfg = TrainConfig(clip_value=5.0, clip_norm=0.0)
    optim.clip_(g, cfg, optim.global_norm(g))
    np.testing.assert_array_equal(g["a"], [5.0, -5.0, 0.5])
    np.testing.assert_array_equal(g["b"], [[3.0, -4.0]])
    g = {"a": np.array([3.0, 4.0]), "b": np.array([12.0])}           # norm 13
    norm = optim.global_norm(g)
    assert norm == 13.0
    optim.clip_(g, TrainConfig(clip_value=0.0, clip_norm=1.0), norm)
    assert math.isclose(optim.global_norm(g), 1.0, rel_tol=1e-6)
    g = {"a": np.array([0.3, 0.4])}                                     # below the threshold: untouched
    optim.clip_(g, TrainConfig(clip_value=0.0, clip_norm=1.0), optim.global_norm(g))
    np.testing.assert_array_equal(g["a"], [0.3, 0.4])


def test_schedules():
    c = TrainConfig(lr=1.0, schedule="constant", warmup_steps=4, max_steps=100)
    assert [learning_rate(c, s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    s = TrainConfig(lr=1.0, schedule="step", step_size=10, gamma=0.5, max_steps=100)
    assert [learning_rate(s, k) for k in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
    cos = TrainConfig(lr=1.0, schedule="cosine", min_lr_frac=0.1, max_steps=100)
    assert learning_rate(cos, 0) == 1.0
    assert math.isclose(learning_rate(cos, 50), 0.55)
    assert math.isclose(learning_rate(cos, 100), 0.1) and math.isclose(learning_rate(cos, 500), 0.1)
    lrs = [learning_rate(cos, k) for k in range(101)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_cosine_over_the_time_budget():
    """schedule_by="time": the same half cosine, its progress seconds / max_time; warmup still counts steps."""
    cos = TrainConfig(lr=1.0, schedule="cosine", min_lr_frac=0.1, max_steps=10 ** 9, max_time=60.0,
                      schedule_by="time", warmup_steps=2)
    assert learning_rate(cos, 0, 30.0) == 0.5                      # warmup first, whatever the clock says
    assert learning_rate(cos, 2, 0.0) == 1.0
    assert math.isclose(learning_rate(cos, 2, 30.0), 0.55)        # half the budget: half way down
    assert math.isclose(learning_rate(cos, 2, 60.0), 0.1) and math.isclose(learning_rate(cos, 9, 600.0), 0.1)
    assert learning_rate(cos, 10 ** 6, 0.0) == 1.0                 # steps do not move it
    for bad in (dict(max_time=0.0), dict(schedule="constant"), dict(schedule_by="hours")):
        with pytest.raises(UserError):
            TrainConfig(**{**dict(schedule="cosine", max_time=60.0, schedule_by="time"), **bad})
