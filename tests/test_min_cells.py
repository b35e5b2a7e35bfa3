"""The linear-recurrence cells (minGRU, minLSTM: rows with torch == "scan") on the torch engine: ScanRNN (its
sequential scan on a CPU; the log-space parallel scan it runs on a GPU is proven against the same NumPy scan below)
against the NumPy engine in float64 for every task shape (logits, loss, every gradient, padding masks
included), the scan itself at long T and at b = 0, checkpoints crossing engines, and torchrun. (The NumPy cells
themselves: every test parametrised over rnnlab.cells.NAMES.)"""
import numpy as np
import pytest

from helpers import one_blas_thread, word_corpus
from rnnlab import cells, snapshot
from rnnlab.config import ModelConfig, TrainConfig
from rnnlab.engines import make_engine
from rnnlab.engines.numpy import model as np_model
from rnnlab.engines.numpy.sequence import scan, scan_backward
from rnnlab.sample import generate
from rnnlab.tasks.data import pad
from rnnlab.lm import train

torch = pytest.importorskip("torch")

from rnnlab.engines.torch.cells import linear_scan, log_scan  # noqa: E402
from rnnlab.engines.torch.model import loss_sum  # noqa: E402

SCAN = [c for c in cells.NAMES if cells.get(c).torch == "scan"]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with one_blas_thread():
        yield
    torch.set_num_threads(before)


def quiet(*a, **k):
    pass


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def task_batch(task, rng, V=7, C=3):
    """A batch of each task shape with ragged rows (padding masks wherever the task has them)."""
    lengths = [5, 2, 4, 1]
    x, mask = pad([rng.integers(0, V, n) for n in lengths])                # (4, 5), the steps that are real
    b = {"x": x, "y": rng.integers(0, V, x.shape), "mask": mask}
    if task == "lm":
        return {"x": x, "y": b["y"]}
    if task == "classify":
        return {"x": x, "y": rng.integers(0, C, 4), "mask": mask}
    if task == "conditional":
        return {**b, "labels": np.array([2, 0, 1, 2])}
    src, src_mask = pad([rng.integers(0, V, n) for n in (3, 1, 4, 2)])
    return {**b, "src": src, "src_mask": src_mask}


@pytest.mark.parametrize("embed_dim", [0, 3])
@pytest.mark.parametrize("task", ["lm", "classify", "conditional", "seq2seq"])
@pytest.mark.parametrize("cell", SCAN)
def test_torch_scan_equals_numpy_on_every_task(cell, task, embed_dim):
    """Same weights (scaled up so that the gates leave their linear part) and batch: logits, loss and the
    gradient of every parameter agree to 1e-10 relative in float64; the lm also from a non-zero state."""
    mcfg = ModelConfig(cell=cell, vocab_size=7, hidden_size=5, num_layers=2, embed_dim=embed_dim, task=task,
                       num_labels=3 if task in ("classify", "conditional") else 0)
    rng = np.random.default_rng(0)
    ne, te = (make_engine(e, mcfg, TrainConfig(dtype="float64"), device="cpu") for e in ("numpy", "torch"))
    pn = {k: 2.0 * v for k, v in ne.init_params(1).items()}
    pt = te.load_params(pn)
    b = task_batch(task, rng)
    state = tuple(rng.standard_normal(s.shape) for s in ne.zero_state(4)) if task == "lm" else None
    logits_n, _, _ = np_model.forward(pn, mcfg, b, state)
    loss_n, _, grads_n, _ = np_model.loss_and_grads(pn, mcfg, b, state)
    bt = {k: torch.as_tensor(v) for k, v in b.items()}
    logits_t, _ = pt.module(bt, None if state is None else te.load_state(state))
    loss_t = loss_sum(logits_t, bt["y"], None if task == "classify" else bt.get("mask"))
    (loss_t / 4).backward()
    assert rel(logits_t.detach().numpy(), logits_n) <= 1e-10
    assert abs(loss_t.item() - loss_n) <= 1e-10 * loss_n
    assert pt.keys() == grads_n.keys()
    for k, p in pt.items():
        assert rel(p.grad.numpy(), grads_n[k]) <= 1e-10, k


def exp_linear_scan(log_a, b, h0):
    """The CPU path of ScanRNN, from log a as the cells give it."""
    return linear_scan(torch.exp(log_a), b, h0)


@pytest.mark.parametrize("torch_scan", [log_scan, exp_linear_scan])
@pytest.mark.parametrize("zero_state", [False, True])
def test_torch_scans_equal_numpys_at_long_T(zero_state, torch_scan):
    """Both torch scans (log space on a GPU, the sequential loop on a CPU), T = 1024 steps with a_t down to sigmoid(-4) (|A_T| ~ 1200: exp(A_T) alone underflows even float64), b of
    both signs and some b exactly 0, h0 = 0 or not: h and the gradients of log a, b and h0 against NumPy's scan and
    reverse scan, float64, 1e-11 relative. At h0 = 0 and b = 0 the gradient is dh/db, not 0."""
    rng = np.random.default_rng(0)
    N, T, H = 3, 1024, 4
    log_a = -np.logaddexp(0.0, rng.uniform(-4.0, 4.0, (N, T, H)))        # log sigmoid: a in (0.018, 0.982)
    b = rng.standard_normal((N, T, H))
    b[:, ::7] = 0.0
    h0 = np.zeros((N, H)) if zero_state else rng.standard_normal((N, H))
    dout = rng.standard_normal((N, T, H))
    a_tm, b_tm = np.ascontiguousarray(np.exp(log_a).transpose(1, 0, 2)), np.ascontiguousarray(b.transpose(1, 0, 2))
    hs = scan(a_tm, b_tm, h0)                                            # (T, N, H)
    dh, dh0 = scan_backward(a_tm, dout, None)
    h_prev = np.concatenate([h0[None], hs[:-1]])
    ta, tb, th0 = (torch.tensor(v, requires_grad=True) for v in (log_a, b, h0))
    out = torch_scan(ta, tb, th0)
    (out * torch.as_tensor(dout)).sum().backward()
    assert rel(out.detach().numpy(), hs.transpose(1, 0, 2)) <= 1e-11
    assert rel(tb.grad.numpy(), dh.transpose(1, 0, 2)) <= 1e-11
    assert rel(ta.grad.numpy(), (dh * h_prev * a_tm).transpose(1, 0, 2)) <= 1e-11   # d/dlog a = dh h_{t-1} a
    assert rel(th0.grad.numpy(), dh0) <= 1e-11
    assert np.all(np.isfinite(torch_scan(ta.float(), tb.float(), th0.float()).detach().numpy()))


def test_linear_scan_passes_gradcheck():
    """The sequential scan's hand-written backward against central differences (torch.autograd.gradcheck, float64)
    for a, b and h0, with a non-contiguous upstream gradient (an expanded one, as sum() gives)."""
    rng = np.random.default_rng(1)
    a, b, h0 = (torch.tensor(v, requires_grad=True) for v in
                (rng.uniform(0.1, 0.95, (2, 6, 3)), rng.standard_normal((2, 6, 3)), rng.standard_normal((2, 3))))
    assert torch.autograd.gradcheck(linear_scan, (a, b, h0))
    linear_scan(a, b, h0).sum().backward()                               # dout: expanded, zero strides
    assert torch.allclose(b.grad[:, -1], torch.ones(2, 3, dtype=torch.float64))


def test_masked_scan_carries_the_state_and_sampling_is_one_step():
    """On padded steps ScanRNN's out is the carried h and the final state each row's true last h; a step at a
    time (sampling: T = 1 through the same layer) gives the sequence pass's numbers."""
    from rnnlab.engines.torch.cells import make_rnn, run_rnn
    cfg = ModelConfig(cell=SCAN[0], vocab_size=4, hidden_size=3, num_layers=2)
    rnn = make_rnn(cfg, 4).double()
    with torch.no_grad():
        for p in rnn.parameters():
            p.uniform_(-1, 1)
    x = torch.randn(3, 6, 4, dtype=torch.float64)
    s0 = (torch.randn(2, 3, 3, dtype=torch.float64),)
    mask = torch.arange(6)[None] < torch.tensor([6, 2, 0])[:, None]

    def close(a, b):                                  # the log-space round trip exp(log(h)) costs a few ulps
        return torch.allclose(a, b, rtol=1e-14, atol=1e-15)
    with torch.no_grad():
        out, (hT,) = run_rnn(rnn, x, s0, mask)
        assert close(out[1, 2:], out[1, 1:2].expand(4, 3)) and close(hT[-1, 1], out[1, 1])
        assert close(out[2], s0[0][-1, 2].expand(6, 3)) and close(hT[:, 2], s0[0][:, 2])     # an empty row
        state, steps = s0, []
        for t in range(6):
            o, state = run_rnn(rnn, x[:, t:t + 1], state, None)
            steps.append(o)
        full, (h_full,) = run_rnn(rnn, x, s0, None)
    assert rel(torch.cat(steps, 1).numpy(), full.numpy()) <= 1e-13 and rel(state[0].numpy(), h_full.numpy()) <= 1e-13


@pytest.mark.parametrize("cell", SCAN)
def test_a_checkpoint_crosses_engines_both_ways(tmp_path, cell):
    """Trained by torch to step 6, resumed by NumPy to 12: where an all-NumPy run ends (float64, 1e-9); the
    NumPy-written checkpoint samples the same greedy text on both engines."""
    mcfg = ModelConfig(cell=cell, hidden_size=12, num_layers=2)
    tcfg = TrainConfig(data=str(word_corpus(tmp_path)), batch_size=4, seq_len=8, max_steps=12, eval_every=6,
                       dtype="float64", lr=0.03)
    opts = {"device": "cpu"}
    train(mcfg, tcfg, tmp_path / "np", "numpy", progress=False, log=quiet)
    train(mcfg, tcfg, tmp_path / "mixed", "torch", progress=False, log=quiet, stop_at=6, engine_options=opts)
    train(None, None, tmp_path / "mixed", "numpy", resume=True, progress=False, log=quiet)
    a = snapshot.load(tmp_path / "np" / "latest.safetensors")
    b = snapshot.load(tmp_path / "mixed" / "latest.safetensors")
    assert a.step == b.step == 12 and b.extra["engine"] == "numpy"
    for group in ("params", "opt_state"):
        for k, v in getattr(a, group).items():
            assert rel(getattr(b, group)[k], v) <= 1e-9, (group, k)
    assert rel(b.state[0], a.state[0]) <= 1e-9
    texts = {}
    for name in ("numpy", "torch"):
        engine = make_engine(name, b.mcfg, b.tcfg, device="cpu")
        texts[name] = generate(engine, engine.load_params(b.params), b.vocab, prime="the ", length=40,
                               num_samples=2, argmax=True)
    assert texts["numpy"] == texts["torch"] and len(set(texts["numpy"][0][4:])) > 1


def test_torchrun_trains_mingru(tmp_path):
    """`torchrun --nproc-per-node 2 -m rnnlab train --engine torch --cell mingru`: 2 gloo processes each on half
    of the streams end where one process ends (float32, 1e-6)."""
    if not torch.distributed.is_available():
        pytest.skip("this torch build has no torch.distributed")
    from test_ddp import torchrun
    data = word_corpus(tmp_path)
    flags = ["--engine", "torch", "--device", "cpu", "--no-progress", "--data", data, "--cell", "mingru",
             "--hidden-size", "12", "--num-layers", "2", "--batch-size", "4", "--seq-len", "8", "--optimizer",
             "sgd", "--lr", "0.5", "--max-steps", "4", "--eval-every", "4"]
    proc = torchrun("-m", "rnnlab", "train", *flags, "--out", tmp_path / "ddp")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("DDP 2 processes (gloo)") == 1, proc.stdout
    mcfg = ModelConfig(cell="mingru", hidden_size=12, num_layers=2)
    tcfg = TrainConfig(data=str(data), batch_size=4, seq_len=8, optimizer="sgd", lr=0.5, max_steps=4, eval_every=4)
    train(mcfg, tcfg, tmp_path / "one", "torch", progress=False, log=quiet, engine_options={"device": "cpu"})
    a = snapshot.load(tmp_path / "ddp" / "latest.safetensors")
    b = snapshot.load(tmp_path / "one" / "latest.safetensors")
    assert a.step == b.step == 4
    for k in b.params:
        assert np.abs(a.params[k] - b.params[k]).max() <= 1e-6, k
