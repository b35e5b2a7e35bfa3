"""The task shapes run on every engine: in float64 on the CPU, with the same seed and data, classify, seq2seq train
and conditional train give the same validation figures on the NumPy and torch engines (to 1e-9), as the character
model does; and a checkpoint of either engine is read by the other."""
import numpy as np
import pytest

from helpers import one_blas_thread
from rnnlab.config import ModelConfig, TrainConfig
from rnnlab.models import open_model
from rnnlab.tasks import classify, conditional, data, seq2seq, synthetic

pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with one_blas_thread():
        yield


def quiet(*a, **k):
    pass


def table(tmp_path, task, n):
    path = tmp_path / f"{task}.tsv"
    data.write_tsv(path, synthetic.HEADERS[task], synthetic.generate(task, n, 0))
    return str(path)


CASES = {
    "classify": (classify, "parity", {"text_column": "text", "label_column": "label"}, ("val_acc", "val_loss")),
    "seq2seq": (seq2seq, "reverse", {"source_column": "source", "target_column": "target"},
                ("val_exact", "val_cer", "val_loss")),
    "conditional": (conditional, "styles", {"condition_column": "label", "text_column": "text"},
                    ("val_loss", "val_label_acc")),
}


@pytest.mark.parametrize("task", sorted(CASES))
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_numpy_and_torch_give_the_same_validation_figures(tmp_path, task, cell):
    module, synth, opts, keys = CASES[task]
    path = table(tmp_path, synth, 300)
    mcfg = ModelConfig(cell=cell, hidden_size=12, num_layers=2, embed_dim=4 if cell == "gru" else 0)
    tcfg = TrainConfig(data=path, batch_size=16, lr=0.01, max_steps=12, eval_every=6, seed=3, dtype="float64",
                       val_frac=0.2, seq_len=32)
    res = {e: module.train(mcfg, tcfg, opts, tmp_path / e, progress=False, log=quiet, engine=e,
                           engine_options={"device": "cpu"} if e == "torch" else None) for e in ("numpy", "torch")}
    for k in keys:
        assert abs(res["numpy"][k] - res["torch"][k]) <= 1e-9, (k, res["numpy"][k], res["torch"][k])
    assert res["numpy"]["val_loss"] < 5.0               # it trained: not a comparison of two untouched models
    snap, eng, params = open_model(tmp_path / "torch", task, engine="numpy")   # torch's checkpoint, NumPy engine
    mine = open_model(tmp_path / "numpy", task, engine="numpy")[0]
    for k in snap.params:
        assert np.abs(snap.params[k] - mine.params[k]).max() <= 1e-9, k
