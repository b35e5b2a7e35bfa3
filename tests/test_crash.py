"""Crash safety, the short version of bench/kill_test.py (200 kills on demand): SIGKILL a training run 5 times at
random moments, including mid-save; every time the latest checkpoint loads and --resume continues, and the run
finished after the kills equals an uninterrupted one bit for bit."""
import subprocess
import sys

from helpers import ROOT


def test_five_random_kills_lose_nothing():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "kill_test.py"), "--kills", "5", "--hidden-size", "32",
                           "--num-layers", "1", "--anytime-max", "2.5", "--seed", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| 5 | 5/5 |" in proc.stdout and "bitwise equal (max |diff| 0)" in proc.stdout, proc.stdout
