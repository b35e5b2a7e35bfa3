"""bf16 on CPUs that have it (issue 13): --precision bf16 with the torch engine on a CPU with AMX or AVX512-BF16
autocasts the maths to bfloat16 while the weights, optimiser state and checkpoints stay float32; a CPU without
those instructions gets a one-line error; --engine auto takes bf16 there to train (measured faster at an equal loss)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import word_corpus  # noqa: E402
from rnnlab import engines, snapshot  # noqa: E402
from rnnlab.cli import main  # noqa: E402
from rnnlab.config import ModelConfig, TrainConfig  # noqa: E402
from rnnlab.engines.torch import device  # noqa: E402
from rnnlab.errors import UserError  # noqa: E402
from rnnlab.lm import train  # noqa: E402

needs_bf16 = pytest.mark.skipif(not device.cpu_bf16(), reason="this CPU has neither AMX nor AVX512-BF16")


def run(tmp_path, precision, steps=6):
    tcfg = TrainConfig(data=str(word_corpus(tmp_path)), batch_size=4, seq_len=16, max_steps=steps, eval_every=steps)
    return train(ModelConfig(cell="lstm", hidden_size=32, embed_dim=8), tcfg, tmp_path / precision, "torch",
                 progress=False, log=lambda *a, **k: None, engine_options={"device": "cpu", "precision": precision})


@needs_bf16
def test_bf16_trains_on_the_cpu_close_to_fp32_and_keeps_float32_checkpoints(tmp_path):
    fp32, bf16 = run(tmp_path, "fp32"), run(tmp_path, "bf16")
    assert abs(bf16["loss"] - fp32["loss"]) < 0.02 and abs(bf16["best_val"] - fp32["best_val"]) < 0.02, (fp32, bf16)
    snap = snapshot.load(tmp_path / "bf16" / "latest.safetensors")
    floats = [*snap.params.values(), *(v for k, v in snap.opt_state.items() if k != "step"), *snap.state]
    assert floats and all(np.asarray(a).dtype == np.float32 for a in floats)
    ref = snapshot.load(tmp_path / "fp32" / "latest.safetensors")
    assert not np.array_equal(snap.params["decoder.weight"], ref.params["decoder.weight"])   # it did autocast


@needs_bf16
def test_bf16_first_line_and_sampling_on_the_cpu(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--data", str(word_corpus(tmp_path)), "--out", str(out), "--engine", "torch",
                 "--device", "cpu", "--precision", "bf16", "--hidden-size", "16", "--batch-size", "2",
                 "--seq-len", "8", "--max-steps", "2", "--no-progress", "--threads", "1"])
    assert code == 0 and "engine torch (cpu, bf16 autocast, float32) on 1 thread" in capsys.readouterr().out
    code = main(["sample", str(out), "--engine", "torch", "--precision", "bf16", "--length", "20"])
    captured = capsys.readouterr()
    assert code == 0 and len(captured.out) >= 20 and "bf16 autocast" in captured.err


def test_bf16_is_refused_on_a_cpu_without_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(device, "cpu_bf16", lambda: "")
    with pytest.raises(UserError, match="AMX or AVX512-BF16"):
        device.pick_device("cpu", "float32", "bf16")
    code = main(["train", "--data", str(word_corpus(tmp_path)), "--out", str(tmp_path / "run"), "--engine", "torch",
                 "--device", "cpu", "--precision", "bf16", "--max-steps", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --precision bf16 on the CPU needs AMX or AVX512-BF16") and \
        err.count("\n") == 1, err


def test_cpu_bf16_reads_the_cpu_flags(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16\n\nprocessor\t: 1\n")
    assert device.cpu_flags(str(info)) == {"fpu", "sse2", "avx512f", "avx512_bf16"}
    assert device.cpu_flags(str(tmp_path / "missing")) == set()
    monkeypatch.setattr(device, "cpu_flags", lambda: {"avx512_bf16"})
    assert device.cpu_bf16() in ("AVX512-BF16", "AMX")        # torch may know of AMX that the flags do not
    monkeypatch.setattr(device, "cpu_flags", lambda: {"amx_bf16", "avx512_bf16"})
    assert device.cpu_bf16() == "AMX"


def test_auto_takes_bf16_only_where_switched_on_and_the_cpu_has_it(monkeypatch):
    lstm, rnn = ModelConfig(cell="lstm", vocab_size=5), ModelConfig(cell="rnn", vocab_size=5)
    f32, f64 = TrainConfig(), TrainConfig(dtype="float64")
    monkeypatch.setattr(device, "cpu_bf16", lambda: "AVX512-BF16")
    monkeypatch.setattr(device, "auto_device", lambda: "cpu")
    assert engines.auto_precision(lstm, f32, "train") == "bf16"             # on: measured faster (issue 13)
    monkeypatch.setattr(engines, "AUTO_CPU_BF16", False)
    assert engines.auto_precision(lstm, f32, "train") == "fp32"
    monkeypatch.setattr(engines, "AUTO_CPU_BF16", True)
    assert engines.make_engine("auto", lstm, f32, device="cpu").device == "cpu, bf16 autocast"
    assert engines.make_engine("auto", lstm, f32, device="cpu", precision="fp32").device == "cpu"   # as asked
    assert [engines.auto_precision(*a) for a in ((lstm, f32, "sample"), (rnn, f32, "train"),
                                                   (lstm, f64, "train"))] == ["fp32"] * 3
    monkeypatch.setattr(device, "cpu_bf16", lambda: "")
    assert engines.auto_precision(lstm, f32, "train") == "fp32"
