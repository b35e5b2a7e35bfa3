"""The task shapes' maths: central-difference gradient checks in float64 through masking/padding, the classifier
head, the encoder-decoder boundary and the condition table; padded batches against one-by-one runs; beam width 1
against greedy."""
import numpy as np
import pytest

from helpers import one_blas_thread
from rnnlab.cells import NAMES
from rnnlab import cells
from rnnlab.config import ModelConfig, TrainConfig, replace
from rnnlab.engines.numpy import model
from rnnlab.engines.numpy.engine import Engine
from rnnlab.tasks import conditional, seq2seq
from rnnlab.tasks.data import pad
from rnnlab.vocab import Vocab

@pytest.fixture(autouse=True)
def _one_blas_thread():
    with one_blas_thread():
        yield


CELLS = NAMES                                    # every row of rnnlab.cells


def assert_grads(f, arrays: dict, grads: dict, eps=1e-5, tol=1e-6):
    """Every entry of every array: central difference of f() against the analytic gradient. The relative error
    |a - n| / max(|a| + |n|, 1e-2) must stay <= tol (the floor makes it absolute for entries near zero)."""
    assert set(grads) >= set(arrays), sorted(set(arrays) - set(grads))
    worst = 0.0
    for name, p in arrays.items():
        g = grads[name]
        assert g.shape == p.shape, name
        for i in range(p.size):
            old = p.flat[i]
            p.flat[i] = old + eps
            up = f()
            p.flat[i] = old - eps
            down = f()
            p.flat[i] = old
            num = (up - down) / (2 * eps)
            err = abs(num - g.flat[i]) / max(abs(num) + abs(g.flat[i]), 1e-2)
            assert err <= tol, f"{name}[{i}]: analytic {g.flat[i]:.10g}, numeric {num:.10g}, rel err {err:.2e}"
            worst = max(worst, err)
    return worst


def scaled(params, k=2.0):
    """Larger weights than the default init, so every nonlinearity works off its linear part."""
    return {n: p * k for n, p in params.items()}


def ragged(rng, V, lengths):
    return [rng.integers(0, V, n) for n in lengths]


@pytest.mark.parametrize("embed", [0, 3], ids=["onehot", "embed"])
@pytest.mark.parametrize("cell", CELLS)
def test_masked_stack_gradients_reach_params_and_both_state_ends(cell, embed):
    """loss = <out, R> + <s_T, Q>: gradients of every weight, of the initial state (an input: the encoder-decoder
    boundary and the condition table go through it) and through the padded steps, whose outputs are scored too."""
    rng = np.random.default_rng(0)
    cfg = ModelConfig(cell=cell, vocab_size=4, hidden_size=3, num_layers=2, embed_dim=embed)
    params = scaled({k: v for k, v in model.init_params(cfg, 1, np.float64).items() if not k.startswith("decoder.")})
    ids, mask = pad(ragged(rng, 4, [4, 1, 3, 0]))
    s0 = tuple(rng.standard_normal((2, 4, 3)) for _ in cells.get(cell).state)
    R = rng.standard_normal((4, 4, 3))
    Q = tuple(rng.standard_normal((2, 4, 3)) for _ in s0)

    def loss():
        out, sT, _ = model.stack_forward(params, cfg, ids, s0, mask)
        return float((out * R).sum() + sum((s * q).sum() for s, q in zip(sT, Q)))

    _, _, cache = model.stack_forward(params, cfg, ids, s0, mask)
    grads, ds0 = model.stack_backward(R.copy(), Q, params, cfg, cache)
    assert_grads(loss, params, grads)
    assert_grads(loss, {f"s0.{i}": s for i, s in enumerate(s0)}, {f"s0.{i}": d for i, d in enumerate(ds0)})


@pytest.mark.parametrize("cell", CELLS)
def test_classifier_gradients_through_padding(cell):
    rng = np.random.default_rng(1)
    cfg = ModelConfig(cell=cell, vocab_size=4, hidden_size=3, num_layers=2, embed_dim=2, task="classify",
                      num_labels=3)
    params = scaled(model.init_params(cfg, 0, np.float64))
    ids, mask = pad(ragged(rng, 4, [5, 1, 3, 2, 4]))
    b = {"x": ids, "mask": mask, "y": np.array([0, 2, 1, 2, 0])}

    def loss():
        return model.loss_and_grads(params, cfg, b, None)[0] / 5                # grads are of the mean

    assert_grads(loss, params, model.loss_and_grads(params, cfg, b, None)[2])


@pytest.mark.parametrize("cell", CELLS)
def test_encoder_decoder_gradients_cross_the_boundary(cell):
    """Every encoder weight gets its gradient only through the decoder's initial state (both layers' h, and c)."""
    rng = np.random.default_rng(2)
    cfg = ModelConfig(cell=cell, vocab_size=5, hidden_size=3, num_layers=2, embed_dim=2, task="seq2seq")
    params = scaled(model.init_params(cfg, 0, np.float64))
    src, sm = pad(ragged(rng, 5, [4, 1, 3]))
    tgt = ragged(rng, 5, [2, 3, 1])
    din, dm = pad([np.concatenate([[0], t]) for t in tgt])
    dout, _ = pad([np.concatenate([t, [1]]) for t in tgt])
    b = {"x": din, "y": dout, "mask": dm, "src": src, "src_mask": sm}

    def loss():
        return model.loss_and_grads(params, cfg, b, None)[0] / 3

    grads = model.loss_and_grads(params, cfg, b, None)[2]
    for n in cells.get(cell).params:                                # the boundary really carries gradient
        assert np.abs(grads[f"enc.rnn.{n}_l0"]).max() > 1e-4, n
    assert_grads(loss, params, grads)


@pytest.mark.parametrize("cell", CELLS)
def test_condition_table_gradients(cell):
    rng = np.random.default_rng(3)
    cfg = ModelConfig(cell=cell, vocab_size=4, hidden_size=3, num_layers=2, task="conditional", num_labels=3)
    params = scaled(model.init_params(cfg, 0, np.float64))
    x, y, mask = conditional.line_batch(ragged(rng, 4, [5, 1, 3, 2]), 0, seq_len=5)   # row 0 is cut to 5 steps
    b = {"x": x, "y": y, "mask": mask, "labels": np.array([2, 0, 2, 1])}

    def loss():
        return model.loss_and_grads(params, cfg, b, None)[0] / 4

    grads = model.loss_and_grads(params, cfg, b, None)[2]
    assert_grads(loss, params, grads)


@pytest.mark.parametrize("cell", CELLS)
def test_padded_batch_equals_one_by_one(cell):
    """Logits of a padded batch equal each sequence run alone; the padding's ids do not matter at all."""
    rng = np.random.default_rng(4)
    cfg = ModelConfig(cell=cell, vocab_size=7, hidden_size=8, num_layers=2, embed_dim=4, task="classify",
                      num_labels=3)
    params = model.init_params(cfg, 5, np.float64)
    seqs = ragged(rng, 7, [9, 1, 4, 7, 2, 9])
    ids, mask = pad(seqs)

    def logits(x, m):
        return model.forward(params, cfg, {"x": x, "mask": m}, None)[0]
    batch = logits(ids, mask)
    alone = np.concatenate([logits(s[None], np.ones((1, len(s)), bool)) for s in seqs])
    np.testing.assert_allclose(batch, alone, rtol=1e-12, atol=1e-13)
    junk = np.where(mask, ids, rng.integers(0, 7, ids.shape))       # other ids on the padded steps
    np.testing.assert_array_equal(logits(junk, mask), batch)
    # and the encoder's final state (h, and c for the LSTM) is each source's own last state
    s2s_cfg = replace(cfg, task="seq2seq", num_labels=0)
    s2s = model.init_params(s2s_cfg, 5, np.float64)
    states, _ = model.initial_state(s2s, s2s_cfg, {"src": ids, "src_mask": mask})
    for n, s in enumerate(seqs):
        own, _ = model.initial_state(s2s, s2s_cfg, {"src": s[None], "src_mask": np.ones((1, len(s)), bool)})
        for a, b in zip(states, own):
            np.testing.assert_allclose(a[:, n], b[:, 0], rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("cell", CELLS)
def test_beam_width_one_is_greedy_untrained(cell):
    """On an untrained model outputs often run to max_len without EOS: both paths must agree there too."""
    rng = np.random.default_rng(5)
    vocab = Vocab.from_text("abcdef" + seq2seq.BOS + seq2seq.EOS)
    cfg = ModelConfig(cell=cell, vocab_size=len(vocab), hidden_size=16, embed_dim=0, task="seq2seq")
    engine = Engine(cfg, TrainConfig(dtype="float64"))
    params = scaled(model.init_params(cfg, 6, np.float64), 3.0)
    seqs = ragged(rng, len(vocab) - 2, [3, 1, 6, 2, 5, 4]) + [np.array([], np.int64)]
    seqs = [s + 2 for s in seqs]                                      # ids of a-f, after BOS and EOS
    greedy = seq2seq.greedy(engine, params, vocab, seqs, max_len=12)
    beam = [seq2seq.beam_search(engine, params, vocab, s, 1, max_len=12) for s in seqs]
    assert beam == greedy


def test_edit_distance_and_scores():
    assert seq2seq.edit_distance("kitten", "sitting") == 3
    assert seq2seq.edit_distance("", "abc") == 3 and seq2seq.edit_distance("abc", "") == 3
    assert seq2seq.edit_distance("abc", "abc") == 0
    sc = seq2seq.scores(["abc", "abd", ""], ["abc", "abc", "xy"])
    assert sc["exact"] == pytest.approx(1 / 3) and sc["cer"] == pytest.approx(3 / 8)


@pytest.mark.parametrize("cell", ["lstm", "mingru"])
def test_dropout_masks_and_their_gradients(cell):
    """With dropout on (training): between layers one mask per element, on the top layer one mask per sequence and
    unit shared by every step (variational dropout); the gradients of every weight and of the initial state
    through both masks by central differences (the same seed gives the same masks on every call)."""
    rng = np.random.default_rng(6)
    cfg = ModelConfig(cell=cell, vocab_size=4, hidden_size=6, num_layers=2, dropout=0.5)
    params = scaled({k: v for k, v in model.init_params(cfg, 1, np.float64).items() if not k.startswith("decoder.")})
    ids = rng.integers(0, 4, (3, 7))
    s0 = tuple(rng.standard_normal((2, 3, 6)) for _ in cells.get(cell).state)
    R = rng.standard_normal((3, 7, 6))

    out, _, cache = model.stack_forward(params, cfg, ids, s0, None, np.random.default_rng(9))
    (_, low), (_, top) = cache[2]
    assert low.shape == (3, 7, 6) and top.shape == (3, 1, 6)
    assert 0 < (low == 0).mean() < 1 and 0 < (top == 0).mean() < 1
    zero = out == 0                                                           # (N, T, H): dropped units
    assert np.array_equal(zero, np.broadcast_to(zero[:, :1], zero.shape))     # the same units at every step

    def loss():
        o, _, _ = model.stack_forward(params, cfg, ids, s0, None, np.random.default_rng(9))
        return float((o * R).sum())

    grads, ds0 = model.stack_backward(R.copy(), None, params, cfg, cache)
    assert_grads(loss, params, grads)
    assert_grads(loss, {f"s0.{i}": s for i, s in enumerate(s0)}, {f"s0.{i}": d for i, d in enumerate(ds0)})
