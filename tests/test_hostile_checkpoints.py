"""Checkpoints from a stranger, through every command that reads one (sample, eval, train --resume): each is
refused with one line naming the file, and nothing in it is ever executed (canaries prove the pickles never run).

test_checkpoint.py proves the parser on the same kinds of file (pickle, .pt zip, a 10 GB header, offsets past the
end, a flipped bit, truncation); test_cli_errors.py sends a pickle and a truncated file to sample and eval. Here:
the rest of the CLI paths, and files that are valid safetensors with a *consistent* checksum (it is an integrity
check, not a signature: anyone can recompute it) whose contents are hostile.
"""
import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from helpers import ROOT, assert_user_error
from rnnlab import checkpoint, cli
from rnnlab.config import ModelConfig, TrainConfig
from rnnlab.lm import train


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A finished tiny run: (run dir, its text)."""
    tmp = tmp_path_factory.mktemp("good")
    data = tmp / "text.txt"
    data.write_text("the cat sat on the mat.\n" * 40, encoding="utf-8")
    tcfg = TrainConfig(data=str(data), batch_size=2, seq_len=8, max_steps=4, eval_every=2)
    train(ModelConfig(cell="lstm", hidden_size=8), tcfg, tmp / "run", progress=False, log=lambda *a: None)
    return tmp / "run", data


def hostile_run(tmp_path, good, payload: bytes):
    """A copy of the good run whose latest and best checkpoints are `payload`."""
    run = tmp_path / "run"
    shutil.copytree(good[0], run)
    for name in ("latest.safetensors", "best.safetensors"):
        (run / name).write_bytes(payload)
    return run


def commands(run, data):
    return [["sample", run, "--length", "5"], ["sample", run / "latest.safetensors", "--length", "5"],
            ["eval", run, "--data", data], ["train", "--resume", run, "--max-steps", "8", "--no-progress"]]


def in_process(argv, capsys):
    """cli.main here: any exception other than the CLI's own exit would escape as a traceback."""
    code = cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err


class Evil:
    def __init__(self, canary):
        self.canary = str(canary)

    def __reduce__(self):
        return (open, (self.canary, "w"))


def subprocess_cli(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "rnnlab", *map(str, args)], capture_output=True, text=True, env=env)


def test_pickle_in_a_run_directory_never_runs(tmp_path, good):
    """`train --resume` on a run whose latest.safetensors is a pickle, in a fresh process: refused, canary unborn."""
    canary = tmp_path / "CANARY"
    run = hostile_run(tmp_path, good, pickle.dumps({"state_dict": Evil(canary)}, protocol=4))
    proc = subprocess_cli("train", "--resume", run, "--max-steps", 8, "--no-progress")
    assert_user_error(proc, "latest.safetensors", "pickle", "never loads pickles")
    assert not canary.exists()
    pickle.loads(pickle.dumps(Evil(canary)))    # the same payload given to pickle does run: the canary works
    assert canary.exists()


def test_pt_zip_with_a_pickle_never_runs(tmp_path):
    """A PyTorch .pt file (a zip holding data.pkl), made without torch, handed to sample: refused, canary unborn."""
    canary = tmp_path / "CANARY"
    pt = tmp_path / "model.pt"
    with zipfile.ZipFile(pt, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"decoder.weight": Evil(canary)}))
        z.writestr("archive/version", "3\n")
        z.writestr("archive/data/0", b"\0" * 64)
    proc = subprocess_cli("sample", pt, "--length", 5)
    assert_user_error(proc, "model.pt", "zip archive", "PyTorch", "never loads pickles")
    assert not canary.exists()


def _damage(kind, data: bytes) -> bytes:
    hlen = int.from_bytes(data[:8], "little")
    if kind == "header claiming 8 GB":
        return (8 << 30).to_bytes(8, "little") + data[8:]
    if kind == "offsets past the end":
        header = json.loads(data[8:8 + hlen])
        name = next(k for k in header if k != "__metadata__")
        header[name]["data_offsets"] = [v + (1 << 20) for v in header[name]["data_offsets"]]   # same length
        raw = json.dumps(header).encode()
        return len(raw).to_bytes(8, "little") + raw + data[8 + hlen:]
    if kind == "flipped bit":
        b = bytearray(data)
        b[8 + hlen + (len(data) - 8 - hlen) // 2] ^= 0x04
        return bytes(b)
    if kind == "truncated":
        return data[:len(data) * 2 // 3]
    raise ValueError(kind)


@pytest.mark.parametrize("kind, needle", [("header claiming 8 GB", "header claims 8589934592 bytes"),
                                          ("offsets past the end", "(truncated)"),
                                          ("flipped bit", "checksum mismatch"),
                                          ("truncated", "truncated")])
def test_damaged_files_through_every_command(tmp_path, good, capsys, kind, needle):
    run = hostile_run(tmp_path, good, _damage(kind, (good[0] / "latest.safetensors").read_bytes()))
    for argv in commands(run, good[1]):
        code, err = in_process(argv, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1, (argv, err)
        assert err.startswith("error: ") and needle in err, (argv, err)
        assert "latest.safetensors" in err or "best.safetensors" in err, (argv, err)


def _tamper(path, fix):
    """Rewrite a checkpoint through checkpoint.save after fix(tensors, meta): valid safetensors, valid checksum."""
    tensors, meta = checkpoint.load(path)
    tensors = {k: np.array(v) for k, v in tensors.items()}
    fix(tensors, meta)
    path.unlink()
    checkpoint.save(path, tensors, meta)


def _set(key, value):
    return lambda t, m: m.__setitem__(key, value)


def _nan_param(t, m):
    t["param.decoder.bias"][0] = np.nan


TAMPERED = {
    "step is text": (_set("step", "12; rm -rf ~"), "step '12; rm -rf ~' is not a whole number"),
    "negative step": (_set("step", -5), "step -5 is not a whole number"),
    "best_val NaN": (_set("best_val", float("nan")), "best_val nan is not a finite number"),
    "RNG state garbage": (_set("rng", {"bit_generator": "PCG64", "state": "x"}), "RNG state is malformed"),
    "RNG of another kind": (_set("rng", {"bit_generator": "MT19937"}), "RNG state is malformed"),
    "unknown config field": (lambda t, m: m["model"].__setitem__("exec", "import os"), "unknown ModelConfig fields"),
    "config value out of range": (lambda t, m: m["train"].__setitem__("lr", -1.0), "--lr must be > 0"),
    "vocabulary not a list": (_set("vocab", {"encoding": "utf-8", "symbols": "abc"}), "malformed vocabulary"),
    "NaN in a weight": (_nan_param, "param.decoder.bias holds inf or NaN"),
    "optimiser slot missing": (lambda t, m: t.pop("opt.decoder.bias.exp_avg"), "optimiser state does not match"),
    "optimiser slot wrong shape": (lambda t, m: t.__setitem__("opt.decoder.bias.exp_avg", np.zeros(3)),
                                   "opt.decoder.bias.exp_avg has shape (3,)"),
    "hidden state wrong shape": (lambda t, m: t.__setitem__("state.h", np.zeros((1, 99, 8), np.float32)),
                                 "hidden state does not match the config"),
    "weights wrong shape": (lambda t, m: t.__setitem__("param.decoder.bias", np.zeros(3, np.float32)),
                            "parameter decoder.bias has shape (3,)"),
    "foreign tensor": (lambda t, m: t.__setitem__("code.payload", np.zeros(3)), "unexpected tensor 'code.payload'"),
}


@pytest.mark.parametrize("name", list(TAMPERED))
def test_consistent_checksum_hostile_contents(tmp_path, good, capsys, name):
    fix, needle = TAMPERED[name]
    run = tmp_path / "run"
    shutil.copytree(good[0], run)
    for ckpt in ("latest.safetensors", "best.safetensors"):
        _tamper(run / ckpt, fix)
    for argv in commands(run, good[1]):
        code, err = in_process(argv, capsys)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], (argv, err)


def test_resume_needs_optimiser_and_hidden_state(tmp_path, good, capsys):
    """A file with only the weights samples fine, but cannot be resumed: it says so instead of failing mid-step."""
    run = tmp_path / "run"
    shutil.copytree(good[0], run)

    def weights_only(t, m):
        for k in [k for k in t if not k.startswith("param.")]:
            del t[k]
    _tamper(run / "latest.safetensors", weights_only)
    code, _ = in_process(["sample", run / "latest.safetensors", "--length", "5"], capsys)
    assert code == 0
    code, err = in_process(["train", "--resume", run, "--max-steps", "8", "--no-progress"], capsys)
    assert code == 2 and "holds weights but not the optimiser state" in err
