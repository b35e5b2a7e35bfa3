"""DistributedDataParallel on the CPU with gloo, 2 processes started by torchrun (or by hand, as two machines would):
the same parameters on every rank and as one process with the same global batch; rank 0 alone writes; resume under
a different number of processes; a dead or silent peer stops the survivor with an error instead of a hang."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():
    pytest.skip("this torch build has no torch.distributed", allow_module_level=True)

import numpy as np  # noqa: E402

import ddp_worker  # noqa: E402
from helpers import ROOT, assert_user_error, word_corpus  # noqa: E402
from rnnlab import snapshot  # noqa: E402
from rnnlab.config import ModelConfig, TrainConfig  # noqa: E402
from rnnlab.engines import make_engine  # noqa: E402
from rnnlab.errors import UserError  # noqa: E402
from rnnlab.lm import train  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(**extra):
    # One thread per process: 2 processes on a 2-core machine (torchrun sets this itself).
    return dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", **extra)


def torchrun(*args, timeout=120):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(free_port()), *map(str, args)]
    return subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_two_ranks_end_identical_and_equal_one_process(tmp_path):
    proc = torchrun(ROOT / "tests" / "ddp_worker.py", tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (np.load(tmp_path / f"rank{r}.npz") for r in (0, 1))
    one = ddp_worker.run(make_engine("torch", ddp_worker.MCFG, ddp_worker.TCFG, device="cpu"))
    assert sorted(r0.files) == sorted(one)
    for k in one:
        assert np.array_equal(r0[k], r1[k]), k                   # every rank holds the same model and full state
        assert np.abs(r0[k] - one[k]).max() <= 1e-6, k            # and it is the one-process model, in float32
    init = make_engine("torch", ddp_worker.MCFG, ddp_worker.TCFG, device="cpu").init_params(ddp_worker.TCFG.seed)
    moved = max(float((r0["param." + k] - p.detach().numpy()).__abs__().max()) for k, p in init.items())
    assert moved > 0.05, moved                                       # the comparison is not of untrained weights


def corpus(tmp_path):
    return word_corpus(tmp_path)


def test_torchrun_cli_writes_once_and_resumes_with_another_process_count(tmp_path):
    """`torchrun -m rnnlab train` with 2 processes for 4 steps, resumed by one process to 8 steps, ends where one
    process training 8 steps ends (float32, 1e-6); only rank 0 printed and wrote."""
    data = corpus(tmp_path)
    proc = torchrun("-m", "rnnlab", "train", "--engine", "torch", "--device", "cpu", "--no-progress",
                    "--out", tmp_path / "ddp", "--data", data, "--cell", "gru", "--hidden-size", "12",
                    "--batch-size", "4", "--seq-len", "8", "--optimizer", "sgd", "--lr", "0.5",
                    "--max-steps", "4", "--eval-every", "4", "--log-every", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("rnnlab train: engine torch (cpu, DDP 2 processes (gloo), 2 of N=4 streams") == 1, \
        proc.stdout
    assert proc.stdout.count("step 4: train") == 1
    written = {p.name for p in (tmp_path / "ddp").iterdir()} - {"data.ids"}    # data.ids: rank 0's encoded text
    assert written == {"best.safetensors", "latest.safetensors", "metrics.jsonl"}, written
    assert snapshot.load(tmp_path / "ddp" / "latest.safetensors").state[0].shape == (1, 4, 12)  # the global state

    def quiet(*a, **k):
        pass
    opts = {"device": "cpu"}
    train(None, None, tmp_path / "ddp", "torch", resume=True, overrides={"max_steps": 8}, progress=False, log=quiet,
          engine_options=opts)
    mcfg = ModelConfig(cell="gru", hidden_size=12)
    tcfg = TrainConfig(data=str(data), batch_size=4, seq_len=8, optimizer="sgd", lr=0.5, max_steps=8, eval_every=4,
                       log_every=2)
    train(mcfg, tcfg, tmp_path / "one", "torch", progress=False, log=quiet, engine_options=opts)
    a = snapshot.load(tmp_path / "ddp" / "latest.safetensors")
    b = snapshot.load(tmp_path / "one" / "latest.safetensors")
    assert a.step == b.step == 8
    for k in b.params:
        assert np.abs(a.params[k] - b.params[k]).max() <= 1e-6, k
    rows = [json.loads(ln) for ln in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["changed"] for r in rows if "changed" in r] == [{"max_steps": [4, 8]}]   # the resume's one change
    steps = [r["step"] for r in rows if "changed" not in r]
    assert steps == [2, 4, 4, 6, 8, 8], steps                    # each line once: rank 1 wrote nothing


@pytest.mark.parametrize("command", ["classify", "seq2seq"])
def test_torchrun_task_equals_one_process_on_the_same_global_batch(tmp_path, command):
    """`torchrun -m rnnlab classify` (and `seq2seq train`) with 2 gloo processes, each training half of every
    batch's rows, ends where one process ends on the same global batches: float32, 1e-6; only rank 0 wrote."""
    from rnnlab.tasks import data as tables, synthetic
    task, words = ("parity", ["classify"]) if command == "classify" else ("reverse", ["seq2seq", "train"])
    table = tmp_path / "t.tsv"
    tables.write_tsv(table, synthetic.HEADERS[task], synthetic.generate(task, 400, 0))
    flags = ["--engine", "torch", "--device", "cpu", "--no-progress", "--data", table, "--cell", "lstm",
             "--hidden-size", "12", "--num-layers", "2", "--batch-size", "8", "--optimizer", "sgd", "--lr", "0.5",
             "--max-steps", "6", "--eval-every", "3", "--log-every", "3"]
    proc = torchrun("-m", "rnnlab", *words, *flags, "--out", tmp_path / "ddp")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "DDP 2 processes (gloo)" in proc.stdout and proc.stdout.count("done: step 6") == 1, proc.stdout
    one = subprocess.run([sys.executable, "-m", "rnnlab", *words, *map(str, flags), "--out", str(tmp_path / "one")],
                         env=env(), capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert one.returncode == 0, one.stderr[-3000:]
    a = snapshot.load(tmp_path / "ddp" / "latest.safetensors", command)
    b = snapshot.load(tmp_path / "one" / "latest.safetensors", command)
    assert a.step == b.step == 6
    for k in b.params:
        assert np.abs(a.params[k] - b.params[k]).max() <= 1e-6, k
    assert a.extra["metrics"]["loss"] == pytest.approx(b.extra["metrics"]["loss"], abs=1e-5)


def test_streams_that_do_not_divide_among_processes_are_a_user_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(UserError, match="--batch-size 3 streams cannot be shared evenly by the 2 processes"):
        make_engine("torch", ModelConfig(vocab_size=5), TrainConfig(batch_size=3), device="cpu")
    with pytest.raises(UserError, match="NumPy engine cannot train distributed"):
        make_engine("numpy", ModelConfig(vocab_size=5), TrainConfig(batch_size=4))


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "frozen"])
def test_a_dead_or_silent_peer_stops_the_survivor_with_an_error(tmp_path, how):
    """Two processes started by hand, as on two machines (no torchrun to notice a death). Rank 1 is killed
    (its sockets close) or frozen (its sockets stay open, it just never answers): rank 0 must exit with a one-line
    error within the collective timeout + 10 s, not hang."""
    timeout = 3
    port = str(free_port())
    cmd = [sys.executable, "-m", "rnnlab", "train", "--engine", "torch", "--device", "cpu", "--no-progress",
           "--data", corpus(tmp_path), "--cell", "rnn", "--hidden-size", "8", "--batch-size", "2", "--seq-len", "8",
           "--max-steps", "100000", "--eval-every", "5", "--ddp-timeout", str(timeout), "--out", tmp_path / "run"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env=env(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, WORLD_SIZE="2", RANK=str(r),
                                      LOCAL_RANK=str(r), TMPDIR=str(tmp_path)))
             for r in (0, 1)]
    try:
        assert procs[0].stdout.readline().startswith("rnnlab train: engine torch")   # both have joined
        deadline = time.monotonic() + 60
        while not (tmp_path / "run" / "latest.safetensors").exists():                # 5 steps done: training
            assert procs[0].poll() is None and time.monotonic() < deadline, procs[0].stderr.read()
            time.sleep(0.1)
        time.sleep(0.3)
        procs[1].send_signal(how)
        t = time.monotonic()
        procs[0].wait(timeout=timeout + 10)
        elapsed = time.monotonic() - t
        err = procs[0].stderr.read()
        assert_user_error(subprocess.CompletedProcess(cmd, procs[0].returncode, "", err),
                          "distributed training stopped", "--ddp-timeout 3 s")
        assert elapsed <= timeout + 10
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            p.stdout.close()
            p.stderr.close()
