"""`rnnlab bench --quick` runs and prints every table (no speed thresholds here: speed claims live in the tables
themselves, measured in one run; see bench/RESULTS.md)."""
from helpers import assert_user_error, rnnlab
from rnnlab import cells


def test_bench_quick_prints_every_table():
    proc = rnnlab("bench", "--quick", "--seconds", "0.1", timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for heading in ("GEMM peak", "## Training chars/s", "## Sampling chars/s", "## Scaling",
                    "## Linear-recurrence cells vs the LSTM", "peak RSS"):
        assert heading in out, (heading, out)
    training = [ln for ln in out.split("## Training chars/s")[1].split("##")[0].splitlines() if ln.startswith("| ")]
    assert len(training) == 1 + len(cells.NAMES) * 2, training   # header + every cell x 2 quick configs
    scan = [ln for ln in out.split("## Linear-recurrence cells")[1].split("##")[0].splitlines() if ln.startswith("| ")]
    cells_scan = ["lstm"] + [c for c in cells.NAMES if cells.get(c).torch == "scan"]
    rows = [ln.split(" | ") for ln in scan[1:]]
    assert [r[0][2:] for r in rows] == cells_scan * 4, scan        # each cell at the 2 quick T, in the 2 stacks
    assert {(r[1], r[2]) for r in rows} == {("1", "0"), ("2", "8")}, scan
    for stack in (rows[:2 * len(cells_scan)], rows[2 * len(cells_scan):]):
        params = [int(r[4].replace(",", "")) for r in stack]
        assert max(params) <= params[0] and min(params) > 0.95 * params[0], params   # the stack's LSTM budget
    assert "Traceback" not in proc.stderr


def test_bench_rejects_unknown_table():
    assert_user_error(rnnlab("bench", "--only", "nope"), "--only", "nope")


def test_time_to_quality_prints_the_curve_and_the_plain_script(tmp_path):
    """A 2-second budget on a small text: the recipe's curve (training seconds within the budget plus one step, and
    behind the wall clock), the plain script's row measured in the same run, and the references."""
    import pytest
    pytest.importorskip("torch")
    from helpers import word_corpus
    data = word_corpus(tmp_path, 4000)
    proc = rnnlab("bench", "--time-to-quality", "--budget", "2", "--plain", "--data", data, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "--preset shakespeare-quick" in out and "plain PyTorch LSTM script" in out and "nanoGPT" in out, out
    curve = [ln.split("|")[1:5] for ln in out.split("| training s |")[1].split("\n\n")[0].splitlines()[2:]]
    assert curve, out
    train_s, wall_s, val = (float(c) for c in curve[-1][:3])
    assert 2 <= train_s < 4 and wall_s >= train_s and 0 < val < 10, curve


def test_time_to_quality_judges_a_target_only_on_its_own_budget():
    from rnnlab.benchmarks.quality import report
    curve = [(40.0, 41.0, 1.61), (75.2, 80.0, 1.44)]                # issue 13's targets: 1.45 and 1.40
    assert report(curve, 75)[-1].endswith("<= 1.45 nats/char within 75 s: best 1.4400 -> holds")
    assert report([(75.0, 80.0, 1.46)], 75)[-1].endswith("best 1.4600 -> MISSED")
    assert not any("target" in ln for ln in report(curve, 120))     # a 120 s run's early points judge nothing
    assert report([(600.0, 610.0, 1.40)], 600)[-1].endswith("<= 1.4 nats/char within 600 s: best 1.4000 -> holds")
    assert report([(600.0, 610.0, 1.41)], 600)[-1].endswith("best 1.4100 -> MISSED")


def test_bench_contention_quick_prints_each_run_and_its_ratio():
    """`bench --only contention --quick`: train alone and two at once, sample alone and beside a busy loop, each
    engine; every row has its chars/s and ratios (no thresholds here: two shared cores make them noise)."""
    import pytest
    pytest.importorskip("torch")
    proc = rnnlab("bench", "--only", "contention", "--quick", timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = [ln.split("|")[1:-1] for ln in proc.stdout.split("## Contention")[1].splitlines() if ln.startswith("| ")]
    assert [r[:3] for r in rows[1:]] == [[" train ", " numpy ", " a second train "],
                                         [" train ", " torch ", " a second train "],
                                         [" sample ", " numpy ", " a busy loop "],
                                         [" sample ", " torch ", " a busy loop "]], rows
    for r in rows[1:]:
        rates = [float(x.replace(",", "")) for x in [r[3]] + r[4].split("/")]
        ratios = [float(x) for x in r[5].split("/")]
        assert all(x > 0 for x in rates) and len(ratios) == (2 if "train" in r[0] else 1), r


def test_bench_bf16_quick():
    """`bench --only bf16 --quick`: GEMM, training chars/s and the loss in both precisions, or why not here."""
    import pytest
    pytest.importorskip("torch")
    from rnnlab.engines.torch.device import cpu_bf16
    proc = rnnlab("bench", "--only", "bf16", "--quick", timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.split("## bf16")[1]
    if not cpu_bf16():
        assert "skipped" in out
        return
    rows = [ln for ln in out.splitlines() if ln.startswith("| ")]
    assert [r.split("|")[1].split(",")[0].split(" after")[0].strip() for r in rows[1:]] == \
        ["torch.matmul 512x512", "lstm H=64 L=1 B=8 T=32 training", "val nats/char"], rows
    assert "after 5 steps" in rows[-1]
