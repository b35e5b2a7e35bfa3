"""SIGINT and SIGTERM sent to a real `rnnlab train` process: the first finishes the step, writes a checkpoint, says
how to resume and exits 130/143, and the resumed run is bit-for-bit the uninterrupted one; a second Ctrl-C exits at
once and leaves the last good checkpoint untouched."""
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from helpers import ROOT, rnnlab, tree_digest, word_corpus
from rnnlab import snapshot

MODEL = ("--cell", "lstm", "--hidden-size", 16, "--num-layers", 2, "--dropout", 0.2, "--batch-size", 4,
         "--seq-len", 8, "--dtype", "float64", "--schedule", "constant", "--eval-every", 1, "--no-progress")
# The real CLI with every training step after the first SLOW_AFTER ones sleeping SLOW_FOR seconds: a step that is
# still running when the signals come, without burning CPU.
SLOW_DRIVER = """
import os, sys, time
from rnnlab.engines.numpy.engine import Engine
real, calls = Engine.train_step, [0]
def slow(self, *a):
    calls[0] += 1
    if calls[0] > int(os.environ["SLOW_AFTER"]):
        time.sleep(float(os.environ["SLOW_FOR"]))
    return real(self, *a)
Engine.train_step = slow
from rnnlab.cli import main
sys.exit(main(sys.argv[1:]))
"""


class Proc:
    """A CLI subprocess whose stdout and stderr are collected line by line as they come."""
    def __init__(self, *args, driver=None, env=None):
        cmd = [sys.executable, "-c", driver] if driver else [sys.executable, "-m", "rnnlab"]
        self.p = subprocess.Popen(cmd + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1",
                                                      OPENBLAS_NUM_THREADS="1", **(env or {})))
        self.out, self.err = [], []
        self._threads = [threading.Thread(target=self._read, args=(s, dst), daemon=True)
                         for s, dst in ((self.p.stdout, self.out), (self.p.stderr, self.err))]
        for t in self._threads:
            t.start()

    @staticmethod
    def _read(stream, dst):
        for line in stream:
            dst.append(line)

    def wait_for(self, cond, what, timeout=60):
        end = time.monotonic() + timeout
        while not cond():
            assert self.p.poll() is None, f"exited ({self.p.returncode}) before {what}: {''.join(self.err)}"
            assert time.monotonic() < end, f"timed out waiting for {what}"
            time.sleep(0.01)

    def finish(self, timeout=60):
        rc = self.p.wait(timeout=timeout)
        for t in self._threads:
            t.join(5)
        return rc, "".join(self.out), "".join(self.err)


def corpus(tmp_path):
    return word_corpus(tmp_path)


def params_equal(a, b):
    sa, sb = snapshot.load(a), snapshot.load(b)
    same = sa.step == sb.step and sa.rng_state == sb.rng_state
    for ga, gb in ((sa.params, sb.params), (sa.opt_state, sb.opt_state)):
        same = same and ga.keys() == gb.keys() and all(np.array_equal(ga[k], gb[k]) for k in ga)
    return same and all(np.array_equal(x, y) for x, y in zip(sa.state, sb.state))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_checkpoints_says_how_to_resume_and_resumes_exactly(tmp_path, sig):
    data, run = corpus(tmp_path), tmp_path / "run"
    proc = Proc("train", "--data", data, "--out", run, *MODEL, "--max-steps", 100_000)
    proc.wait_for(lambda: (run / "latest.safetensors").exists(), "the first checkpoint")   # inside the loop now
    proc.p.send_signal(sig)
    rc, out, err = proc.finish()
    assert rc == 128 + sig, (rc, err)
    assert "Traceback" not in out + err
    assert "interrupted: finishing this step and writing a checkpoint" in err
    last = out.strip().splitlines()[-1]
    assert last.startswith("stopped at step ") and f"continue with: rnnlab train --resume {run}" in last, out
    step = int(last.split()[3].rstrip(";"))
    assert snapshot.load(run / "latest.safetensors").step == step
    assert not [p.name for p in run.iterdir() if ".tmp" in p.name]

    # Resumed to step+4, the run equals one that was never interrupted, bit for bit.
    resumed = rnnlab("train", "--resume", run, "--max-steps", step + 4, "--no-progress")
    assert resumed.returncode == 0 and f"resuming at step {step}," in resumed.stdout, resumed.stderr
    straight = rnnlab("train", "--data", data, "--out", tmp_path / "straight", *MODEL, "--max-steps", step + 4)
    assert straight.returncode == 0, straight.stderr
    assert params_equal(run / "latest.safetensors", tmp_path / "straight" / "latest.safetensors")


def test_second_sigint_exits_at_once_and_leaves_the_checkpoint(tmp_path):
    data, run = corpus(tmp_path), tmp_path / "run"
    # Step 1 runs normally and checkpoints; step 2 takes 60 s, so the signals come in the middle of a step.
    proc = Proc("train", "--data", data, "--out", run, *MODEL, "--max-steps", 100_000, driver=SLOW_DRIVER,
                env={"SLOW_AFTER": "1", "SLOW_FOR": "60"})
    metrics = run / "metrics.jsonl"
    proc.wait_for(lambda: metrics.exists() and metrics.read_text().endswith("\n"), "step 1's checkpoints")
    before = tree_digest(run)
    proc.p.send_signal(signal.SIGINT)
    proc.wait_for(lambda: "finishing this step" in "".join(proc.err), "the first signal's message")
    t0 = time.monotonic()
    proc.p.send_signal(signal.SIGINT)
    rc, out, err = proc.finish(timeout=30)         # far less than the 60 s the step would still take
    assert rc == 130 and time.monotonic() - t0 < 30
    assert "interrupted again: exiting now; the last checkpoint on disk is intact" in err
    assert "stopped at step" not in out and "Traceback" not in out + err
    assert tree_digest(run) == before              # not a byte changed, no temp file left
    assert snapshot.load(run / "latest.safetensors").step == 1
    again = rnnlab("train", "--resume", run, "--max-steps", 3, "--no-progress")
    assert again.returncode == 0 and "resuming at step 1," in again.stdout, again.stderr
