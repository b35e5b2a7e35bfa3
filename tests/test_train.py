"""The training loop, resume, sampling and the hello case study, end to end on the NumPy engine."""
import json

import numpy as np
import pytest

from helpers import rnnlab, shakespeare, word_corpus
from rnnlab import cells  # noqa: E402
from rnnlab import snapshot
from rnnlab.config import PRESETS, ModelConfig, TrainConfig
from rnnlab.engines.numpy.engine import Engine
from rnnlab.sample import generate, pick
from rnnlab.lm import train
from rnnlab.vocab import Vocab


def quiet(*a, **k):
    pass


def test_hello_prints_hello():
    proc = rnnlab("hello")
    assert proc.returncode == 0, proc.stderr
    assert "generated from seed 'h': hello" in proc.stdout
    # the table has one row per input character, each with a chosen character equal to the target
    rows = [ln.split() for ln in proc.stdout.splitlines() if ln.strip()[:1].isdigit()]
    assert len(rows) == 4 and all(r[-2] == r[-1] for r in rows), proc.stdout


def test_training_on_shakespeare_lowers_val_loss(tmp_path):
    """20,000 characters of tinyshakespeare, 300 steps: validation falls from ln(V) ~ 4.0 to below 2.4 nats/char."""
    data = tmp_path / "ts20k.txt"
    data.write_text(shakespeare(20_000), encoding="utf-8")
    mcfg = ModelConfig(cell="lstm", hidden_size=128)
    tcfg = TrainConfig(data=str(data), batch_size=16, seq_len=32, lr=3e-3, max_steps=300, eval_every=100, seed=0)
    summary = train(mcfg, tcfg, tmp_path / "run", progress=False, log=quiet)
    rows = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    vals = [r["val_loss"] for r in rows if "val_loss" in r]
    assert len(vals) == 3 and vals[-1] < vals[0]
    assert summary["best_val"] < 2.4, vals


def _small_corpus(tmp_path):
    return word_corpus(tmp_path, 2000)


STOPS = (8, 10, 13)   # with _resume_case's data: a pass boundary, an evaluation step, and mid-pass


def _resume_case(tmp_path, cell, dtype, engine="numpy", engine_options=None):
    """The same run trained straight through to step 30 and interrupted at each of STOPS then resumed; returns
    the two final snapshots. The text gives exactly 8 batches per pass, so step 8 is the end of a pass (the next
    batch resets the hidden state), step 10 an evaluation step (eval_every=10), step 13 the middle of a pass."""
    data = tmp_path / "corpus.txt"
    data.write_text(_small_corpus(tmp_path).read_text()[:265], encoding="utf-8")
    mcfg = ModelConfig(cell=cell, hidden_size=12, num_layers=2, embed_dim=5, dropout=0.2)
    tcfg = TrainConfig(data=str(data), batch_size=4, seq_len=7, max_steps=30, eval_every=10, dtype=dtype,
                       schedule="cosine", warmup_steps=3)
    kw = dict(progress=False, log=quiet, engine_name=engine, **({"engine_options": engine_options} if engine_options
                                                                else {}))
    assert train(mcfg, tcfg, tmp_path / "one", **kw)["step"] == 30
    train(mcfg, tcfg, tmp_path / "two", stop_at=STOPS[0], **kw)
    assert snapshot.load(tmp_path / "two" / "latest.safetensors").step == STOPS[0]
    for stop in STOPS[1:] + (None,):
        train(None, None, tmp_path / "two", resume=True, stop_at=stop, **kw)
        assert snapshot.load(tmp_path / "two" / "latest.safetensors").step == (stop or 30)
    rows = [json.loads(ln) for ln in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "val_loss" in r] == [8, 10, 13, 20, 30]   # each stop checkpointed once
    return (snapshot.load(tmp_path / "one" / "latest.safetensors"),
            snapshot.load(tmp_path / "two" / "latest.safetensors"))


def _max_diff(a, b) -> float:
    """Largest |difference| between two snapshots' params, optimiser state and hidden state (same names)."""
    worst = 0.0
    for da, db in ((a.params, b.params), (a.opt_state, b.opt_state),
                   (dict(enumerate(a.state)), dict(enumerate(b.state)))):
        assert da.keys() == db.keys()
        for k in da:
            worst = max(worst, float(np.max(np.abs(da[k].astype(np.float64) - db[k].astype(np.float64)),
                                            initial=0.0)))
    return worst


@pytest.mark.parametrize("cell", cells.NAMES)
def test_resume_is_bitwise_exact_float64(tmp_path, cell):
    """30 steps in one run equal 30 steps interrupted at three points (STOPS) and resumed, bit for bit (dropout
    RNG, carried hidden state, data position and optimiser state all restored)."""
    from rnnlab.streams import Streams, split
    from rnnlab.vocab import Vocab
    text = _small_corpus(tmp_path).read_text()[:265]
    assert Streams(split(Vocab.from_text(text).encode(text), 0.1)[0], 4, 7).num_batches == 8
    a, b = _resume_case(tmp_path, cell, "float64")
    assert a.step == b.step == 30
    for group in ("params", "opt_state"):
        da, db = getattr(a, group), getattr(b, group)
        assert da.keys() == db.keys()
        for k in da:
            assert np.array_equal(da[k], db[k]), (group, k)
    for sa, sb in zip(a.state, b.state):
        assert np.array_equal(sa, sb)
    assert a.rng_state == b.rng_state


def test_torch_resume_float32_within_1e6(tmp_path):
    """The torch engine on the CPU in float32: interrupted three times and resumed, within 1e-6 of one straight
    run (bitwise where reachable). Skips until torch and rnnlab.engines.torch are both importable."""
    pytest.importorskip("torch")
    try:
        import rnnlab.engines.torch  # noqa: F401
    except ImportError as e:
        pytest.skip(f"the torch engine is not there yet ({e})")
    a, b = _resume_case(tmp_path, "lstm", "float32", engine="torch", engine_options={"device": "cpu"})
    assert a.step == b.step == 30
    assert _max_diff(a, b) <= 1e-6


def test_time_budget_counts_training_only_and_carries_over_a_resume(tmp_path):
    """--max-time is seconds of training for the whole run: evaluations do not count (the eval rows' "wall" runs
    ahead of their "time"), a resume goes on from the checkpoint's clock, and a cosine over the time budget
    (schedule_by="time") starts at --lr and ends near lr * min_lr_frac whatever the step count."""
    data = _small_corpus(tmp_path)
    tcfg = TrainConfig(data=str(data), batch_size=4, seq_len=16, max_steps=10 ** 6, eval_every=3, log_every=1,
                       lr=1e-2, schedule="cosine", schedule_by="time", min_lr_frac=0.1, max_time=1.0)
    run = tmp_path / "run"
    train(ModelConfig(cell="gru", hidden_size=16), tcfg, run, progress=False, log=quiet)
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in rows if "lr" in r]
    evals = [r for r in rows if "val_loss" in r]
    assert lrs[0] > 0.99e-2 and lrs[-1] < 0.2e-2, (lrs[0], lrs[-1])
    assert 1.0 <= evals[-1]["time"] < 1.5 and evals[-1]["wall"] > evals[-1]["time"], evals[-1]
    first = snapshot.load(run / "latest.safetensors").extra["train_seconds"]
    assert 1.0 <= first < 1.5
    train(None, None, run, resume=True, overrides={"max_time": 1.6}, progress=False, log=quiet)
    after = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()][len(rows):]
    assert after[0]["changed"] == {"max_time": [1.0, 1.6]}           # the change of budget, one line
    after = after[1:]
    assert after and min(r["time"] for r in after) >= first         # the clock went on, not from 0
    done = snapshot.load(run / "latest.safetensors")
    assert 1.6 <= done.extra["train_seconds"] < 2.1
    said = []
    train(None, None, run, resume=True, progress=False, log=said.append)   # the budget is spent: not one more step
    assert snapshot.load(run / "latest.safetensors").step == done.step
    assert said[-1].startswith("nothing to do") and "--max-time" in said[-1], said


def test_resume_refuses_a_different_vocabulary(tmp_path):
    data = _small_corpus(tmp_path)
    tcfg = TrainConfig(data=str(data), batch_size=2, seq_len=8, max_steps=5, eval_every=5)
    train(ModelConfig(cell="rnn", hidden_size=8), tcfg, tmp_path / "run", progress=False, log=quiet)
    other = tmp_path / "other.txt"
    other.write_text(data.read_text() + "XYZ", encoding="utf-8")
    proc = rnnlab("train", "--resume", tmp_path / "run", "--data", other, "--max-steps", 10)
    assert proc.returncode == 2 and "never seen" in proc.stderr and "'X'" in proc.stderr, proc.stderr
    assert "--init-from" in proc.stderr


def _tiny_model(tmp_path):
    data = _small_corpus(tmp_path)
    tcfg = TrainConfig(data=str(data), batch_size=4, seq_len=16, max_steps=40, eval_every=40, lr=1e-2)
    train(ModelConfig(cell="gru", hidden_size=16), tcfg, tmp_path / "run", progress=False, log=quiet)
    snap = snapshot.load(tmp_path / "run" / "best.safetensors")
    engine = Engine(snap.mcfg, snap.tcfg)
    return engine, engine.load_params(snap.params), snap.vocab


def test_sampling_same_seed_identical_and_cold_temperature_is_argmax(tmp_path):
    engine, params, vocab = _tiny_model(tmp_path)
    a = generate(engine, params, vocab, "the ", 80, seed=7)
    b = generate(engine, params, vocab, "the ", 80, seed=7)
    c = generate(engine, params, vocab, "the ", 80, seed=8)
    assert a == b and a != c
    greedy = generate(engine, params, vocab, "the ", 80, argmax=True)
    assert generate(engine, params, vocab, "the ", 80, seed=3, temperature=0) == greedy
    assert generate(engine, params, vocab, "the ", 80, seed=3, temperature=1e-4) == greedy
    # K samples in one batch: each row equals... at least they are K texts of the right length, with the prime
    many = generate(engine, params, vocab, "the ", 30, num_samples=3, seed=1)
    assert len(many) == 3 and all(t.startswith("the ") and len(t) == 34 for t in many)


def test_pick_top_k_and_top_p_restrict_the_support():
    rng = np.random.default_rng(0)
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]] * 2000))
    assert set(pick(logits, rng, top_k=2)) == {0, 1}
    assert set(pick(logits, rng, top_p=0.7)) == {0, 1}        # 0.5 < 0.7, then 0.8 >= 0.7: two symbols
    assert set(pick(logits, rng, top_p=0.5)) == {0}
    counts = np.bincount(pick(logits, rng), minlength=4) / 2000
    assert np.allclose(counts, [0.5, 0.3, 0.15, 0.05], atol=0.04)


def test_one_row_pick_is_the_batched_rule_choice_for_choice():
    """pick's one-row fast path (sampling one character at a time) against the batched rule written out: softmax
    in float64, inverse CDF with one uniform per row. Same seed, same choices, across scales and temperatures."""
    def batched(logits, rng, t):
        z = np.asarray(logits, np.float64) / t
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        cdf = np.cumsum(p, axis=1)
        return np.minimum((cdf <= rng.random((1, 1)) * cdf[:, -1:]).sum(axis=1), p.shape[1] - 1)
    gen = np.random.default_rng(7)
    for trial in range(300):
        logits = (gen.standard_normal((1, 65)) * gen.choice([0.1, 1.0, 8.0, 60.0])).astype(np.float32)
        t = float(gen.choice([0.3, 1.0, 1.7]))
        a, b = np.random.default_rng(trial), np.random.default_rng(trial)
        for _ in range(5):
            assert pick(logits, a, t).tolist() == batched(logits, b, t).tolist()


def test_checkpoint_round_trip_is_bitwise(tmp_path):
    engine, params, vocab = _tiny_model(tmp_path)
    snap = snapshot.load(tmp_path / "run" / "latest.safetensors")
    snapshot.save(tmp_path / "copy.safetensors", snap, engine.state_names)
    again = snapshot.load(tmp_path / "copy.safetensors")
    assert again.mcfg == snap.mcfg and again.tcfg == snap.tcfg and again.vocab == snap.vocab
    assert again.step == snap.step and again.rng_state == snap.rng_state
    for k in snap.params:
        assert again.params[k].dtype == snap.params[k].dtype and np.array_equal(again.params[k], snap.params[k])


def test_cli_train_sample_eval(tmp_path):
    data = _small_corpus(tmp_path)
    run = tmp_path / "run"
    proc = rnnlab("train", "--data", data, "--out", run, "--cell", "rnn", "--hidden-size", 16, "--batch-size", 4,
                  "--seq-len", 16, "--max-steps", 20, "--eval-every", 10, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("rnnlab train: engine numpy")
    out = rnnlab("sample", run, "--prime", "the ", "--length", 40, "--seed", 1)
    assert out.returncode == 0 and out.stdout.startswith("the ") and len(out.stdout.rstrip("\n")) == 44
    ev = rnnlab("eval", run, "--data", data)
    assert ev.returncode == 0 and "nats/char" in ev.stdout and "bits/char" in ev.stdout


def test_presets_are_time_budgeted_recipes(tmp_path):
    """--preset shakespeare-quick trains for its --max-time of training with the cosine over that time; explicit
    flags still win; a time schedule without a time budget is one line, exit 2."""
    data = _small_corpus(tmp_path)
    run = tmp_path / "run"
    proc = rnnlab("train", "--preset", "shakespeare-quick", "--engine", "numpy", "--data", data, "--out", run,
                  "--max-time", 1.5, "--hidden-size", 32, "--batch-size", 4, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    snap = snapshot.load(run / "latest.safetensors")
    assert (snap.tcfg.schedule_by, snap.tcfg.max_time, snap.mcfg.embed_dim, snap.mcfg.hidden_size) == \
        ("time", 1.5, 64, 32)
    lrs = [json.loads(ln)["lr"] for ln in (run / "metrics.jsonl").read_text().splitlines() if '"lr"' in ln]
    peak = PRESETS["shakespeare-quick"]["lr"]
    assert lrs[0] > 0.9 * peak and lrs[-1] < 0.15 * peak, (lrs[0], lrs[-1])
    proc = rnnlab("train", "--preset", "shakespeare", "--max-time", 0, "--data", data, "--out", tmp_path / "r2")
    assert proc.returncode == 2 and "--max-time" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "r2").exists()
