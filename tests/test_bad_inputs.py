"""Bad input, table-driven: every fixture of the README's "What happens when..." table gets its documented outcome
and no fixture ever produces a traceback.

Fixtures already proven elsewhere are not repeated here:
  0-byte file, file shorter than one batch, cp1252 text (error), missing file, folder  test_cli_errors.py::test_bad_training_text
  prime with unseen characters, --length 0, negative --length/--temperature            test_cli_errors.py::test_sample_bad_prime_and_numbers
  resuming on a text with a different vocabulary (the difference is shown)             test_train.py::test_resume_refuses_a_different_vocabulary
  UTF-16/32 byte-order marks, NUL, invalid UTF-8 at the byte level                     test_text.py
Here: the same faults through the CLI where only the library level was tested, the fixes the errors suggest
(--encoding bytes), CRLF, a 1-byte file, command-line bytes that are not UTF-8, and every numeric flag of train,
sample and hello given nonsense (negative, zero, nan, inf, 1e999, huge, not a number, empty).
"""
import dataclasses
import os
import subprocess
import sys

import pytest

from helpers import ROOT, assert_user_error, rnnlab
from rnnlab import cli, snapshot
from rnnlab.config import ModelConfig, TrainConfig
from rnnlab.lm import train

TINY = ("--cell", "rnn", "--hidden-size", 8, "--batch-size", 2, "--seq-len", 8, "--max-steps", 2, "--eval-every", 2,
        "--no-progress")
LINE = "it's a test line, with some words.\n"

# name -> (file bytes, extra train flags, expected: "ok" or the needles of the one-line error)
TRAIN_CASES = {
    "cp1252 0x92 with --encoding bytes (the suggested fix)": (LINE.replace("'", "\x92").encode("latin-1") * 20,
                                                             ("--encoding", "bytes"), "ok"),
    "latin-1 text": ("café crème brûlée\n".encode("latin-1") * 20, (),
                     ["invalid UTF-8 at byte 3 (0xE9)", "--encoding bytes"]),
    "UTF-16 with BOM": (LINE.encode("utf-16") * 20, (), ["UTF-16 text", "iconv -f UTF-16 -t UTF-8", "--encoding bytes"]),
    "UTF-16 with BOM, --encoding bytes": (LINE.encode("utf-16") * 20, ("--encoding", "bytes"), "ok"),
    "invalid continuation byte": (LINE.encode() * 5 + b"na\xc3(ve\n" + LINE.encode() * 5, (),
                                  [f"invalid UTF-8 at byte {len(LINE) * 5 + 2} (0xC3)", "--encoding bytes"]),
    "NUL bytes": (LINE.encode() * 10 + b"\x00\x00" + LINE.encode(), (),
                  [f"NUL byte at byte {len(LINE) * 10}", "binary", "--encoding bytes"]),
    "NUL bytes, --encoding bytes": (LINE.encode() * 10 + b"\x00\x00" + LINE.encode() * 10, ("--encoding", "bytes"), "ok"),
    "CRLF line ends (kept as they are)": (LINE.replace("\n", "\r\n").encode() * 20, (), "ok"),
    "UTF-8 BOM (dropped)": (b"\xef\xbb\xbf" + LINE.encode() * 20, (), "ok"),
    "1-byte file": (b"x", (), ["too short for one batch", "need 17 characters", "--batch-size"]),
}


@pytest.mark.parametrize("name", list(TRAIN_CASES))
def test_train_on_bad_text(tmp_path, name):
    raw, flags, expected = TRAIN_CASES[name]
    data, run = tmp_path / "data.txt", tmp_path / "run"
    data.write_bytes(raw)
    proc = rnnlab("train", "--data", data, "--out", run, *TINY, *flags)
    assert "Traceback" not in proc.stdout + proc.stderr
    if expected == "ok":
        assert proc.returncode == 0, proc.stderr
        snap = snapshot.load(run / "latest.safetensors")
        if "CRLF" in name:
            assert "\r" in snap.vocab.symbols and "\n" in snap.vocab.symbols
        if "BOM (dropped)" in name:
            assert "\ufeff" not in snap.vocab.symbols
    else:
        assert_user_error(proc, *expected)
        assert not run.exists()          # a failed start leaves no run directory behind


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny trained runs: characters (utf-8) and raw bytes of a text holding the byte 0x92."""
    tmp = tmp_path_factory.mktemp("runs")
    out = {}
    for enc, raw in (("utf-8", LINE.encode() * 20), ("bytes", LINE.replace("'", "\x92").encode("latin-1") * 20)):
        (tmp / f"{enc}.txt").write_bytes(raw)
        tcfg = TrainConfig(data=str(tmp / f"{enc}.txt"), encoding=enc, batch_size=2, seq_len=8, max_steps=2,
                           eval_every=2)
        train(ModelConfig(cell="rnn", hidden_size=8), tcfg, tmp / enc, progress=False, log=lambda *a: None)
        out[enc] = tmp / enc
    return out


def test_prime_bytes_that_are_not_utf8(runs):
    """A command-line argument is bytes; ones that are not UTF-8 reach Python as escaped characters (U+DC92 for
    0x92). A character model names the character and stops; a byte model takes the byte itself."""
    def sample(run):
        argv = [sys.executable, "-m", "rnnlab", "sample", str(run), "--prime", b"it\x92s", "--length", "5"]
        return subprocess.run(argv, capture_output=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    proc = sample(runs["utf-8"])
    proc.stdout, proc.stderr = proc.stdout.decode(), proc.stderr.decode()
    assert_user_error(proc, "1 character not in the vocabulary", "U+DC92", "--unknown skip")
    proc = sample(runs["bytes"])
    proc.stdout, proc.stderr = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout.startswith("it\ufffds")    # the prime echoed; 0x92 alone is not UTF-8, shown as U+FFFD


# ---- every numeric flag, given nonsense ---------------------------------------------------------------------

HUGE = "99999999999999999999"
NONSENSE = ["-1", "0", "0.5", "nan", "inf", "-inf", "1e999", HUGE, "abc", ""]
# Valid and honoured as asked: these would run (nearly) forever, as `--length 10**20` should.
ENDLESS = {("sample", "--length"), ("hello", "--steps")}


def numeric_flags(command):
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return [a.option_strings[-1] for a in sub._actions
            if a.option_strings and getattr(a.type, "__name__", "") in ("int", "float")]


def call(argv, capsys):
    """cli.main in this process: an exception escaping it would be a traceback. Returns (code, stderr)."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as e:                          # argparse's own errors
        code = e.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "sample", "hello"])
def test_numeric_flags_never_traceback(tmp_path, runs, capsys, command):
    data = tmp_path / "data.txt"
    data.write_text(LINE * 20, encoding="utf-8")
    flags = numeric_flags(command)
    assert len(flags) >= {"train": 20, "sample": 5, "hello": 3}[command]
    outcomes = {}
    for k, flag in enumerate(flags):
        for value in NONSENSE:
            if (command, flag) in ENDLESS and value == HUGE:
                continue
            base = {"train": ["train", "--data", data, "--out", tmp_path / f"r{k}-{NONSENSE.index(value)}",
                              *TINY, "--max-time", 0.5],
                    "sample": ["sample", runs["utf-8"], "--length", 20],
                    "hello": ["hello", "--steps", 3]}[command]
            code, err = call(base + [flag, value], capsys)
            lines = err.strip().splitlines()
            assert code in (0, 2), (flag, value, code, err)
            if code == 2:
                assert len(lines) == 1 and lines[0].startswith("error: "), (flag, value, err)
            outcomes[code] = outcomes.get(code, 0) + 1
    assert outcomes.get(2, 0) > outcomes.get(0, 0)     # mostly refused; the rest were valid settings


def test_finite_checks_in_messages(capsys):
    code, err = call(["train", "--lr", "nan"], capsys)
    assert code == 2 and "'nan' is not a finite number" in err
    code, err = call(["train", "--hidden-size", "99999999999999999999"], capsys)
    assert code == 2 and "--hidden-size must be in [1, 65536]" in err
    code, err = call(["train", "--seed", "-1"], capsys)
    assert code == 2 and "--seed must be >= 0" in err


def test_a_model_too_big_for_memory_is_one_line(tmp_path, capsys, monkeypatch):
    """--hidden-size 65536 is allowed but needs tens of GB; NumPy's MemoryError becomes one line. (Simulated: a
    real attempt could succeed on a big machine and fill its memory.)"""
    from rnnlab.engines.numpy import model

    def too_big(*a, **k):
        raise MemoryError("Unable to allocate 32.0 GiB for an array with shape (65536, 65536)")
    monkeypatch.setattr(model, "init_params", too_big)
    data = tmp_path / "data.txt"
    data.write_text(LINE * 20, encoding="utf-8")
    code, err = call(["train", "--data", data, "--out", tmp_path / "r", *TINY, "--hidden-size", 65536], capsys)
    assert code == 2 and err.startswith("error: not enough memory") and len(err.strip().splitlines()) == 1, err


def test_config_fields_all_have_flags():
    """The flag fuzz above covers every numeric config field (a new field gets fuzzed without editing this file)."""
    numeric = {f.name for c in (ModelConfig, TrainConfig) for f in dataclasses.fields(c) if f.type in ("int", "float")}
    flags = {f[2:].replace("-", "_") for f in numeric_flags("train")}
    from rnnlab.cli.args import FROM_DATA               # filled in from the data: V, and the task's label count
    assert numeric - set(FROM_DATA) <= flags, numeric - flags
