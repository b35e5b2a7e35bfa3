"""Threads that fit the machine (rnnlab/threads.py, rnnlab/governor.py): the CPUs a process may use, the count
auto chooses per job, the wait policy set before NumPy and torch load, --threads on the commands and their first
lines, and the governor that drops a training run to one thread while a second one is slower."""
import doctest
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import ROOT, assert_user_error, rnnlab, word_corpus
from safetensors.numpy import load_file

from rnnlab import governor, snapshot, threads
from rnnlab.errors import UserError


def test_docstring_examples():
    for mod in (threads, governor):
        result = doctest.testmod(mod)
        assert result.attempted > 0 and result.failed == 0, mod.__name__


def test_auto_takes_one_thread_for_one_sequence_and_the_usable_cpus_else(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert threads.choose(0, 1, cpus=8) == 1                              # one sequence: a GEMV a step
    assert threads.choose(0, 32, cpus=8) == 8                             # a batch
    assert threads.choose(3, 1, cpus=8) == 3                              # asked for: taken as given
    monkeypatch.setenv("OMP_NUM_THREADS", "2")                           # the user's cap
    assert threads.choose(0, 32) == 2
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")                          # torchrun: each rank its share
    assert threads.choose(0, 32) == 1
    for bad in (-1, 10 ** 20):
        with pytest.raises(UserError, match="--threads"):
            threads.choose(bad, 32)


def test_cgroup_quota_v2_and_v1(tmp_path):
    proc = tmp_path / "cgroup"
    (tmp_path / "fs" / "job").mkdir(parents=True)
    proc.write_text("0::/job\n")
    (tmp_path / "fs" / "job" / "cpu.max").write_text("150000 100000\n")
    assert threads.cgroup_cpus(tmp_path / "fs", str(proc)) == 1.5
    (tmp_path / "fs" / "job" / "cpu.max").write_text("max 100000\n")
    assert threads.cgroup_cpus(tmp_path / "fs", str(proc)) is None
    v1 = tmp_path / "v1" / "cpu,cpuacct"
    v1.mkdir(parents=True)
    proc.write_text("4:cpu,cpuacct:/\n1:name=systemd:/\n")
    (v1 / "cpu.cfs_quota_us").write_text("200000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert threads.cgroup_cpus(tmp_path / "v1", str(proc)) == 2.0
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    assert threads.cgroup_cpus(tmp_path / "v1", str(proc)) is None
    assert threads.cgroup_cpus(tmp_path / "none", str(tmp_path / "missing")) is None


def test_usable_cpus_is_the_affinity_capped_by_the_quota(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(threads, "cgroup_cpus", lambda: 1.5)
    assert threads.usable_cpus() == 2
    monkeypatch.setattr(threads, "cgroup_cpus", lambda: None)
    assert threads.usable_cpus() == 4


def test_prepare_env_keeps_what_the_user_set():
    env = {"GOMP_SPINCOUNT": "5"}
    added = threads.prepare_env(env)
    assert env["GOMP_SPINCOUNT"] == "5" and "GOMP_SPINCOUNT" not in added
    assert set(added) == set(threads.WAIT_ENV) - {"GOMP_SPINCOUNT"} and all(env[k] == v for k, v in added.items())


def test_the_command_line_sets_the_wait_policy_before_numpy_and_torch_load():
    code = ("import sys, rnnlab.threads as t\nseen = {}\norig = t.prepare_env\n"
            "def spy(environ=None):\n    seen.update(numpy='numpy' in sys.modules, torch='torch' in sys.modules)\n"
            "    return orig(environ)\nt.prepare_env = spy\nimport os, rnnlab.cli\n"
            "print(seen, 'numpy' in sys.modules, os.environ['GOMP_SPINCOUNT'])")
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    out = subprocess.run([sys.executable, "-c", code], env=dict(env, PYTHONPATH=str(ROOT)), capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["{'numpy':", "False,", "'torch':", "False}", "True", threads.WAIT_ENV["GOMP_SPINCOUNT"]], out


def test_use_sizes_the_blas_and_torch_pools():
    torch = pytest.importorskip("torch")
    from threadpoolctl import threadpool_info, threadpool_limits
    before = torch.get_num_threads()
    try:
        with threadpool_limits(limits=2):       # restores the BLAS and OpenMP pools afterwards
            assert threads.use(1) == 1
            assert all(p["num_threads"] == 1 for p in threadpool_info())
            assert torch.get_num_threads() == 1 and threads.current("torch") == threads.current("numpy") == 1
            assert threads.describe("numpy") == "1 thread"
    finally:
        torch.set_num_threads(before)


def fake_governor(n=2):
    switches = []
    g = governor.Governor(n, use=lambda k: switches.append(k) or k, clock=lambda: clock[0])
    clock = [0.0]
    return g, switches, clock


def feed(g, seconds, times):
    for _ in range(times):
        g.observe(seconds)


def test_governor_keeps_two_threads_where_they_are_faster_and_backs_off():
    g, switches, clock = fake_governor()
    feed(g, 0.1, g.WARM)                  # the trial starts on 1 thread
    feed(g, 0.18, g.TRIAL + 1)
    feed(g, 0.1, g.TRIAL + 1)
    assert g.threads == 2 and switches == [1, 2] and g.hold == g.HOLD
    clock[0] = g.until
    feed(g, 0.1, 1)                       # hold over: trial again, same answer, hold doubled
    feed(g, 0.18, g.TRIAL + 1)
    feed(g, 0.1, g.TRIAL + 1)
    assert g.threads == 2 and g.hold == 2 * g.HOLD


def test_governor_drops_to_one_thread_when_two_collapse_and_cuts_the_trial_short():
    g, switches, clock = fake_governor()
    feed(g, 0.1, g.WARM)
    feed(g, 0.2, g.TRIAL + 1)             # 1 thread: 0.2 s a step
    feed(g, 3.0, 1)                       # 2 threads: 3 s (another job holds a core): the trial ends at once
    assert g.threads == 1 and g.trial is None and switches == [1, 2, 1] and g.ran_on == 2
    feed(g, 0.6, 10)                      # on 1 thread, slower steps (more load) start no trial
    assert g.threads == 1 and g.trial is None


def test_governor_tries_again_when_the_steps_slow_down():
    g, switches, clock = fake_governor()
    feed(g, 0.1, g.WARM)
    feed(g, 0.2, g.TRIAL + 1)
    feed(g, 0.1, g.TRIAL + 1)
    assert g.threads == 2
    feed(g, 2.0, g.SLOW)                  # another job started: a trial at once, before the hold is over
    assert g.trial is not None and g.threads == 1


def test_governor_leaves_a_chosen_count_alone():
    g = governor.Governor(2, adapt=False, use=lambda k: pytest.fail("switched"))
    feed(g, 1.0, 20)
    assert g.threads == 2 and g.ran_on == 2


@pytest.mark.parametrize("exact, slower", [(True, 1.0), (False, 1.0), (False, 20.0)])
def test_governor_checks_exactness_once_before_its_first_switch(exact, slower):
    """--adapt-threads auto: the check runs once, when the first trial is due (not before); rounding that differs
    keeps the run on n threads for good, unless n threads collapsed at the check (then it adapts and says the run
    is not bit-reproducible); the verdict is logged."""
    g, switches, clock = fake_governor()
    calls, said = [], []
    g.exact, g.log = (lambda: calls.append(1) or (exact, slower)), said.append
    adapts = exact or slower > g.COLLAPSE
    feed(g, 0.1, g.WARM - 1)
    assert calls == [] and said == []
    feed(g, 0.1, 1)                                                       # the first trial is due
    assert calls == [1] and len(said) == 1 and ("adapting" in said[0]) is adapts
    assert ("not bit-reproducible" in said[0]) is (adapts and not exact)
    assert switches == ([1] if adapts else []) and g.adapt is adapts
    feed(g, 3.0, 20)                                                      # slow steps: trials only if adapting
    assert calls == [1] and (len(switches) > 1 if adapts else switches == [])


def test_threads_flag_and_the_first_lines(tmp_path):
    data = word_corpus(tmp_path)
    common = ["--data", data, "--hidden-size", 8, "--batch-size", 4, "--seq-len", 8, "--max-steps", 2,
              "--log-every", 1, "--no-progress"]
    proc = rnnlab("train", *common, "--out", tmp_path / "one", "--threads", 1)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("rnnlab train: engine numpy (cpu, float32) on 1 thread | ")
    proc = rnnlab("train", *common, "--out", tmp_path / "auto", "--adapt-threads", "off")
    assert proc.returncode == 0, proc.stderr
    n = threads.choose(0, 4)                                             # the batch of 4 on this machine
    assert f" on {n} thread{'s' if n > 1 else ''} (auto) | " in proc.stdout.splitlines()[0], proc.stdout
    rows = [json.loads(ln) for ln in (tmp_path / "auto" / "metrics.jsonl").read_text().splitlines()]
    assert [r["threads"] for r in rows if "loss" in r and "lr" in r] == [n, n]     # a fixed count: reproducible
    proc = rnnlab("train", *common, "--out", tmp_path / "adapt", "--adapt-threads")
    assert (" (auto, adapting) | " if n > 1 else " (auto) | ") in proc.stdout.splitlines()[0], proc.stdout
    proc = rnnlab("train", *common, "--out", tmp_path / "default", "--max-steps", 6)   # auto: adapts if exact
    lines = proc.stdout.splitlines()
    assert (" (auto, adapting if 1 thread gives the same bits) | " if n > 1 else " (auto) | ") in lines[0], lines
    verdicts = [ln for ln in lines if ln.startswith("threads: ")]         # the check, before the first trial
    assert verdicts in ([f"threads: a step gives the same bits on 1 and {n}: adapting to the load"],
                        [f"threads: 1 and {n} round differently here: held on {n} (bit-reproducible; "
                         f"--adapt-threads on to adapt anyway)"]) if n > 1 else verdicts == [], lines
    proc = rnnlab("sample", tmp_path / "auto", "--length", 5, "--threads", 2)
    assert proc.returncode == 0 and proc.stderr.splitlines()[0] == "rnnlab sample: engine numpy (cpu) on 2 threads"
    proc = rnnlab("eval", tmp_path / "auto", "--data", data)
    assert proc.returncode == 0 and proc.stderr.splitlines()[0] == "rnnlab eval: engine numpy (cpu) on 1 thread"
    assert "nats/char" in proc.stdout
    assert_user_error(rnnlab("sample", tmp_path / "auto", "--threads", -1), "--threads")


def test_governor_holds_at_least_many_times_a_slow_trial():
    g, switches, clock = fake_governor()
    feed(g, 3.0, g.WARM)
    feed(g, 4.0, g.TRIAL + 1)             # a big model: 4 s a step on 1 thread, 3 s on 2
    feed(g, 3.0, g.TRIAL + 1)
    assert g.threads == 2 and g.until == g.COST * (4.0 + 3.0) * (g.TRIAL + 1)


@pytest.fixture
def keep_threads():
    """Put this process's pools back as they were after a test that trains in-process on other counts."""
    blas = threads.current("numpy")
    torch = sys.modules.get("torch")
    intra = torch.get_num_threads() if torch is not None else None
    yield
    threads.use(blas)
    if intra is not None:
        torch.set_num_threads(intra)


class CountingEngine:
    """A stand-in engine whose arithmetic may depend on the thread count it runs on (as a BLAS's may)."""
    name, world_size = "fake", 1

    def __init__(self, rounds_by_threads: bool):
        self.rounds, self.n = rounds_by_threads, 2

    def use(self, k):
        self.n = k
        return k

    def load_params(self, arrays):
        return {k: np.array(v) for k, v in arrays.items()}

    load_opt_state = load_params

    def export(self, arrays):
        return arrays

    def export_state(self, state):
        return state

    def train_step(self, p, o, batch, state, lr, rng):
        noise = rng.standard_normal()                                   # draws from the run's RNG, as dropout does
        p["w"] -= lr * (1.0 + (1e-12 * self.n if self.rounds else 0.0)) + 0 * noise
        o["step"] += 1
        return {"loss": float(p["w"].sum())}, (state[0] + 1,)

    def evaluate(self, p, batch, state):
        return float(p["w"].sum()), state


@pytest.mark.parametrize("rounds", [False, True])
def test_exact_on_one_compares_a_step_on_copies_and_leaves_the_run_alone(rounds):
    eng = CountingEngine(rounds)
    params, opt = {"w": np.ones(3)}, {"step": np.zeros(())}
    rng = np.random.default_rng(5)
    before = rng.bit_generator.state
    same, slower = governor.exact_on_one(eng, params, opt, {}, (np.zeros(2),), 0.1, rng, 2, use=eng.use)
    assert same is (not rounds) and slower > 0
    assert np.array_equal(params["w"], np.ones(3)) and opt["step"] == 0 and rng.bit_generator.state == before
    assert eng.n == 2                                                    # the pools are left on n


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_exact_on_one_tells_the_truth_about_the_engine_here(engine, tmp_path, keep_threads):
    """What the check says of a step on 1 and 2 threads is what two runs on 1 and on 2 threads do: the same
    checkpoint bit for bit, or not."""
    if engine == "torch":
        pytest.importorskip("torch")
    from rnnlab import lm
    from rnnlab.config import ModelConfig, TrainConfig
    from rnnlab.engines import make_engine
    data = word_corpus(tmp_path)
    mcfg = ModelConfig(cell="lstm", hidden_size=64, num_layers=2, embed_dim=16, dropout=0.2)
    tcfg = TrainConfig(data=str(data), batch_size=8, seq_len=16, max_steps=6, eval_every=6, lr=0.01,
                       optimizer="adam", clip_norm=1.0)
    saved = {}
    for n in (1, 2):
        lm.train(mcfg, tcfg, tmp_path / f"t{n}", engine, progress=False, log=lambda *a, **k: None,
                 engine_options={"device": "cpu", "threads": n, "adapt_threads": "off"})
        saved[n] = load_file(tmp_path / f"t{n}" / "latest.safetensors")
    runs_agree = all(np.array_equal(saved[1][k], saved[2][k]) for k in saved[1])
    snap = snapshot.load(tmp_path / "t1" / "latest.safetensors", "lm")
    m = snap.mcfg
    eng = make_engine(engine, m, tcfg, device="cpu", threads=2)
    params = eng.load_params(snap.params)
    opt = eng.load_opt_state(snap.opt_state)
    rng = np.random.default_rng(0)
    x = rng.integers(0, m.vocab_size, (8, 17))
    batch = {"x": x[:, :-1], "y": x[:, 1:]}
    assert governor.exact_on_one(eng, params, opt, batch, eng.zero_state(8), 0.01, rng, 2)[0] == runs_agree


def test_an_adapting_run_is_bit_reproducible_where_the_check_says_so(tmp_path, monkeypatch, keep_threads):
    """--adapt-threads auto on the torch engine: the governor is made to switch between 1 and 2 threads every
    few steps; where the start-up check let it adapt, the model equals a run held on 1 thread, bit for bit."""
    pytest.importorskip("torch")
    from rnnlab import lm
    from rnnlab.config import ModelConfig, TrainConfig
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    for name, value in (("WARM", 1), ("TRIAL", 1), ("HOLD", 0.0), ("COST", 0)):
        monkeypatch.setattr(governor.Governor, name, value)
    data = word_corpus(tmp_path)
    mcfg = ModelConfig(cell="lstm", hidden_size=64, num_layers=2, embed_dim=16, dropout=0.2)
    tcfg = TrainConfig(data=str(data), batch_size=8, seq_len=16, max_steps=12, eval_every=6, log_every=1,
                       lr=0.01, optimizer="adam", clip_norm=1.0)
    lines = []
    lm.train(mcfg, tcfg, tmp_path / "adapt", "torch", progress=False, log=lambda s, *a, **k: lines.append(s),
             engine_options={"device": "cpu", "threads": 0, "adapt_threads": "auto"})
    assert "(auto, adapting if 1 thread gives the same bits)" in lines[0], lines[0]
    if any(ln.startswith("threads: 1 and 2 round differently here") for ln in lines):
        pytest.skip("torch rounds differently on 1 and 2 threads here: the run held its count")
    assert "threads: a step gives the same bits on 1 and 2: adapting to the load" in lines, lines
    rows = [json.loads(ln) for ln in (tmp_path / "adapt" / "metrics.jsonl").read_text().splitlines()]
    assert {r["threads"] for r in rows if "lr" in r} == {1, 2}, rows                 # it did switch
    lm.train(mcfg, tcfg, tmp_path / "one", "torch", progress=False, log=lambda *a, **k: None,
             engine_options={"device": "cpu", "threads": 1})
    a, b = (load_file(tmp_path / d / "latest.safetensors") for d in ("adapt", "one"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
