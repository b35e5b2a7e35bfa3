"""The task commands as a user runs them: synth -> classify -> predict, seq2seq train -> predict, conditional train
-> sample, the play converter; and every bad input is one line `error: ...` with exit code 2."""
import numpy as np
import pytest

from helpers import SHAKESPEARE, one_blas_thread, rnnlab, tree_digest
from rnnlab.cli import main

@pytest.fixture(autouse=True)
def _one_blas_thread():
    with one_blas_thread():
        yield


TINY = ["--hidden-size", "8", "--max-steps", "6", "--eval-every", "3", "--no-progress"]


def run(capsys, *argv):
    """rnnlab in this process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def user_error(capsys, *argv):
    """Exit 2, exactly one line on stderr starting with 'error: ', no traceback; returns that line."""
    code, out, err = run(capsys, *argv)
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("step ")]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, out, err)
    return lines[0]


def test_classify_then_predict_end_to_end(tmp_path):
    """Through the real entry point (a subprocess): the commands a README reader types."""
    data, out = tmp_path / "parity.tsv", tmp_path / "run"
    p = rnnlab("synth", "parity", "--out", data, "--n", "300")
    assert p.returncode == 0 and "wrote 300 rows" in p.stdout, p.stderr
    p = rnnlab("classify", "--data", data, "--out", out, *TINY)
    assert p.returncode == 0, p.stderr
    assert "accuracy" in p.stdout and "confusion" in p.stdout and "precision" in p.stdout
    p = rnnlab("predict", out, "--text", "1011", "--text", "")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 4 and lines[0].split("\t")[0] in ("even", "odd")
    probs = [float(v) for v in lines[1].split()[1::2]]
    assert sorted(lines[1].split()[0::2]) == ["even", "odd"] and sum(probs) == pytest.approx(1, abs=2e-4)
    p = rnnlab("predict", out, "--data", data)
    assert p.returncode == 0 and len(p.stdout.splitlines()) == 300 and "accuracy" in p.stderr, p.stderr


def test_seq2seq_train_predict_and_resume(tmp_path, capsys):
    data, out = tmp_path / "rev.tsv", tmp_path / "run"
    assert run(capsys, "synth", "reverse", "--out", data, "--n", "200")[0] == 0
    code, stdout, _ = run(capsys, "seq2seq", "train", "--data", data, "--out", out, *TINY)
    assert code == 0 and "exact match" in stdout
    code, stdout, _ = run(capsys, "seq2seq", "predict", out, "--text", "abc", "--beam", "3", "--max-len", "5")
    assert code == 0 and len(stdout.splitlines()) == 1 and len(stdout.strip()) <= 5
    code, stdout, err = run(capsys, "seq2seq", "predict", out, "--data", data)
    assert code == 0 and len(stdout.splitlines()) == 200 and "character error rate" in err
    code, stdout, _ = run(capsys, "seq2seq", "train", "--resume", out, "--max-steps", "9")
    assert code == 0 and "done: step 9" in stdout


def test_conditional_train_and_sample(tmp_path, capsys):
    data, out = tmp_path / "styles.tsv", tmp_path / "run"
    assert run(capsys, "synth", "styles", "--out", data, "--n", "200")[0] == 0
    code, stdout, _ = run(capsys, "train", "--data", data, "--condition-column", "label", "--out", out, "--cell",
                          "gru", *TINY)
    assert code == 0, stdout
    code, stdout, _ = run(capsys, "sample", out, "--condition", "y", "--length", "40", "--num-samples", "2")
    assert code == 0 and stdout.count("--- sample") == 2
    assert "--condition" in user_error(capsys, "sample", out)                      # which label? it says how
    assert "unknown condition 'z'" in user_error(capsys, "sample", out, "--condition", "z")
    assert "conditional checkpoint" in user_error(capsys, "eval", out, "--data", data)
    code, stdout, _ = run(capsys, "train", "--resume", out, "--max-steps", "8", "--no-progress")
    assert code == 0 and "sample with" in stdout


@pytest.mark.skipif(not SHAKESPEARE.exists(), reason="../shared/data/tinyshakespeare.txt is not present")
def test_speakers_converter(tmp_path, capsys):
    out = tmp_path / "speakers.tsv"
    code, stdout, _ = run(capsys, "speakers", SHAKESPEARE, "--out", out, "--top", "2")
    assert code == 0 and "GLOUCESTER 902" in stdout
    rows = [ln.split("\t") for ln in out.read_text(encoding="utf-8").splitlines()]
    assert rows[0] == ["speaker", "line"] and all(len(r) == 2 for r in rows)
    assert {r[0] for r in rows[1:]} == {"GLOUCESTER", "DUKE VINCENTIO"} and len(rows) == 1 + 902 + 822
    assert rows[1] == ["GLOUCESTER", "Now is the winter of our discontent"]


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    good = tmp_path / "p.tsv"
    run(capsys, "synth", "parity", "--out", good, "--n", "100")
    cls = ["classify", "--out", tmp_path / "r", *TINY, "--data"]
    assert "no column 'nope'" in user_error(capsys, *cls, good, "--label-column", "nope")
    (tmp_path / "empty.tsv").write_text("")
    assert "is empty" in user_error(capsys, *cls, tmp_path / "empty.tsv")
    (tmp_path / "head.tsv").write_text("text\tlabel\n")
    assert "no data rows" in user_error(capsys, *cls, tmp_path / "head.tsv")
    (tmp_path / "short.tsv").write_text("text\tlabel\n101\todd\n11\n")
    assert "data row 3 has 1 field" in user_error(capsys, *cls, tmp_path / "short.tsv")
    (tmp_path / "one.csv").write_text("text,label\n1,odd\n111,odd\n")
    assert "only one label" in user_error(capsys, *cls, tmp_path / "one.csv")
    assert "--data FILE is required" in user_error(capsys, "classify", "--out", tmp_path / "r2")
    assert "already exists" in user_error(capsys, "synth", "parity", "--out", good)
    assert "--n must be >= 1" in user_error(capsys, "synth", "reverse", "--out", tmp_path / "x.tsv", "--n", "0")
    # a run: not overwritten by a second classify, refused by the other tasks' commands
    run_dir = tmp_path / "run"
    assert run(capsys, *cls[:2], run_dir, *cls[3:], good)[0] == 0
    before = tree_digest(run_dir)
    assert "already holds a run" in user_error(capsys, "classify", "--data", good, "--out", run_dir, *TINY)
    assert "is a classify checkpoint" in user_error(capsys, "seq2seq", "predict", run_dir, "--text", "1")
    assert "is a classify checkpoint" in user_error(capsys, "sample", run_dir)
    assert "not in the vocabulary" in user_error(capsys, "predict", run_dir, "--text", "10x1")
    assert "--text TEXT" in user_error(capsys, "predict", run_dir)
    assert "cannot change when resuming" in user_error(capsys, "classify", "--resume", run_dir, "--hidden-size", "9")
    assert "cannot be given with --resume" in user_error(capsys, "classify", "--resume", run_dir, "--out", run_dir)
    assert tree_digest(run_dir) == before
    # a character model is refused by the task commands, with the right command named
    lm = _lm_run(tmp_path, capsys)
    assert "is a character-model checkpoint" in user_error(capsys, "predict", lm, "--text", "a")
    assert "drop --condition" in user_error(capsys, "sample", lm, "--condition", "x")


def _lm_run(tmp_path, capsys):
    text = tmp_path / "lm.txt"
    text.write_text("".join(np.random.default_rng(0).choice(list("ab \n"), 3000)))
    out = tmp_path / "lm"
    assert run(capsys, "train", "--data", text, "--out", out, "--batch-size", "4", "--seq-len", "8",
               "--hidden-size", "4", "--max-steps", "2", "--no-progress")[0] == 0
    return out
