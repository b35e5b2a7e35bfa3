"""Bad input from a person: one line `error: ...`, exit code 2, no traceback, and nothing already saved is touched."""
import pickle

import pytest

from helpers import assert_user_error, rnnlab, tree_digest

TRAIN = ("--cell", "rnn", "--hidden-size", 8, "--batch-size", 2, "--seq-len", 8, "--max-steps", 4,
         "--eval-every", 2, "--no-progress")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished run whose files must survive every bad command below."""
    tmp = tmp_path_factory.mktemp("run")
    data = tmp / "good.txt"
    data.write_text("hello world, hello rnn.\n" * 40, encoding="utf-8")
    run = tmp / "run"
    proc = rnnlab("train", "--data", data, "--out", run, *TRAIN)
    assert proc.returncode == 0, proc.stderr
    return run


def _bad_files(tmp):
    (tmp / "empty.txt").write_bytes(b"")
    (tmp / "short.txt").write_text("abc", encoding="utf-8")
    (tmp / "cp1252.txt").write_bytes(b"it\x92s a smart quote, " * 20)
    (tmp / "adir").mkdir()
    return tmp


@pytest.mark.parametrize("name, needles", [
    ("missing.txt", ["missing.txt", "does not exist"]),
    ("empty.txt", ["empty"]),
    ("short.txt", ["too short", "--batch-size"]),
    ("cp1252.txt", ["byte 2", "--encoding bytes"]),
    ("adir", ["directory"]),
])
def test_bad_training_text(tmp_path, run_dir, name, needles):
    before = tree_digest(run_dir)
    _bad_files(tmp_path)
    # a fresh --out: the error must not leave a half-made run directory behind
    proc = rnnlab("train", "--data", tmp_path / name, "--out", tmp_path / "new", *TRAIN)
    assert_user_error(proc, *needles)
    assert not (tmp_path / "new").exists()
    # an existing run as --out: refused, files untouched
    proc = rnnlab("train", "--data", tmp_path / name, "--out", run_dir, *TRAIN)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert tree_digest(run_dir) == before


def test_existing_run_is_never_overwritten(run_dir, tmp_path):
    before = tree_digest(run_dir)
    data = tmp_path / "d.txt"
    data.write_text("some other text to train on\n" * 50, encoding="utf-8")
    assert_user_error(rnnlab("train", "--data", data, "--out", run_dir, *TRAIN), "--resume")
    assert tree_digest(run_dir) == before


def test_truncated_and_pickle_checkpoints(tmp_path, run_dir):
    good = (run_dir / "latest.safetensors").read_bytes()
    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes(good[: len(good) // 2])
    assert_user_error(rnnlab("sample", trunc, "--length", 5), "trunc.safetensors")

    canary = tmp_path / "CANARY"

    class Evil:
        def __reduce__(self):
            return (open, (str(canary), "w"))
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps(Evil()))
    for cmd in (("sample", evil), ("eval", evil, "--data", tmp_path / "x.txt")):
        assert_user_error(rnnlab(*cmd), "evil.safetensors")
    assert not canary.exists()


@pytest.mark.parametrize("args, needle", [
    (("train", "--max-steps", "-3"), "--max-steps"),
    (("train", "--lr", "abc"), "'abc'"),
    (("train", "--dropout", "1.5"), "--dropout"),
    (("train", "--cell", "transformer"), "transformer"),
    (("train", "--val-frac", "1"), "--val-frac"),
    (("sample",), "RUN_OR_CHECKPOINT"),
    (("frobnicate",), "frobnicate"),
    (("train", "--preset", "shakespeare", "--max-time", "0"), "(--preset shakespeare sets --schedule-by time"),
    (("train", "--adapt-threads", "sometimes"), "--adapt-threads"),
    (("train", "--adapt-threads", "--threads", "2"), "needs --threads 0"),
    (("train", "--preset", "shakespeare-quick", "--max-time", "-1"), "--max-time must be >= 0"),
])
def test_nonsense_flags(args, needle):
    assert_user_error(rnnlab(*args), needle)


def test_training_whose_output_pipe_closes_is_an_error_not_a_success(tmp_path):
    """`rnnlab train ... | head -1`: the reader exits, the next line fails; that must not end as exit 0."""
    import os
    import subprocess
    import sys
    from helpers import ROOT
    data = tmp_path / "t.txt"
    data.write_text("hello world, hello rnn.\n" * 40, encoding="utf-8")
    argv = ["train", "--data", data, "--out", tmp_path / "run", "--cell", "rnn", "--hidden-size", 8, "--batch-size", 2,
            "--seq-len", 8, "--max-steps", 200, "--eval-every", 1, "--log-every", 1, "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-m", "rnnlab", *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1"))
    proc.stdout.readline()                       # the first line, then the reader goes away
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait() == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "output pipe closed" in lines[0] and "--resume" in lines[0], err


def test_sample_bad_prime_and_numbers(run_dir):
    line = assert_user_error(rnnlab("sample", run_dir, "--prime", "hello Zq"), "'Z'", "'q'")
    assert "--unknown skip" in line
    ok = rnnlab("sample", run_dir, "--prime", "hello Zq", "--unknown", "skip", "--length", 5)
    assert ok.returncode == 0 and ok.stdout.startswith("hello ")
    assert_user_error(rnnlab("sample", run_dir, "--length", "-1"), "--length")
    assert_user_error(rnnlab("sample", run_dir, "--temperature", "-1"), "--temperature")
    assert rnnlab("sample", run_dir, "--length", "0", "--prime", "he").stdout == "he\n"


def test_resume_errors(tmp_path, run_dir):
    assert_user_error(rnnlab("train", "--resume", tmp_path / "nothing"), "nothing to resume")
    assert_user_error(rnnlab("train", "--resume", run_dir, "--hidden-size", 99), "--hidden-size")


def test_resume_with_a_missing_data_file_is_refused_and_changes_nothing(tmp_path, run_dir):
    """A new --data on --resume must exist (a typo would otherwise be saved as the run's text, train on the old
    data.ids and lose the real path): one line, exit 2, every file of the run unchanged; every resumable command."""
    before = tree_digest(run_dir)
    assert_user_error(rnnlab("train", "--resume", run_dir, "--data", tmp_path / "typo.txt"), "--data", "typo.txt")
    assert tree_digest(run_dir) == before
    for cmd in (("classify",), ("seq2seq", "train")):                         # (conditional: train --resume)
        assert_user_error(rnnlab(*cmd, "--resume", run_dir, "--data", tmp_path / "typo.tsv"), "--data", "typo.tsv")
    assert tree_digest(run_dir) == before
