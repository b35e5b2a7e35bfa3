"""The task shapes learn: parity (many-to-one), string reversal (many-to-many), two styles (one-to-many); and a
resumed classifier run is the uninterrupted one, bit for bit."""
import numpy as np
import pytest

from helpers import one_blas_thread
from rnnlab.config import ModelConfig, TrainConfig
from rnnlab import checkpoint, snapshot
from rnnlab.models import open_model
from rnnlab.tasks import classify, conditional, data, seq2seq, synthetic


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with one_blas_thread():
        yield


def quiet(*a, **k):
    pass


def latest(run, task):
    return snapshot.load(checkpoint.resolve(run, "latest"), task)


def table(tmp_path, task, n, seed=0):
    path = tmp_path / f"{task}.tsv"
    data.write_tsv(path, synthetic.HEADERS[task], synthetic.generate(task, n, seed))
    return path


def test_parity_reaches_95_percent(tmp_path):
    """Parity of bit strings of length 1..12: a GRU must count 1s mod 2 to its last state; chance is 50%."""
    path = table(tmp_path, "parity", 3000)
    res = classify.train(ModelConfig(cell="gru", hidden_size=32),
                         TrainConfig(data=str(path), batch_size=32, lr=0.01, max_steps=300, eval_every=150, seed=0),
                         {"text_column": "text", "label_column": "label"}, tmp_path / "run", progress=False, log=quiet)
    assert res["val_acc"] >= 0.95, res["report"]
    conf = np.array(res["confusion"])
    assert conf.sum() == 300 and conf.shape == (2, 2)


def test_reversal_reaches_90_percent_exact_match_and_beam_one_is_greedy(tmp_path):
    """Strings of 1..8 letters from a-j, reversed, through an encoder state of 64 units (no attention)."""
    path = table(tmp_path, "reverse", 6000)
    res = seq2seq.train(ModelConfig(cell="lstm", hidden_size=64),
                        TrainConfig(data=str(path), batch_size=64, lr=0.01, schedule="cosine", min_lr_frac=0.05,
                                    max_steps=700, eval_every=700, val_frac=0.05, seed=0),
                        {"source_column": "source", "target_column": "target"}, tmp_path / "run", progress=False,
                        log=quiet)
    assert res["val_exact"] >= 0.90, res
    assert res["val_cer"] <= 0.05, res
    run, engine, params = open_model(tmp_path / "run", "seq2seq")
    rows = synthetic.generate("reverse", 60, seed=99)                  # fresh strings
    seqs = data.encode_all(run.vocab, [s for s, _ in rows], "source")
    greedy = seq2seq.decode(engine, params, run.vocab, seqs, 26, beam=1)
    one = ["".join(run.vocab.symbols[i] for i in seq2seq.beam_search(engine, params, run.vocab, s, 1, 26))
           for s in seqs]
    assert one == greedy
    beam3 = seq2seq.decode(engine, params, run.vocab, seqs, 26, beam=3)
    assert seq2seq.scores(beam3, [t for _, t in rows])["exact"] >= 0.85


def histogram(texts, alphabet):
    s = "".join(texts)
    counts = np.array([s.count(ch) for ch in alphabet], dtype=np.float64)
    return counts / counts.sum()


def tv(p, q):
    return 0.5 * np.abs(p - q).sum()


def test_two_conditions_write_measurably_different_text(tmp_path):
    """Styles: label x draws letters a..h with weights 8:7:..:1, label y with 1:2:..:8 (true TV between the letter
    distributions: 0.44). Sampled with different seeds, 3000 characters per sample: two samples of the same label
    differ only by sampling noise (TV < 0.08; measured 0.02-0.04), samples of the two labels by TV > 0.3 (measured
    0.43-0.46), and by 4x more than the same label's."""
    path = table(tmp_path, "styles", 2000)
    out = tmp_path / "run"
    res = conditional.train(ModelConfig(cell="gru", hidden_size=32),
                            TrainConfig(data=str(path), batch_size=32, lr=0.01, max_steps=300, eval_every=300, seed=0),
                            {"condition_column": "label", "text_column": "text"}, out, progress=False, log=quiet)
    assert res["val_label_acc"] >= 0.9, res
    run, engine, params = open_model(out, "conditional")
    labels = run.extra["labels"]

    def sample(label, seed):
        return conditional.generate(engine, params, run.vocab, labels, label, length=3000, seed=seed)[0]

    letters = "abcdefgh"
    x1, x2, y1 = (histogram([sample(lab, s)], letters) for lab, s in (("x", 1), ("x", 2), ("y", 3)))
    same, different = tv(x1, x2), tv(x1, y1)
    assert same < 0.08 and different > 0.3 and different > 4 * same, (same, different)
    assert x1[:4].sum() > 0.6 > y1[:4].sum()                         # x favours a-d, y favours e-h


def test_classifier_resume_is_bitwise_exact(tmp_path):
    """20 + 20 steps with a resume in between equal 40 steps in one run (float64, dropout on)."""
    path = table(tmp_path, "brackets", 400)
    mcfg = ModelConfig(cell="lstm", hidden_size=8, num_layers=2, embed_dim=3, dropout=0.2)
    tcfg = TrainConfig(data=str(path), batch_size=16, max_steps=40, eval_every=10, dtype="float64",
                       schedule="cosine", warmup_steps=3, seed=3)
    opts = {"text_column": "text", "label_column": "label"}
    classify.train(mcfg, tcfg, opts, tmp_path / "one", progress=False, log=quiet)
    classify.train(mcfg, tcfg, opts, tmp_path / "two", progress=False, log=quiet, stop_at=20)
    paused = latest(tmp_path / "two", "classify")
    assert paused.step == 20 and paused.extra["train_seconds"] > 0
    classify.train(None, None, None, tmp_path / "two", resume=True, progress=False, log=quiet)
    a, b = latest(tmp_path / "one", "classify"), latest(tmp_path / "two", "classify")
    assert a.step == b.step == 40
    assert b.extra["train_seconds"] > paused.extra["train_seconds"]   # the training clock went on from the checkpoint
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    for name in a.opt_state:
        np.testing.assert_array_equal(a.opt_state[name], b.opt_state[name])
    assert a.rng_state == b.rng_state


def test_task_time_budget_is_training_seconds(tmp_path):
    """--max-time in a task's loop: training seconds as in `rnnlab train` (evaluations, every 2 steps here, are
    left out of the count and show in the eval rows' wall clock)."""
    import json
    path = table(tmp_path, "brackets", 400)
    tcfg = TrainConfig(data=str(path), batch_size=16, max_steps=10 ** 6, max_time=0.6, eval_every=2, seed=3)
    classify.train(ModelConfig(cell="gru", hidden_size=8), tcfg, {"text_column": "text", "label_column": "label"},
                   tmp_path / "run", progress=False, log=quiet)
    run = latest(tmp_path / "run", "classify")
    assert 0.6 <= run.extra["train_seconds"] < 1.2
    evals = [r for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) if "wall" in r]
    assert evals[-1]["wall"] > evals[-1]["time"] >= 0.6, evals[-1]
