"""One run per folder (rnnlab.run.RunDir): a second start on a folder a run holds is refused in one line and
touches nothing; a start that fails leaves nothing behind; a new run never appends to a stale metrics.jsonl."""
import json
import os
import subprocess
import sys
import time

import pytest

from helpers import ROOT, assert_user_error, rnnlab, tree_digest, word_corpus
from rnnlab import snapshot
from rnnlab.errors import UserError
from rnnlab.run import LOCK, RunDir

TRAIN = ("--engine", "numpy", "--cell", "gru", "--hidden-size", 8, "--batch-size", 4, "--seq-len", 8,
         "--eval-every", 2, "--log-every", 1, "--max-steps", 6, "--no-progress")
CLASSIFY = ("--cell", "gru", "--hidden-size", 8, "--batch-size", 8, "--eval-every", 2, "--log-every", 1,
            "--max-steps", 6, "--no-progress")
# The real CLI, held at its first metrics write (a checkpoint and a metrics line are on disk) until the file
# $GATE exists: a run that is surely still running while the test starts a second one.
GATED = """
import os, sys, time
from rnnlab.run import RunDir
real = RunDir.append
def gated(self, rows):
    real(self, rows)
    while rows and not os.path.exists(os.environ["GATE"]):
        time.sleep(0.02)
RunDir.append = gated
from rnnlab.cli import main
sys.exit(main(sys.argv[1:]))
"""


def rows(run):
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]


def held_run(tmp_path, run, *args):
    """Start `rnnlab ARGS` gated; returns (process, gate) once its first checkpoint and metrics line are written."""
    gate = tmp_path / "gate"
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", OPENBLAS_NUM_THREADS="1", GATE=str(gate))
    p = subprocess.Popen([sys.executable, "-c", GATED, *map(str, args)], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 120
    while not ((run / "metrics.jsonl").exists() and (run / "metrics.jsonl").read_text().endswith("\n")):
        assert p.poll() is None, p.communicate()
        assert time.monotonic() < end, "timed out waiting for the first run's first checkpoint"
        time.sleep(0.02)
    assert (run / "latest.safetensors").exists() and (run / LOCK).exists()
    return p, gate


def refused(proc, run):
    assert_user_error(proc, str(run), "is in use", "another rnnlab run", "holds it")


def test_two_trains_on_one_folder(tmp_path):
    """The second `rnnlab train` (fresh, another text) and a `--resume` while the first runs: each refused at once,
    in one line; not a byte of the first run changes, and the first finishes with its own files only."""
    data, run = word_corpus(tmp_path), tmp_path / "run"
    other = tmp_path / "other.txt"
    other.write_text("zyxw vut\n" * 300, encoding="utf-8")
    first, gate = held_run(tmp_path, run, "train", "--data", data, "--out", run, *TRAIN)
    before = tree_digest(run)
    refused(rnnlab("train", "--data", other, "--out", run, *TRAIN), run)
    refused(rnnlab("train", "--resume", run, "--max-steps", 9, "--no-progress"), run)
    assert tree_digest(run) == before                # no data.ids rewrite, no metrics line, no truncation
    gate.touch()
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0 and "done: step 6" in out, err
    assert snapshot.load(run / "latest.safetensors").step == 6
    snapshot.load(run / "best.safetensors")
    steps = [r["step"] for r in rows(run) if "loss" in r]
    assert steps == [1, 2, 3, 4, 5, 6]               # one run's lines, each once, in order
    assert [r["step"] for r in rows(run) if "wall" in r] == [2, 4, 6]
    assert (run / "data.ids").stat().st_size == len(data.read_text(encoding="utf-8"))   # its own text (uint8 ids)
    assert sorted(p.name for p in run.iterdir()) == ["best.safetensors", "data.ids", "latest.safetensors",
                                                    "metrics.jsonl"]      # the lock went with the run
    again = rnnlab("train", "--resume", run, "--max-steps", 8, "--no-progress")   # free again
    assert again.returncode == 0 and "resuming at step 6," in again.stdout, again.stderr


def test_two_classifiers_on_one_folder(tmp_path):
    table, run = tmp_path / "parity.tsv", tmp_path / "run"
    assert rnnlab("synth", "parity", "--out", table, "--n", 200).returncode == 0
    first, gate = held_run(tmp_path, run, "classify", "--data", table, "--out", run, *CLASSIFY)
    before = tree_digest(run)
    refused(rnnlab("classify", "--data", table, "--out", run, *CLASSIFY), run)
    refused(rnnlab("classify", "--resume", run, "--max-steps", 9, "--no-progress"), run)
    refused(rnnlab("train", "--data", table, "--out", run, *TRAIN), run)          # whatever the command
    assert tree_digest(run) == before
    gate.touch()
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0 and "done: step 6" in out, err
    assert [r["step"] for r in rows(run) if "loss" in r] == [1, 2, 3, 4, 5, 6]
    assert sorted(p.name for p in run.iterdir()) == ["best.safetensors", "latest.safetensors", "metrics.jsonl"]


def test_failed_starts_leave_nothing_behind(tmp_path):
    """Text too short (after data.ids is written), a diverged run before its first checkpoint, and a classify table
    with one label: a new folder (and the parent it made) is gone again; in a folder that was there, the files
    that were there stay byte for byte and nothing is added."""
    short = tmp_path / "short.txt"
    short.write_text("abc", encoding="utf-8")
    new = tmp_path / "new" / "run"
    assert_user_error(rnnlab("train", "--data", short, "--out", new, *TRAIN), "too short")
    assert not (tmp_path / "new").exists()

    old = tmp_path / "old"
    old.mkdir()
    (old / "notes.txt").write_text("mine\n")
    (old / "metrics.jsonl").write_text('{"step": 1, "loss": 9.5}\n')      # a stale log, no checkpoint
    before = tree_digest(old)
    assert_user_error(rnnlab("train", "--data", short, "--out", old, *TRAIN), "too short")
    diverge = ("--optimizer", "sgd", "--lr", "1e38", "--clip-norm", 0, "--dtype", "float32", "--eval-every", 100,
               "--max-steps", 50, "--max-bad-steps", 2)
    for out in (new, old):
        proc = rnnlab("train", "--data", word_corpus(tmp_path), "--out", out, *TRAIN, *diverge)
        assert_user_error(proc, "diverged", "Last good checkpoint: none yet")
    assert not (tmp_path / "new").exists()
    assert tree_digest(old) == before and sorted(p.name for p in old.iterdir()) == ["metrics.jsonl", "notes.txt"]

    one = tmp_path / "one.tsv"
    one.write_text("text\tlabel\n1\todd\n111\todd\n")
    assert_user_error(rnnlab("classify", "--data", one, "--out", new, *CLASSIFY), "only one label")
    assert not (tmp_path / "new").exists()


def test_no_gpu_start_leaves_nothing_behind(tmp_path):
    """--device cuda on a machine without one fails after the text is encoded: no data.ids, no folder left."""
    pytest.importorskip("torch")
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    new = tmp_path / "new"
    proc = rnnlab("train", "--data", word_corpus(tmp_path), "--out", new, *TRAIN[2:], "--engine", "torch",
                  "--device", "cuda")
    assert_user_error(proc, "cuda")
    assert not new.exists()


def test_a_new_run_starts_a_new_log(tmp_path):
    """A folder with a stale metrics.jsonl (a run that died before its first checkpoint) but no checkpoint: a new
    run there writes its own log, not after the stale rows; the same for the task loop."""
    stale = '{"step": 1, "loss": 9.5, "stale": true}\n{"step": 2, "lo'
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(stale)
    proc = rnnlab("train", "--data", word_corpus(tmp_path), "--out", run, *TRAIN)
    assert proc.returncode == 0, proc.stderr
    assert [r["step"] for r in rows(run) if "loss" in r] == [1, 2, 3, 4, 5, 6] and "stale" not in str(rows(run))

    table, task = tmp_path / "parity.tsv", tmp_path / "task"
    assert rnnlab("synth", "parity", "--out", table, "--n", 100).returncode == 0
    task.mkdir()
    (task / "metrics.jsonl").write_text(stale)
    proc = rnnlab("classify", "--data", table, "--out", task, *CLASSIFY)
    assert proc.returncode == 0, proc.stderr
    assert [r["step"] for r in rows(task) if "loss" in r] == [1, 2, 3, 4, 5, 6] and "stale" not in str(rows(task))


def test_rundir_in_process(tmp_path):
    """The object itself: the lock holds within one process too; a fresh start that fails before a checkpoint, or
    writes nothing, removes the folders it made, one that saved keeps them; rank != 0 writes nothing."""
    path = tmp_path / "a" / "b"
    with pytest.raises(RuntimeError):
        with RunDir(path, resume=False) as rd:
            assert (path / LOCK).read_text() == f"{os.getpid()}\n"
            with pytest.raises(UserError, match=r"is in use: another rnnlab run \(process \d+\) holds it"):
                RunDir(path, resume=False)
            rd.append([{"step": 1}])
            rd.scratch("data.ids").write_bytes(b"x")
            raise RuntimeError("the start fails")
    assert not (tmp_path / "a").exists()
    RunDir(path, resume=False).close()             # opened and closed, nothing written: no trace
    assert not (tmp_path / "a").exists()
    with RunDir(path, resume=False) as rd:
        rd.save(lambda p: p.write_bytes(b"ckpt"), improved=True)
        rd.append([{"step": 1}])
        rd.append([{"step": 2}])
    assert sorted(p.name for p in path.iterdir()) == ["best.safetensors", "latest.safetensors", "metrics.jsonl"]
    with pytest.raises(UserError, match="already holds a run; continue it with --resume"):
        RunDir(path, resume=False)
    with pytest.raises(UserError, match="nothing to resume in"):
        RunDir(tmp_path / "none", resume=True)
    assert not (tmp_path / "none").exists() and not (path / LOCK).exists()
    (path / ".latest.safetensors.tmp-123").write_bytes(b"half")
    (path / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n{"step": 4, "lo')
    with RunDir(path, resume=True) as rd:
        rd.truncate_metrics(2)
        assert rd.saved_seconds({"train_seconds": 1.5}) == 1.5
    assert rows(path) == [{"step": 1}, {"step": 2}] and not list(path.glob(".*tmp*"))
    other = RunDir(tmp_path / "rank1", resume=False, main=False)
    other.append([{"step": 1}])
    other.save(lambda p: p.write_bytes(b"ckpt"), improved=True)
    assert other.scratch("data.ids").parent != other.path
    other.close()
    assert not (tmp_path / "rank1").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]
