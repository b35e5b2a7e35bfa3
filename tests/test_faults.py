"""Faults during training: non-finite numbers (injected NaN and inf, an absurd learning rate), a full disk or a
read-only folder while saving, a metrics file cut short by a crash. Each ends in a logged skip or a one-line error,
and no checkpoint on disk is ever incomplete or holds a non-finite value."""
import errno
import json
import os

import numpy as np
import pytest

from helpers import assert_user_error, rnnlab, tree_digest, word_corpus
from rnnlab import cli, snapshot
from rnnlab.config import ModelConfig, TrainConfig
from rnnlab.engines.numpy import model
from rnnlab.errors import UserError
from rnnlab.lm import train

MCFG = ModelConfig(cell="gru", hidden_size=8)


def quiet(*a, **k):
    pass


def corpus(tmp_path):
    return word_corpus(tmp_path, 800, ("the ", "cat ", "sat ", "on ", "a ", "mat.\n"))


def tcfg(data, **kw):
    return TrainConfig(**{"data": str(data), "batch_size": 2, "seq_len": 8, "eval_every": 2, "max_steps": 12,
                          "max_bad_steps": 3, **kw})


def all_finite(run):
    """Every checkpoint in `run` loads and every float it holds is finite."""
    found = sorted(run.glob("*.safetensors"))
    for p in found:
        s = snapshot.load(p)
        for group in (s.params, s.opt_state, dict(enumerate(s.state))):
            assert all(np.isfinite(a).all() for a in group.values() if a.dtype.kind == "f"), p
        assert s.best_val is None or np.isfinite(s.best_val)
    return len(found)


def inject(monkeypatch, bad_steps, what):
    """Make model.loss_and_grads return a NaN gradient entry ('grad') or an infinite loss ('loss') at the given
    1-based training steps (it is called once per step); everything else is the real computation."""
    real, calls = model.loss_and_grads, [0]

    def faulty(*a, **k):
        calls[0] += 1
        loss, count, grads, state = real(*a, **k)
        if calls[0] in bad_steps:
            if what == "grad":
                grads["decoder.weight"][0, 0] = np.nan
            else:
                loss = float("inf")
        return loss, count, grads, state
    monkeypatch.setattr(model, "loss_and_grads", faulty)


def metrics(run):
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("what", ["grad", "loss"])
def test_transient_non_finite_steps_are_skipped_and_logged(tmp_path, monkeypatch, what):
    inject(monkeypatch, {3, 4}, what)
    logged = []
    out = train(MCFG, tcfg(corpus(tmp_path)), tmp_path / "run", progress=False, log=logged.append)
    assert out["step"] == 12                                  # two bad steps, fewer than max_bad_steps in a row
    assert [r["step"] for r in metrics(tmp_path / "run") if r.get("skipped")] == [3, 4]
    assert any("step 3: non-finite loss or gradient; update skipped (1 in a row)" in m for m in logged)
    assert any("(2 in a row)" in m for m in logged)
    assert all_finite(tmp_path / "run") == 2


def test_k_bad_steps_in_a_row_stop_with_the_cause_and_the_last_checkpoint(tmp_path, monkeypatch):
    inject(monkeypatch, set(range(5, 100)), "grad")
    run = tmp_path / "run"
    with pytest.raises(UserError) as e:
        train(MCFG, tcfg(corpus(tmp_path)), run, progress=False, log=quiet)
    msg = str(e.value)
    assert "\n" not in msg and "3 non-finite steps in a row at step 7" in msg
    assert "learning rate" in msg and "--lr" in msg and f"Last good checkpoint: {run / 'latest.safetensors'}" in msg
    assert snapshot.load(run / "latest.safetensors").step == 4
    assert [r["step"] for r in metrics(run) if r.get("skipped")] == [5, 6, 7]
    assert all_finite(run) == 2


def test_overflowing_update_is_never_saved(tmp_path, monkeypatch):
    """A finite loss and gradient whose update still overflows the weights: the checkpoint is refused, the
    previous one stays, and the error names the learning rate."""
    from rnnlab.engines.numpy import optim
    real, calls = optim.update_, [0]

    def overflow(params, *a, **k):
        real(params, *a, **k)
        calls[0] += 1
        if calls[0] == 3:
            params["decoder.bias"][0] = np.inf
    monkeypatch.setattr(optim, "update_", overflow)
    run = tmp_path / "run"
    with pytest.raises(UserError, match=r"diverged: non-finite values in param\.decoder\.bias at step 3.*--lr"):
        train(MCFG, tcfg(corpus(tmp_path), eval_every=1), run, progress=False, log=quiet)
    assert snapshot.load(run / "latest.safetensors").step == 2
    assert all_finite(run) == 2


def test_snapshot_refuses_non_finite_tensors(tmp_path):
    from rnnlab.vocab import Vocab
    cfg = ModelConfig(cell="rnn", vocab_size=2, hidden_size=2)
    params = {k: np.zeros(s) for k, s in model.param_shapes(cfg).items()}
    params["decoder.bias"][1] = np.nan
    with pytest.raises(snapshot.NonFinite, match="param.decoder.bias"):
        snapshot.save(tmp_path / "x.safetensors", snapshot.Snapshot(cfg, TrainConfig(), Vocab("ab"), params))
    assert list(tmp_path.iterdir()) == []


def test_huge_learning_rate_through_the_cli(tmp_path):
    """A real divergence, no injection: SGD with lr 1e38 in float32 overflows within a step or two. One error
    line (no NumPy overflow warnings), exit 2, and only finite checkpoints."""
    run = tmp_path / "run"
    proc = rnnlab("train", "--data", corpus(tmp_path), "--out", run, "--cell", "rnn", "--hidden-size", 8,
                  "--batch-size", 2, "--seq-len", 8, "--optimizer", "sgd", "--lr", "1e38", "--clip-norm", 0,
                  "--eval-every", 1, "--max-bad-steps", 3, "--no-progress")
    line = assert_user_error(proc, "training diverged", "learning rate (1e+38)", "--lr")
    assert "Last good checkpoint: " in line
    all_finite(run)


# ---- the disk fails while saving ----------------------------------------------------------------------------

def _fail(err):
    def raiser(*a, **k):
        raise OSError(err, os.strerror(err))
    return raiser


def _fail_writes(err):
    def opener(path, mode="r", *a, **k):
        if "w" in mode:
            raise OSError(err, os.strerror(err))
        return open(path, mode, *a, **k)
    return opener


def _fail_rename(err):
    real = os.replace

    def rename(src, dst, *a, **k):
        if str(dst).endswith(".safetensors"):
            raise OSError(err, os.strerror(err))
        return real(src, dst, *a, **k)
    return rename


def _partial_then_full(f, header, arrays):
    f.write(header[:50])                        # part of the new file reaches the disk, then the disk is full
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("target, fault, shown", [
    ("rnnlab.checkpoint._write_file", _partial_then_full, "No space left on device"),
    ("rnnlab.checkpoint.open", _fail_writes(errno.EROFS), "Read-only file system"),
    ("rnnlab.checkpoint.os.fsync", _fail(errno.EDQUOT), "quota exceeded"),
    ("rnnlab.checkpoint.os.replace", _fail_rename(errno.EACCES), "Permission denied"),
], ids=["disk-full-mid-write", "read-only-folder", "quota-at-fsync", "rename-refused"])
def test_failing_disk_while_saving(tmp_path, monkeypatch, capsys, target, fault, shown):
    run = tmp_path / "run"
    train(MCFG, tcfg(corpus(tmp_path), max_steps=4), run, progress=False, log=quiet)
    before = tree_digest(run)
    monkeypatch.setattr(target, fault, raising=False)
    rc = cli.main(["train", "--resume", str(run), "--max-steps", "8", "--no-progress"])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot write checkpoint") and shown in lines[0], err
    assert "free disk space or choose a writable output folder" in lines[0]
    after = tree_digest(run)
    for name in ("latest.safetensors", "best.safetensors"):
        assert after[name] == before[name]          # the previous checkpoints, byte for byte
    assert not [n for n in after if ".tmp" in n]
    assert snapshot.load(run / "latest.safetensors").step == 4


def test_disk_full_while_logging_metrics(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    train(MCFG, tcfg(corpus(tmp_path), max_steps=4), run, progress=False, log=quiet)
    real_open = open

    def full_on_append(path, mode="r", *a, **k):
        if "a" in mode:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_open(path, mode, *a, **k)
    monkeypatch.setattr("rnnlab.run.open", full_on_append, raising=False)
    rc = cli.main(["train", "--resume", str(run), "--max-steps", "8", "--no-progress"])
    monkeypatch.undo()
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "metrics.jsonl" in err and "No space left" in err, err
    assert snapshot.load(run / "latest.safetensors").step == 6    # saved before the log line failed


def test_resume_after_a_metrics_line_cut_short(tmp_path):
    """A crash in the middle of appending to metrics.jsonl leaves half a line; resuming drops it."""
    run = tmp_path / "run"
    train(MCFG, tcfg(corpus(tmp_path), max_steps=4), run, progress=False, log=quiet)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "loss": 2.1, "bp')
    train(None, None, run, resume=True, overrides={"max_steps": 6}, progress=False, log=quiet)
    steps = [r["step"] for r in metrics(run)]
    assert steps == sorted(steps) and steps[-1] == 6 and 5 not in steps[:steps.index(4) + 1]
