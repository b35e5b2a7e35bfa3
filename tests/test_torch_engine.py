"""The torch engine against the NumPy engine, in float64: same forward, loss, state and gradients, same training
trajectories for every optimiser, one checkpoint format both ways, and its flags' errors."""
import pytest

torch = pytest.importorskip("torch")

import numpy as np  # noqa: E402

from helpers import word_corpus  # noqa: E402
from rnnlab import cells  # noqa: E402
from rnnlab import snapshot  # noqa: E402
from rnnlab.cli import main  # noqa: E402
from rnnlab.config import ModelConfig, TrainConfig  # noqa: E402
from rnnlab.engines import make_engine  # noqa: E402
from rnnlab.engines.numpy.engine import Engine as NumpyEngine  # noqa: E402
from rnnlab.engines.numpy import model as np_model  # noqa: E402
from rnnlab.engines.torch.engine import Engine as TorchEngine  # noqa: E402
from rnnlab.engines.torch.model import loss_sum  # noqa: E402
from rnnlab.sample import generate  # noqa: E402
from rnnlab.streams import Streams  # noqa: E402
from rnnlab.vocab import Vocab  # noqa: E402
from rnnlab.lm import train  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from threads, and on a busy 2-core CI machine OpenMP's waiting threads make
    every step ~10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def quiet(*a, **k):
    pass


def rel(a, b) -> float:
    """||a - b|| / ||b|| (0 when both are 0)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    nb = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / nb) if nb else float(np.linalg.norm(a))


def engines(mcfg, tcfg):
    return NumpyEngine(mcfg, tcfg), TorchEngine(mcfg, tcfg, device="cpu")


@pytest.mark.parametrize("embed_dim", [0, 5])
@pytest.mark.parametrize("cell", cells.NAMES)
def test_forward_loss_state_and_every_gradient_match_numpy(cell, embed_dim):
    """Same weights, same batch, a non-zero carried state: logits, summed loss, final state and the gradient of
    every parameter agree to 1e-10 relative (they differ only in rounding order, ~1e-15)."""
    mcfg = ModelConfig(cell=cell, vocab_size=9, hidden_size=7, num_layers=2, embed_dim=embed_dim)
    ne, te = engines(mcfg, TrainConfig(dtype="float64"))
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 9, (4, 6)), rng.integers(0, 9, (4, 6))
    state0 = tuple(rng.standard_normal(s.shape) * 0.5 for s in ne.zero_state(4))
    pn, pt = ne.init_params(11), te.init_params(11)
    for k in pn:                                      # the same seed gives the same initial numbers
        assert np.array_equal(pn[k], te.export(pt)[k]), k

    logits_n, state_n, _ = np_model.forward(pn, mcfg, {"x": x}, state0)
    loss_n, _, grads_n, _ = np_model.loss_and_grads(pn, mcfg, {"x": x, "y": y}, state0)
    logits_t, state_t = pt.module.lm(torch.as_tensor(x), te.load_state(state0))
    loss_t = loss_sum(logits_t, torch.as_tensor(y))
    (loss_t / x.shape[0]).backward()                  # the loss: summed over time, mean over streams

    assert rel(logits_t.detach().numpy(), logits_n) <= 1e-10
    assert abs(loss_t.item() - loss_n) <= 1e-10 * loss_n
    for a, b in zip(te.export_state(state_t), state_n):
        assert rel(a, b) <= 1e-10
    assert pt.keys() == grads_n.keys()
    for k, p in pt.items():
        assert rel(p.grad.numpy(), grads_n[k]) <= 1e-10, k


def run_steps(engine, tcfg, steps, data, lr=None):
    """Train `steps` steps over `data` streams (state carried, reset at each pass); return losses and params."""
    streams = Streams(data, tcfg.batch_size, tcfg.seq_len)
    params = engine.init_params(tcfg.seed)
    opt = engine.init_opt_state(params)
    state, losses = engine.zero_state(tcfg.batch_size), []
    for step in range(steps):
        b = step % streams.num_batches
        if b == 0:
            state = engine.zero_state(tcfg.batch_size)
        x, y = streams.batch(b)
        m, state = engine.train_step(params, opt, {"x": x, "y": y}, state, lr or tcfg.lr, None)
        assert m["ok"]
        losses.append(m["loss"])
    return np.array(losses), engine.export(params), engine.export(opt)


DATA = np.random.default_rng(5).integers(0, 8, 3 * 4 * 6 + 1)        # three batches of 4 streams x 6 steps


@pytest.mark.parametrize("cell", cells.NAMES)
def test_twenty_sgd_steps_give_the_same_losses(cell):
    mcfg = ModelConfig(cell=cell, vocab_size=8, hidden_size=10, num_layers=2)
    tcfg = TrainConfig(batch_size=4, seq_len=6, optimizer="sgd", lr=0.5, clip_norm=1.0, dtype="float64")
    ln, pn, _ = run_steps(*engines(mcfg, tcfg)[:1], tcfg, 20, DATA)
    lt, pt, _ = run_steps(engines(mcfg, tcfg)[1], tcfg, 20, DATA)
    assert np.all(np.abs(lt - ln) <= 1e-9 * np.abs(ln)), np.abs(lt - ln).max()
    assert ln[-1] < ln[0]                                  # it did learn: the comparison is not of a flat line
    for k in pn:
        assert rel(pt[k], pn[k]) <= 1e-9, k


@pytest.mark.parametrize("opt, extra", [("adam", {}), ("adagrad", {"clip_value": 5.0, "clip_norm": 0.0}),
                                         ("rmsprop", {}), ("sgd", {"momentum": 0.9, "clip_value": 0.05}),
                                         ("adam", {"weight_decay": 0.5}), ("adagrad", {"weight_decay": 0.5}),
                                         ("sgd", {"weight_decay": 0.5})])
def test_every_optimiser_and_clipping_matches_numpy(opt, extra):
    """Adam, RMSprop and SGD+momentum through torch.optim, the paper's Adagrad written by hand, both clippings,
    decoupled weight decay: the same losses, parameters and optimiser state (the checkpoint's opt.* tensors) after
    8 steps."""
    mcfg = ModelConfig(cell="lstm", vocab_size=8, hidden_size=10, num_layers=2)
    tcfg = TrainConfig(batch_size=4, seq_len=6, optimizer=opt, lr=0.05, dtype="float64", **extra)
    ne, te = engines(mcfg, tcfg)
    ln, pn, on = run_steps(ne, tcfg, 8, DATA)
    lt, pt, ot = run_steps(te, tcfg, 8, DATA)
    assert np.all(np.abs(lt - ln) <= 1e-9 * np.abs(ln))
    for k in pn:
        assert rel(pt[k], pn[k]) <= 1e-9, k
    assert on.keys() == ot.keys() and int(ot["step"]) == 8 and ot["step"].dtype == np.int64
    for k in on:
        assert rel(ot[k], on[k]) <= 1e-9, k


def test_a_non_finite_loss_skips_the_update():
    mcfg = ModelConfig(cell="gru", vocab_size=5, hidden_size=4)
    te = TorchEngine(mcfg, TrainConfig(dtype="float64", batch_size=2, seq_len=3), device="cpu")
    params = te.init_params(0)
    opt = te.init_opt_state(params)
    with torch.no_grad():
        params["decoder.bias"][2] = float("nan")
    before = te.export(params)
    x = np.array([[0, 1, 2], [3, 4, 0]])
    m, _ = te.train_step(params, opt, {"x": x, "y": x}, te.zero_state(2), 0.1, None)
    assert m["ok"] is False and not np.isfinite(m["loss"])
    after = te.export(params)
    assert all(np.array_equal(before[k], after[k], equal_nan=True) for k in before)
    assert int(te.export(opt)["step"]) == 0


def corpus(tmp_path):
    return word_corpus(tmp_path)


def test_numpy_checkpoint_resumes_in_torch_and_torch_checkpoint_samples_in_numpy(tmp_path):
    """A run started by the NumPy engine and finished by the torch engine ends where an all-NumPy run ends
    (optimiser state, carried state, step and schedule all cross over); greedy samples from the torch-written
    checkpoint are the same text in both engines."""
    mcfg = ModelConfig(cell="lstm", hidden_size=12, num_layers=2)
    tcfg = TrainConfig(data=str(corpus(tmp_path)), batch_size=4, seq_len=8, max_steps=16, eval_every=8,
                       dtype="float64", lr=0.03, schedule="cosine", warmup_steps=2)
    train(mcfg, tcfg, tmp_path / "np", progress=False, log=quiet)
    train(mcfg, tcfg, tmp_path / "mixed", progress=False, log=quiet, stop_at=6)             # NumPy to step 6
    train(None, None, tmp_path / "mixed", "torch", resume=True, progress=False, log=quiet,  # torch to 16
          engine_options={"device": "cpu"})
    a = snapshot.load(tmp_path / "np" / "latest.safetensors")
    b = snapshot.load(tmp_path / "mixed" / "latest.safetensors")
    assert a.step == b.step == 16 and b.extra["engine"] == "torch"
    for k in a.params:
        assert rel(b.params[k], a.params[k]) <= 1e-9, k
    for k in a.opt_state:
        assert rel(b.opt_state[k], a.opt_state[k]) <= 1e-9, k
    for sa, sb in zip(a.state, b.state):
        assert rel(sb, sa) <= 1e-9

    texts = {}
    for name in ("numpy", "torch"):
        engine = make_engine(name, b.mcfg, b.tcfg, device="cpu")
        texts[name] = generate(engine, engine.load_params(b.params), b.vocab, prime="the ", length=60,
                               num_samples=2, argmax=True)
    assert texts["numpy"] == texts["torch"]
    assert len(set(texts["numpy"][0][4:])) > 1                              # not a single repeated character


def test_dropout_run_resumes_bit_for_bit_on_cpu(tmp_path):
    """Dropout masks come from torch's generator reseeded each step from the run's RNG, which the checkpoint
    holds: stopping and resuming changes nothing."""
    mcfg = ModelConfig(cell="gru", hidden_size=8, num_layers=2, embed_dim=4, dropout=0.3)
    tcfg = TrainConfig(data=str(corpus(tmp_path)), batch_size=2, seq_len=8, max_steps=12, eval_every=6,
                       dtype="float64")
    opts = {"device": "cpu"}
    train(mcfg, tcfg, tmp_path / "one", "torch", progress=False, log=quiet, engine_options=opts)
    train(mcfg, tcfg, tmp_path / "two", "torch", progress=False, log=quiet, stop_at=5, engine_options=opts)
    train(None, None, tmp_path / "two", "torch", resume=True, progress=False, log=quiet, engine_options=opts)
    a = snapshot.load(tmp_path / "one" / "latest.safetensors")
    b = snapshot.load(tmp_path / "two" / "latest.safetensors")
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k]), k
    # and dropout did act: the same run without it ends elsewhere
    train(ModelConfig(cell="gru", hidden_size=8, num_layers=2, embed_dim=4), tcfg, tmp_path / "nodrop", "torch",
          progress=False, log=quiet, engine_options=opts)
    c = snapshot.load(tmp_path / "nodrop" / "latest.safetensors")
    assert not np.array_equal(a.params["decoder.weight"], c.params["decoder.weight"])


@pytest.mark.parametrize("cell", ["lstm", "mingru"])
def test_top_layer_dropout_is_one_mask_per_sequence(cell):
    """Training with dropout: the top layer's outputs lose the same units at every step of a sequence (variational
    dropout, as the NumPy engine's top layer), different units in different sequences, kept ones scaled by
    1 / (1 - p); evaluation drops nothing."""
    from rnnlab.engines.torch.model import Net, zero_state
    torch.manual_seed(0)
    net = Net(ModelConfig(cell=cell, vocab_size=5, hidden_size=64, num_layers=1, dropout=0.5))
    for p in net.parameters():
        torch.nn.init.uniform_(p, -0.5, 0.5)
    ids = torch.randint(0, 5, (4, 9))
    net.train()
    out, _ = net.stack(ids, zero_state(net.cfg, 4, torch.float32, "cpu"))   # (N, T, H)
    net.eval()
    plain, _ = net.stack(ids, zero_state(net.cfg, 4, torch.float32, "cpu"))
    dropped = out == 0
    assert torch.equal(dropped, dropped[:, :1].expand_as(dropped))           # the same units at every step
    assert not torch.equal(dropped[0], dropped[1]) and 0.3 < dropped.float().mean() < 0.7
    assert not (plain == 0).any()
    assert torch.allclose(out[~dropped], 2 * plain[~dropped])


def test_first_line_names_engine_and_device(tmp_path):
    lines = []
    tcfg = TrainConfig(data=str(corpus(tmp_path)), batch_size=2, seq_len=8, max_steps=2, eval_every=2)
    train(ModelConfig(cell="rnn", hidden_size=4), tcfg, tmp_path / "run", "torch", progress=False,
          log=lines.append, engine_options={"device": "cpu"})
    assert lines[0].startswith("rnnlab train: engine torch (cpu, float32)"), lines[0]


def test_one_hot_input_matches_an_embedding_of_the_identity():
    """The one-hot input built by scatter is exactly nn.Embedding with an identity table (values and grads)."""
    from rnnlab.engines.torch.model import one_hot
    ids = torch.tensor([[0, 3, 3], [2, 1, 0]])
    assert torch.equal(one_hot(ids, 4, torch.float64), torch.nn.functional.embedding(ids, torch.eye(4).double()))


@pytest.mark.parametrize("argv, needle", [
    (["--engine", "torch", "--device", "cuda"], "--device cuda"),
    (["--engine", "torch", "--device", "cpu", "--precision", "bf16"], "--precision bf16"),
    (["--engine", "numpy", "--device", "cuda"], "--device cuda needs --engine torch"),
    (["--precision", "bf16"], "error: --precision bf16 needs --engine torch"),       # the default engine: numpy
    (["--engine", "torch", "--device", "cpu", "--dtype", "float64", "--precision", "bf16"], "--precision bf16"),
])
def test_device_and_precision_errors_are_one_line(tmp_path, capsys, monkeypatch, argv, needle):
    if "cuda" in argv and torch.cuda.is_available() and "numpy" not in argv:
        pytest.skip("this machine has CUDA")
    monkeypatch.setattr("rnnlab.engines.torch.device.cpu_bf16", lambda: "")    # a CPU without AMX, AVX512-BF16
    code = main(["train", "--data", str(corpus(tmp_path)), "--out", str(tmp_path / "run"), "--no-progress",
                 "--max-steps", "1", *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "run" / "latest.safetensors").exists()


def test_auto_picks_the_faster_engine_per_cell_and_job(monkeypatch):
    """--engine auto on this CPU-only build: torch for LSTM training and evaluation (oneDNN), NumPy for rnn and gru
    and for sampling; torch whenever a GPU, bf16 or torchrun asks for it."""
    from rnnlab.engines import auto_engine
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: auto takes torch for everything")
    lstm, gru, rnn = (ModelConfig(cell=c, vocab_size=5) for c in ("lstm", "gru", "rnn"))
    assert [auto_engine(m, "train") for m in (lstm, gru, rnn)] == ["torch", "numpy", "numpy"]
    assert auto_engine(lstm, "eval") == "torch" and auto_engine(lstm, "sample") == "numpy"
    assert auto_engine(gru, "train", device="cuda") == "torch"
    assert auto_engine(gru, "train", precision="bf16") == "torch"
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert auto_engine(gru, "sample") == "torch"
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert make_engine("auto", gru, TrainConfig(), device="cpu").name == "numpy"
    assert make_engine("auto", lstm, TrainConfig(), device="cpu").name == "torch"


def test_a_resume_goes_on_with_the_engine_and_precision_the_run_last_ran_with(tmp_path):
    """Without --engine, a resumed run takes the --engine and --precision it last ran with (from its checkpoint),
    so the way-to-go-on line is a plain --resume; a new run's default stays numpy; flags given win."""
    from rnnlab.engines.torch.device import cpu_bf16
    precision = "bf16" if cpu_bf16() else "fp32"
    tcfg = TrainConfig(data=str(corpus(tmp_path)), batch_size=2, seq_len=8, max_steps=3, eval_every=3)
    train(ModelConfig(cell="lstm", hidden_size=8), tcfg, tmp_path / "run", "torch", progress=False, log=quiet,
          engine_options={"device": "cpu", "precision": precision})

    def go_on(engine, **kw):
        lines = []
        train(None, None, tmp_path / "run", engine, resume=True, progress=False, log=lines.append, **kw)
        return lines
    first = go_on(None, overrides={"max_steps": 4}, engine_options={"device": "cpu"})[0]
    assert first.startswith(f"rnnlab train: engine torch (cpu{', bf16 autocast' if precision == 'bf16' else ''}, "
                            f"float32)"), first
    last = go_on(None, engine_options={"device": "cpu"})[-1]             # the budget is spent: how to go on
    assert f"to go on: rnnlab train --resume {tmp_path / 'run'} --max-steps N" in last, last
    first = go_on("torch", overrides={"max_steps": 4}, engine_options={"device": "cpu"})[0]   # its precision kept
    assert ("bf16 autocast" in first) is (precision == "bf16"), first
    lines = go_on("numpy", overrides={"max_steps": 5})
    assert lines[0].startswith("rnnlab train: engine numpy (cpu, float32)"), lines
    assert lines[1].startswith("changed on resume: ") and "engine 'torch' -> 'numpy'" in lines[1], lines
    assert go_on(None, overrides={"max_steps": 6})[0].startswith("rnnlab train: engine numpy (cpu, float32)")
    lines = []
    train(ModelConfig(cell="lstm", hidden_size=8), tcfg, tmp_path / "new", None, progress=False, log=lines.append)
    assert lines[0].startswith("rnnlab train: engine numpy (cpu, float32)"), lines[0]
