"""||dL_T/dh_k|| from rnnlab.experiments.gradients (the cells' own step_backward chain) against independent
computations in float64: central differences through the cells' forward, and PyTorch autograd through
nn.RNNCell/LSTMCell/GRUCell. Then the paper's claim on a fixed seed: vanishing with a small W_hh, exploding with
a large one."""
import doctest

import numpy as np
import pytest

from rnnlab import cells
from rnnlab.config import ModelConfig
from rnnlab.engines.numpy import model
from rnnlab.experiments import gradients, memory

CELLS = cells.NAMES                              # every row of rnnlab.cells


def setup(cell, layers=1, H=4, V=6, N=3, T=6, seed=0):
    cfg = ModelConfig(cell=cell, vocab_size=V, hidden_size=H, num_layers=layers)
    rng = np.random.default_rng(seed)
    # Larger weights than the default init, so that the gradients are far from zero at every distance.
    params = {k: 0.8 * rng.standard_normal(v.shape) for k, v in model.init_params(cfg, seed, np.float64).items()}
    return cfg, params, rng.integers(0, V, (N, T + 1))


def log_softmax_pick(logits, target):
    z = logits - logits.max(axis=1, keepdims=True)
    return z[np.arange(len(target)), target] - np.log(np.exp(z).sum(axis=1))


@pytest.mark.parametrize("cell", CELLS)
def test_norms_equal_central_differences(cell):
    """Perturb h_k of every sequence, rerun the cell's forward from step k to T, difference L_T."""
    cfg, params, seqs = setup(cell)
    x, target = seqs[:, :-1], seqs[:, -1]
    N, T = x.shape
    mod, p = model.cell_module(cell), model.layer_params(params, cfg, 0)
    W, b = params["decoder.weight"], params["decoder.bias"]
    zeros = tuple(np.zeros((N, cfg.hidden_size)) for _ in range(mod.STATE_SIZE))

    def loss_from(k, state_k):                                   # sum over sequences of L_T^(n), given state at k
        h_T = state_k[0] if k == T else mod.forward(x[:, k:], state_k, p)[1][0]
        return -log_softmax_pick(h_T @ W.T + b, target).sum()

    got = gradients.grad_norms(params, cfg, seqs, "xent")["h_each"]      # (N, T)
    eps = 1e-6
    for k in range(1, T + 1):
        state_k = mod.forward(x[:, :k], zeros, p)[1]
        num = np.empty((N, cfg.hidden_size))
        for n in range(N):
            for i in range(cfg.hidden_size):
                plus = [s.copy() for s in state_k]
                minus = [s.copy() for s in state_k]
                plus[0][n, i] += eps
                minus[0][n, i] -= eps
                num[n, i] = (loss_from(k, tuple(plus)) - loss_from(k, tuple(minus))) / (2 * eps)
        want = np.linalg.norm(num, axis=1)
        assert np.all(want > 1e-6), (k, want)                    # a real signal at every distance
        np.testing.assert_allclose(got[:, k - 1], want, rtol=1e-6, atol=1e-9, err_msg=f"{cell} k={k}")


@pytest.mark.parametrize("loss", ["xent", "proj"])
@pytest.mark.parametrize("cell", CELLS)
def test_norms_equal_torch_autograd(cell, loss):
    """A two-layer stack (the measured h_k is the top layer's), rebuilt from PyTorch's own cells."""
    torch = pytest.importorskip("torch")
    if not cells.CELLS[cell].nn_layer:
        pytest.skip(f"torch.nn has no cell for {cell!r}")
    cfg, params, seqs = setup(cell, layers=2, H=5, V=7, N=4, T=9, seed=1)
    x, target = seqs[:, :-1], seqs[:, -1]
    N, T = x.shape
    H, V = cfg.hidden_size, cfg.vocab_size
    make = getattr(torch.nn, cells.CELLS[cell].nn_layer + "Cell")                 # nn.RNNCell (tanh), LSTMCell, GRUCell
    S = len(cells.CELLS[cell].state)
    layers = []
    for k, d in enumerate((V, H)):
        c = make(d, H).double()
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(c, name).copy_(torch.from_numpy(params[f"rnn.{name}_l{k}"]))
        layers.append(c)
    xs = torch.nn.functional.one_hot(torch.from_numpy(x), V).double()           # (N, T, V)
    states = [(torch.zeros(N, H, dtype=torch.float64),) * S for _ in layers]
    top = []
    for t in range(T):
        inp = xs[:, t]
        for k, c in enumerate(layers):
            out = c(inp, states[k]) if S > 1 else c(inp, states[k][0])          # LSTMCell takes and gives (h, c)
            states[k] = out if S > 1 else (out,)
            inp = states[k][0]
        inp.retain_grad()
        top.append(inp)                                                          # h_t of the top layer (N, H)
    if loss == "xent":
        logits = top[-1] @ torch.from_numpy(params["decoder.weight"]).T + torch.from_numpy(params["decoder.bias"])
        L = torch.nn.functional.cross_entropy(logits, torch.from_numpy(target), reduction="sum")
    else:
        u = np.random.default_rng(0).standard_normal(H)
        L = (top[-1] @ torch.from_numpy(u / np.linalg.norm(u))).sum()
    L.backward()
    want = np.stack([h.grad.norm(dim=1).numpy() for h in top], axis=1)        # (N, T)
    got = gradients.grad_norms(params, cfg, seqs, loss, seed=0)
    np.testing.assert_allclose(got["h_each"], want, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(got["h"], want.mean(axis=0), rtol=1e-10)


def test_rescale_sets_the_spectral_radius_of_every_block():
    cfg = ModelConfig(cell="lstm", vocab_size=5, hidden_size=6, num_layers=2)
    p = gradients.rescale(model.init_params(cfg, 3, np.float32), cfg, 1.7)
    for k in range(2):
        w = p[f"rnn.weight_hh_l{k}"]
        assert w.dtype == np.float64
        for g in range(4):
            assert gradients.spectral_radius(w[g * 6:(g + 1) * 6]) == pytest.approx(1.7, rel=1e-12)


def test_rnn_gradient_vanishes_with_small_w_hh_and_explodes_with_large():
    """Fixed seed 0, H=16, V=10, T=30, 8 sequences, loss at step T. Measured when written: g(20)/g(1) = 3.3e-7 at
    spectral radius 0.5 and 12.4 at radius 2. Claimed here: at least 1e5 times smaller, at least 5 times larger."""
    cfg = ModelConfig(cell="rnn", vocab_size=10, hidden_size=16)
    params = model.init_params(cfg, 0, np.float64)
    seqs = np.random.default_rng(0).integers(0, 10, (8, 31))
    ratio = {}
    for radius in (0.5, 2.0):
        g = gradients.grad_norms(gradients.rescale(params, cfg, radius), cfg, seqs)["h"]   # index k - 1, T = 30
        ratio[radius] = g[30 - 20 - 1] / g[30 - 1 - 1]                                      # distance 20 / 1
    assert ratio[0.5] < 1e-5, ratio
    assert ratio[2.0] > 5.0, ratio


def test_docstring_examples():
    for mod in (gradients, memory):
        result = doctest.testmod(mod)
        assert result.attempted > 0 and result.failed == 0, mod.__name__
