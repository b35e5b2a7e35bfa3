"""Issue 12's cases, as a user meets them through the CLI: change course on --resume, a finite explosion stops the
run, a second text in the run's alphabet resumes and one with new characters fine-tunes, output a terminal can't
encode, validation never silently off, a prime from a file or stdin, --stop, a run resumed from another working
directory or after its text moved, `rnnlab eval` in flat memory, and the Python API."""
import json
import os

import numpy as np
import pytest

from helpers import assert_user_error, rnnlab, word_corpus
from rnnlab import snapshot

TINY = ["--cell", "gru", "--hidden-size", "16", "--batch-size", "4", "--seq-len", "16", "--no-progress"]


def metrics(run):
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]


def trained(tmp_path, steps=20, name="run", data=None):
    data = data or word_corpus(tmp_path)
    run = tmp_path / name
    proc = rnnlab("train", "--data", data, "--out", run, *TINY, "--max-steps", steps, "--eval-every", 10)
    assert proc.returncode == 0, proc.stderr
    return run, data


def test_a_diverged_run_resumes_with_a_lower_lr_and_the_change_is_logged(tmp_path):
    run, _ = trained(tmp_path)
    before = (run / "latest.safetensors").read_bytes()
    proc = rnnlab("train", "--resume", run, "--optimizer", "sgd", "--lr", "1e36", "--clip-norm", "0",
                  "--max-steps", "40")
    line = assert_user_error(proc, "training diverged", "lower --lr", str(run / "latest.safetensors"))
    assert "non-finite" in line or "--max-loss-ratio" in line
    assert (run / "latest.safetensors").read_bytes() == before        # the last good checkpoint is untouched
    proc = rnnlab("train", "--resume", run, "--lr", "0.001", "--schedule", "cosine", "--max-steps", "30")
    assert proc.returncode == 0, proc.stderr
    assert "changed on resume: lr 0.002 -> 0.001, schedule 'constant' -> 'cosine', max_steps 20 -> 30" \
        in proc.stdout, proc.stdout
    snap = snapshot.load(run / "latest.safetensors")
    assert snap.step == 30 and snap.tcfg.lr == 0.001
    assert snap.extra["history"] == [{"step": 20, "changed": {"lr": [0.002, 0.001],
                                                              "schedule": ["constant", "cosine"],
                                                              "max_steps": [20, 30]}}]
    assert {"step": 20, "changed": snap.extra["history"][0]["changed"]} in metrics(run)


def test_a_finite_explosion_stops_the_run(tmp_path):
    data = word_corpus(tmp_path)
    proc = rnnlab("train", "--data", data, "--out", tmp_path / "run", *TINY, "--cell", "rnn", "--optimizer", "sgd",
                  "--lr", "1e33", "--clip-norm", "0", "--max-steps", "60", "--eval-every", "5")
    assert_user_error(proc, "training diverged", "--max-loss-ratio 3", "lower --lr")
    assert "done" not in proc.stdout
    best = tmp_path / "run" / "best.safetensors"
    if best.exists():                                                 # saved before the loss took off, if at all
        assert snapshot.load(best).best_val < 3.0


def test_patience_stops_early(tmp_path):
    data = word_corpus(tmp_path)
    proc = rnnlab("train", "--data", data, "--out", tmp_path / "run", *TINY, "--optimizer", "sgd", "--lr", "1e-30",
                  "--max-steps", "500",
                  "--eval-every", "2", "--patience", "2")
    assert proc.returncode == 0, proc.stderr
    assert "stopped early" in proc.stdout and snapshot.load(tmp_path / "run" / "latest.safetensors").step < 500


def test_a_second_text_in_the_same_alphabet_resumes_and_new_characters_fine_tune(tmp_path):
    run, data = trained(tmp_path)
    shard = tmp_path / "shard.txt"
    shard.write_text("the cat sat on the mat.\n" * 200, encoding="utf-8")     # a subset of the run's characters
    proc = rnnlab("train", "--resume", run, "--data", shard, "--max-steps", "25")
    assert proc.returncode == 0 and "changed on resume: data" in proc.stdout, proc.stderr
    new = tmp_path / "new.txt"
    new.write_text("the zebra quietly sat on a mat!\n" * 300, encoding="utf-8")
    assert_user_error(rnnlab("train", "--resume", run, "--data", new), "never seen", "--init-from")
    proc = rnnlab("train", "--init-from", run, "--data", new, "--out", tmp_path / "ft", "--no-progress",
                  "--max-steps", "30", "--eval-every", "30", "--batch-size", "4", "--seq-len", "16")
    assert proc.returncode == 0, proc.stderr
    src, ft = snapshot.load(run / "latest.safetensors"), snapshot.load(tmp_path / "ft" / "latest.safetensors")
    assert set(src.vocab.symbols) < set(ft.vocab.symbols) and "z" in ft.vocab.symbols
    assert ft.extra["options"]["init_from"]["step"] == 25 and ft.mcfg.hidden_size == 16
    i, j = src.vocab.symbols.index("t"), ft.vocab.symbols.index("t")
    assert not np.array_equal(ft.params["decoder.weight"][j], src.params["decoder.weight"][i])   # it trained on
    assert_user_error(rnnlab("train", "--init-from", run, "--data", new, "--out", tmp_path / "x", "--hidden-size", 9),
                      "--hidden-size cannot be given with --init-from")


def test_fine_tuning_gets_further_than_training_from_scratch(tmp_path):
    run, _ = trained(tmp_path, steps=120)
    new = word_corpus(tmp_path / ".." / tmp_path.name, 1500, ("the ", "zebra ", "sat ", "on ", "a ", "mat! ", "dog\n"))
    flags = ["--data", new, "--max-steps", "30", "--eval-every", "30", "--batch-size", "4", "--seq-len", "16",
             "--no-progress"]
    assert rnnlab("train", "--init-from", run, "--out", tmp_path / "ft", *flags).returncode == 0
    assert rnnlab("train", "--cell", "gru", "--hidden-size", "16", "--out", tmp_path / "scratch", *flags).returncode == 0
    ft, scratch = (snapshot.load(tmp_path / n / "latest.safetensors").best_val for n in ("ft", "scratch"))
    assert ft < scratch, (ft, scratch)


def test_text_a_terminal_cannot_encode_goes_out_as_utf8(tmp_path):
    text = tmp_path / "zh.txt"
    text.write_text("春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。\n" * 200, encoding="utf-8")
    run, _ = trained(tmp_path, data=text)
    env = dict(os.environ, PYTHONIOENCODING="cp1252")
    import subprocess
    import sys
    from helpers import ROOT
    proc = subprocess.run([sys.executable, "-m", "rnnlab", "sample", str(run), "--length", "40", "--prime", "春"],
                          env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, timeout=120)
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr
    out = proc.stdout.decode("utf-8")                                  # a file or pipe gets UTF-8
    assert out.startswith("春") and len(out.strip()) == 41


def test_validation_is_never_silently_off(tmp_path):
    data = tmp_path / "short.txt"
    data.write_text(("abc def\n" * 300)[:2400], encoding="utf-8")
    proc = rnnlab("train", "--data", data, "--out", tmp_path / "run", *TINY, "--val-frac", "0.02",
                  "--max-steps", "4", "--eval-every", "2")
    assert proc.returncode == 0 and "val " in proc.stdout, proc.stdout    # 48 characters: one shorter window
    assert any("val_loss" in r for r in metrics(tmp_path / "run"))
    assert_user_error(rnnlab("train", "--data", data, "--out", tmp_path / "r2", *TINY, "--val-frac", "0.0001"),
                      "--val-frac", "validation character")
    proc = rnnlab("train", "--data", data, "--out", tmp_path / "r3", *TINY, "--val-frac", "0", "--max-steps", "2")
    assert proc.returncode == 0 and "no validation" in proc.stdout


def test_prime_from_a_file_or_stdin_and_stop(tmp_path):
    run, _ = trained(tmp_path)
    prime = tmp_path / "prime.txt"
    prime.write_text("the cat " * 22_500, encoding="utf-8")              # 180,000 characters
    proc = rnnlab("sample", run, "--prime-file", prime, "--length", "5", "--argmax", timeout=600)
    assert proc.returncode == 0 and proc.stdout.startswith("the cat the") and len(proc.stdout) == 180_006
    proc = rnnlab("sample", run, "--prime-file", "-", "--length", "5", "--argmax", input="the dog ")
    assert proc.returncode == 0 and proc.stdout.startswith("the dog ")
    assert_user_error(rnnlab("sample", run, "--prime", "a", "--prime-file", prime), "not both")
    full = rnnlab("sample", run, "--length", "300", "--seed", "3").stdout
    cut = rnnlab("sample", run, "--length", "300", "--seed", "3", "--stop", "\n").stdout
    assert cut == full[1:].split("\n")[0] + "\n" or cut == full[:full.index("\n", 1)] + "\n"


def test_a_run_resumes_from_another_directory_and_after_its_text_moved(tmp_path):
    (tmp_path / "work").mkdir()
    word_corpus(tmp_path / "work")
    proc = rnnlab("train", "--data", "corpus.txt", "--out", "run", *TINY, "--max-steps", "10", "--eval-every", "5",
                  cwd=tmp_path / "work")
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "work" / "run"
    assert rnnlab("train", "--resume", run, "--max-steps", "15").returncode == 0     # from tmp_path's parent cwd
    (tmp_path / "work" / "corpus.txt").rename(tmp_path / "elsewhere.txt")
    proc = rnnlab("train", "--resume", run, "--max-steps", "20")
    assert proc.returncode == 0 and "is gone" in proc.stdout, proc.stderr             # its data.ids carries on
    (run / "data.ids").unlink()
    assert_user_error(rnnlab("train", "--resume", run, "--max-steps", "25"), "is not there any more", "--data")


def test_python_api(tmp_path):
    import rnnlab as api
    data = word_corpus(tmp_path)
    summary = api.train(data=data, out=tmp_path / "run", cell="gru", hidden_size=16, batch_size=4, seq_len=16,
                        max_steps=20, eval_every=10)
    assert summary["step"] == 20 and summary["best_val"] < 3.0
    m = api.load(tmp_path / "run", engine="numpy")
    assert m.generate(prime="the ", length=10, seed=1) == m.generate(prime="the ", length=10, seed=1)
    assert len(m.generate(length=50, seed=2, stop="\n")) <= 50
    ev = m.evaluate("the cat sat on the mat.\n")
    assert ev["chars"] == 23 and 0 < ev["nats_per_char"] < 4
    cli = rnnlab("eval", tmp_path / "run", "--data", data).stdout
    assert f"{api.load(tmp_path / 'run').evaluate(data.read_text())['nats_per_char']:.4f}" in cli
    more = api.train(out=tmp_path / "run", resume=True, max_steps=30, lr=1e-3)
    assert more["step"] == 30
    with pytest.raises(Exception, match="unknown settings"):
        api.train(data=data, out=tmp_path / "x", hiden_size=3)


def test_valid_extremes_of_sampling_flags(tmp_path):
    """The smallest positive temperature is the argmax (logits / T overflow: its limit), not noise."""
    run, _ = trained(tmp_path)
    greedy = rnnlab("sample", run, "--length", "30", "--argmax").stdout
    for t in ("5e-324", "1e-300"):
        assert rnnlab("sample", run, "--length", "30", "--temperature", t, "--seed", "1").stdout == greedy
    assert rnnlab("sample", run, "--length", "30", "--top-p", "1e-300", "--seed", "1").stdout == greedy



def test_a_change_with_nothing_to_run_is_kept_and_a_moved_text_is_not_confused(tmp_path):
    """A resume whose budget is spent still keeps its change of course (it is saved, not only logged); after that,
    a resume from the run's data.ids reads the text the run was last given, and says so."""
    run, data = trained(tmp_path, steps=10)
    shard = tmp_path / "shard.txt"
    shard.write_text("the cat sat on the mat.\n" * 200, encoding="utf-8")
    proc = rnnlab("train", "--resume", run, "--data", shard, "--lr", "0.001")
    assert proc.returncode == 0 and "nothing to do" in proc.stdout, proc.stderr
    snap = snapshot.load(run / "latest.safetensors")
    assert snap.tcfg.lr == 0.001 and snap.tcfg.data == str(shard) and snap.extra["history"][-1]["step"] == 10
    shard.unlink()
    proc = rnnlab("train", "--resume", run, "--max-steps", "12")
    assert proc.returncode == 0 and f"{shard} is gone" in proc.stdout, proc.stdout
    proc = rnnlab("train", "--resume", run, "--max-steps", "14", "--batch-size", "512", "--seq-len", "64")
    assert_user_error(proc, "too short for one batch")              # the real reason, not "moved"


def test_more_edges_from_a_new_users_try(tmp_path):
    import rnnlab as api
    data = word_corpus(tmp_path)
    assert_user_error(rnnlab("train", "--data", data, "--out", tmp_path / "e", *TINY, "--eps", "1e-300"),
                      "--eps", "float64")
    with pytest.raises(Exception, match="unknown preset"):
        api.train(data=data, out=tmp_path / "p", preset="bogus")
    run, _ = trained(tmp_path)
    with pytest.raises(Exception, match="give one"):
        api.train(out=run, resume=True, init_from=run)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café".encode("latin-1"))
    line = assert_user_error(rnnlab("sample", run, "--prime-file", latin), "--prime-file", "UTF-8")
    assert "--data" not in line and "--encoding" not in line
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert rnnlab("sample", run, "--prime-file", empty, "--length", "3").returncode == 0
    m = api.load(run, engine="numpy")
    with pytest.raises(Exception, match="the text") as e:
        m.evaluate("")
    assert "/tmp" not in str(e.value)
    with pytest.raises(TypeError):
        m.evaluate(None)
    with pytest.raises(Exception, match="temperature"):
        m.generate(temperature=float("nan"))
    accents = tmp_path / "accents.txt"
    accents.write_text("the café sat on the mat\n", encoding="utf-8")
    assert_user_error(rnnlab("eval", run, "--data", accents), "accents.txt", "--unknown skip")
