"""`rnnlab bench --quick` runs and prints every table (no speed thresholds here: speed claims live in the tables
themselves, measured in one run; see bench/RESULTS.md)."""
from helpers import assert_user_error, rnnlab


def test_bench_quick_prints_every_table():
    proc = rnnlab("bench", "--quick", "--seconds", "0.1", timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for heading in ("GEMM peak", "## Training chars/s", "## Sampling chars/s", "## Scaling", "peak RSS"):
        assert heading in out, (heading, out)
    training = [ln for ln in out.split("## Training chars/s")[1].split("##")[0].splitlines() if ln.startswith("| ")]
    assert len(training) == 1 + 3 * 2, training        # header + 3 cells x 2 quick configs
    assert "Traceback" not in proc.stderr


def test_bench_rejects_unknown_table():
    assert_user_error(rnnlab("bench", "--only", "nope"), "--only", "nope")
