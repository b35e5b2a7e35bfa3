"""Crash safety: SIGKILL a training run at random moments, many times, and check that nothing is ever lost.

    .venv/bin/python bench/kill_test.py                 # 200 kills (about 10 minutes on 2 cores)
    .venv/bin/python bench/kill_test.py --quick         # 10 kills
    .venv/bin/python bench/kill_test.py --kills 5 --hidden-size 32 --num-layers 1     # what CI runs

A run starts with one uninterrupted step; then every victim is `python -m rnnlab train --resume` on a small
generated corpus, checkpointing at every step (--eval-every 1) a 2-layer float64 LSTM whose checkpoints are about
20 MB, so a good share of the process's life is spent inside checkpoint.save. Each kill is timed one of two ways,
at random:
  anytime   a uniform delay after the start (0 to --anytime-max s): start-up, loading the checkpoint, encoding
            the text, training, evaluating, saving;
  in-save   wait until the victim's 1st, 2nd, 3rd or 4th checkpoint save has begun (its temp file appeared), then
            a uniform 0-30 ms more.
After each SIGKILL the script checks, in this process:
  - latest.safetensors (and best.safetensors) load with snapshot.load: complete, checksum verified;
  - the step never goes backwards;
  - the previous victim, a `--resume`, printed "resuming at step K" for the K on disk when it started, unless it
    was killed before getting that far; any victim that exits by itself before its kill is a failure.
A kill "survives" when all of that holds. Kills that left a temp file behind were provably mid-save; kills that
left a metrics line cut short were mid-append. At the end one more `--resume` runs to completion, and its
weights, optimiser state and hidden state are compared with an uninterrupted run of the same configuration to the
same step: float64 resume is exact, so they must be bit-for-bit equal after all those kills.
Exit status 0 only if every kill survived and the final comparison is bitwise equal.
"""
from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rnnlab import snapshot  # noqa: E402
from rnnlab.errors import UserError  # noqa: E402

NEVER = 10 ** 9          # --max-steps for victims: they never finish by themselves
RESUMED = re.compile(r"resuming at step \d+")


def corpus(path: Path, n_chars: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    words = ["the ", "cat ", "sat ", "on ", "a ", "mat. ", "and ", "dog ", "ran\n", "quick ", "brown ", "fox "]
    path.write_text("".join(rng.choice(words, size=n_chars // 4))[:n_chars], encoding="utf-8")


# One BLAS thread: the matrices are tiny, and on a shared machine extra BLAS threads only fight each other.
ENV = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
           MKL_NUM_THREADS="1")


def spawn(args, log: Path) -> subprocess.Popen:
    with open(log, "w") as f:
        return subprocess.Popen([sys.executable, "-m", "rnnlab", *map(str, args)], stdout=f, stderr=subprocess.STDOUT,
                                env=ENV, cwd=log.parent)


def run_cli(args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rnnlab", *map(str, args)], env=ENV, capture_output=True, text=True)


def checkpoint_temps(run: Path, pid: int) -> list:
    """The checkpoint temp files process `pid` has open in `run` (checkpoint.save names them .NAME.tmp-PID)."""
    try:
        return [n for n in os.listdir(run) if n.startswith((".latest", ".best")) and n.endswith(f".tmp-{pid}")]
    except FileNotFoundError:
        return []


def wait_for_save(run: Path, proc: subprocess.Popen, nth: int, timeout: float) -> bool:
    """Poll (1 ms) until the victim has begun its `nth` checkpoint save (its temp file appeared nth times)."""
    end, seen, before = time.monotonic() + timeout, 0, set()
    while time.monotonic() < end and proc.poll() is None:
        now = set(checkpoint_temps(run, proc.pid))
        seen += len(now - before)
        before = now
        if seen >= nth:
            return True
        time.sleep(0.001)
    return False


def check(run: Path) -> tuple:
    """(step on disk or None, problem or None): every checkpoint present must load."""
    step = None
    for name in ("latest.safetensors", "best.safetensors"):
        p = run / name
        if p.exists():
            try:
                s = snapshot.load(p)
            except UserError as e:
                return step, f"{name} does not load: {e}"
            if name == "latest.safetensors":
                step = s.step
    if step is None and (run / "best.safetensors").exists():
        return None, "best.safetensors exists without latest.safetensors"
    return step, None


def compare(a: Path, b: Path) -> float:
    """Largest |difference| over params, optimiser state and hidden state of two checkpoints (inf: mismatch)."""
    sa, sb = snapshot.load(a), snapshot.load(b)
    if sa.step != sb.step:
        return float("inf")
    worst = 0.0
    for ga, gb in ((sa.params, sb.params), (sa.opt_state, sb.opt_state),
                   (dict(enumerate(sa.state)), dict(enumerate(sb.state)))):
        if ga.keys() != gb.keys():
            return float("inf")
        for k in ga:
            if not np.array_equal(ga[k], gb[k]):
                worst = max(worst, float(np.max(np.abs(ga[k].astype(np.float64) - gb[k].astype(np.float64)))))
    return worst


def finish_and_compare(run: Path, ref: Path, data: Path, model: list, final_step: int):
    """Resume the battered run to `final_step`, train a fresh run to the same step without interruption (no
    checkpoints on the way: evaluation does not touch the training trajectory), and return the largest difference
    between them, or a string saying what failed."""
    fin = run_cli(["train", "--resume", run, "--max-steps", final_step, "--no-progress"])
    if fin.returncode != 0:
        return f"final resume failed (rc {fin.returncode}): {fin.stderr.strip()[-300:]}"
    refp = run_cli(["train", "--data", data, "--out", ref, *model, "--eval-every", NEVER, "--max-steps", final_step])
    if refp.returncode != 0:
        return f"reference run failed: {refp.stderr.strip()[-300:]}"
    return compare(run / "latest.safetensors", ref / "latest.safetensors")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="10 kills")
    ap.add_argument("--hidden-size", type=int, default=256)
    ap.add_argument("--num-layers", type=int, default=2)
    ap.add_argument("--anytime-max", type=float, default=4.0, help="longest 'anytime' delay, seconds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args(argv)
    kills = 10 if args.quick else args.kills
    rnd = random.Random(args.seed)

    tmp = Path(tempfile.mkdtemp(prefix="rnnlab-kill-"))
    data, run, ref = tmp / "corpus.txt", tmp / "run", tmp / "ref"
    corpus(data, 30_000, args.seed)
    model = ["--cell", "lstm", "--hidden-size", args.hidden_size, "--num-layers", args.num_layers, "--dropout", 0.1,
             "--batch-size", 2, "--seq-len", 8, "--val-frac", 0.01, "--dtype", "float64", "--lr", 3e-3,
             "--log-every", 1, "--no-progress"]
    resume = ["train", "--resume", run, "--max-steps", NEVER, "--no-progress"]
    # The run starts with one uninterrupted step, so every victim is a --resume with a checkpoint to protect.
    first = run_cli(["train", "--data", data, "--out", run, *model, "--eval-every", 1, "--max-steps", 1])
    if first.returncode != 0:
        print(first.stdout, first.stderr)
        return 1

    t0 = time.perf_counter()
    rows, failures = [], []
    prev_step = 1
    for i in range(kills):
        log = tmp / "victim.log"
        started_from = prev_step
        proc = spawn(resume, log)
        born = time.perf_counter()
        mode = rnd.choice(("anytime", "in-save"))
        if mode == "anytime":
            deadline = born + rnd.uniform(0.0, args.anytime_max)
            while proc.poll() is None and time.perf_counter() < deadline:
                time.sleep(0.002)
        elif wait_for_save(run, proc, rnd.randint(1, 4), timeout=60.0):
            time.sleep(rnd.uniform(0.0, 0.03))
        exited_alone = proc.poll() is not None
        if not exited_alone:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        life = time.perf_counter() - born
        mid_save = bool(checkpoint_temps(run, proc.pid))
        metrics = run / "metrics.jsonl"
        torn = metrics.exists() and metrics.stat().st_size > 0 and not metrics.read_bytes().endswith(b"\n")
        step, problem = check(run)
        text = log.read_text(errors="replace")
        resumed = f"resuming at step {started_from}," in text
        if exited_alone:
            problem = problem or f"victim exited by itself (rc {proc.returncode}): {text.strip()[-300:]}"
        if step is None:
            problem = problem or "latest.safetensors vanished"
        elif step < prev_step:
            problem = problem or f"step went back from {prev_step} to {step}"
        if "resuming at step" in text and not resumed:
            problem = problem or f"resumed from the wrong step: {RESUMED.findall(text)}"
        rows.append(dict(mode=mode, life=life, mid_save=mid_save, torn=torn, resumed=resumed,
                         advanced=step is not None and step > prev_step, ok=problem is None))
        if problem:
            failures.append(f"kill {i + 1}: {problem}")
        prev_step = step if step is not None else prev_step
        if (i + 1) % 20 == 0 or i + 1 == kills:
            print(f"  {i + 1:>4} kills, {sum(r['ok'] for r in rows)} survived, step on disk {prev_step}, "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    chaos_s = time.perf_counter() - t0

    # The proof that --resume continues exactly: finish the run, then train the same thing without interruptions.
    final_step = prev_step + 3
    final = finish_and_compare(run, ref, data, model, final_step)
    if isinstance(final, str):
        failures.append(final)

    n = len(rows)
    survived = sum(r["ok"] for r in rows)
    lives = sorted(r["life"] for r in rows)
    size = (run / "latest.safetensors").stat().st_size / 1e6
    print()
    print("| kills | survived | anytime / in-save | left a temp file (mid-save) | left a metrics line cut short "
          "| resumes that reached 'resuming at step' | kills after which the step had advanced |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {n} | {survived}/{n} | {sum(r['mode'] == 'anytime' for r in rows)} / "
          f"{sum(r['mode'] == 'in-save' for r in rows)} | {sum(r['mid_save'] for r in rows)} | "
          f"{sum(r['torn'] for r in rows)} | {sum(r['resumed'] for r in rows)} | {sum(r['advanced'] for r in rows)} |")
    print(f"\nvictim life: median {lives[n // 2]:.2f} s, max {lives[-1]:.2f} s; kill phase {chaos_s:.0f} s "
          f"({chaos_s / n:.2f} s per kill); lstm H={args.hidden_size} L={args.num_layers} float64, checkpoint "
          f"{size:.1f} MB")
    if not isinstance(final, str):
        print(f"final: --resume to step {final_step} after {n} kills, then compared with an uninterrupted run to the "
              f"same step: {'bitwise equal' if final == 0.0 else 'DIFFERENT'} (max |diff| {final:g})")
    for f in failures[:20]:
        print("FAIL", f)
    if args.keep:
        print(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if survived == n and final == 0.0 and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
