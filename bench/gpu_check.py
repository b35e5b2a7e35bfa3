"""GPU check for the torch engine, for a person with a CUDA GPU (CI has none and does not run it):

    .venv/bin/python bench/gpu_check.py [--steps 200] [--hidden-size 512] [--num-layers 2]

For fp32 and then bf16 autocast it trains the default-sized LSTM (N=64, T=100) for --steps steps on CUDA through
rnnlab.lm.train (exactly what `rnnlab train --engine torch --device cuda --precision P` runs), then checks:
  - every logged loss is finite and the last is well below the first (it learned);
  - the fp32 checkpoint evaluates on CUDA to the NumPy engine's value on the CPU (within 0.02 nats/char:
    cuDNN may use TF32 tensor cores, so not to the last digit);
  - sampling on CUDA works (one character at a time through the engine's step);
  - with 2 or more GPUs: `torchrun --nproc-per-node 2 -m rnnlab train --engine torch` (nccl) runs 20 steps.
It prints a table (chars/s, first and final loss, validation loss, seconds) and exits 1 if any check fails.
`--device cpu` runs the same checks on the CPU in fp32, to test this script on a machine without a GPU.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rnnlab import snapshot  # noqa: E402
from rnnlab.config import ModelConfig, TrainConfig  # noqa: E402
from rnnlab.engines import make_engine  # noqa: E402
from rnnlab.sample import generate  # noqa: E402
from rnnlab.lm import evaluate_ids, train  # noqa: E402

FAILURES = []


def check(ok: bool, what: str) -> bool:
    print(f"  [{'ok' if ok else 'FAIL'}] {what}", flush=True)
    if not ok:
        FAILURES.append(what)
    return ok


def run(precision: str, args, out: Path) -> dict:
    mcfg = ModelConfig(cell="lstm", hidden_size=args.hidden_size, num_layers=args.num_layers)
    tcfg = TrainConfig(data=str(DATA) if DATA.exists() else "", batch_size=64, seq_len=100, max_steps=args.steps,
                       eval_every=args.steps, log_every=10, lr=2e-3)
    print(f"{precision}: training {args.steps} steps on {args.device} ...", flush=True)
    t0 = time.perf_counter()
    try:
        train(mcfg, tcfg, out, "torch", progress=False, log=lambda s: print("  " + s, flush=True),
              engine_options={"device": args.device, "precision": precision})
    except Exception as e:                                    # noqa: BLE001 - a check reports, it does not crash
        check(False, f"{precision}: training raised {type(e).__name__}: {e}")
        return {}
    seconds = time.perf_counter() - t0
    rows = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "loss" in r and r.get("loss") is not None]
    losses = [r["loss"] for r in train_rows]
    cps = statistics.median(r["chars_per_s"] for r in train_rows[1:]) if len(train_rows) > 1 else float("nan")
    val = next((r["val_loss"] for r in reversed(rows) if "val_loss" in r), float("nan"))
    check(len(losses) > 0 and all(math.isfinite(v) for v in losses), f"{precision}: every logged loss is finite")
    check(bool(losses) and losses[-1] < losses[0] - 0.5, f"{precision}: loss fell from {losses[0]:.3f} to "
          f"{losses[-1]:.3f} (needs a drop of 0.5)" if losses else f"{precision}: no losses logged")
    return {"precision": precision, "cps": cps, "first": losses[0] if losses else float("nan"),
            "final": losses[-1] if losses else float("nan"), "val": val, "seconds": seconds}


def cross_check(out: Path, args) -> None:
    """fp32 checkpoint: CUDA evaluation vs the NumPy engine; CUDA sampling runs."""
    snap = snapshot.load(out / "latest.safetensors")
    text = (DATA.read_text(encoding="utf-8") if DATA.exists() else "")[-20000:] or "hello world\n" * 1000
    ids = snap.vocab.encode(text, unknown="skip")[:20000]
    gpu = make_engine("torch", snap.mcfg, snap.tcfg, device=args.device)
    ref = make_engine("numpy", snap.mcfg, snap.tcfg)
    a = evaluate_ids(gpu, gpu.load_params(snap.params), ids)
    b = evaluate_ids(ref, ref.load_params(snap.params), ids)
    check(abs(a - b) < 0.02, f"fp32 checkpoint: {args.device} eval {a:.4f} vs NumPy eval {b:.4f} nats/char")
    t0 = time.perf_counter()
    texts = generate(gpu, gpu.load_params(snap.params), snap.vocab, prime="\n", length=300, num_samples=4, seed=1)
    rate = 4 * 300 / (time.perf_counter() - t0)
    check(all(len(t) >= 300 for t in texts), f"sampling on {args.device}: 4 x 300 chars at {rate:,.0f} chars/s")
    print("  sample: " + texts[0][:200].replace("\n", "\n          "))


def ddp_check(tmp: Path) -> None:
    n = torch.cuda.device_count()
    if n < 2:
        print(f"ddp: skipped ({n} GPU)")
        return
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "rnnlab",
           "train", "--engine", "torch", "--device", "cuda", "--no-progress", "--out", str(tmp / "ddp"),
           "--batch-size", "64", "--max-steps", "20", "--eval-every", "20"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    check(proc.returncode == 0 and "DDP 2 processes (nccl)" in proc.stdout,
          f"torchrun 2 GPUs (nccl): exit {proc.returncode} {proc.stderr.strip()[-300:] if proc.returncode else ''}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--hidden-size", type=int, default=512)
    ap.add_argument("--num-layers", type=int, default=2)
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"gpu_check: torch {torch.__version__} sees no CUDA GPU; nothing was checked", file=sys.stderr)
        sys.exit(1)
    if args.device == "cuda":
        print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
              f"{torch.cuda.get_device_name(0)} x {torch.cuda.device_count()}")
    results = []
    with tempfile.TemporaryDirectory(prefix="rnnlab-gpu-check-") as tmp:
        tmp = Path(tmp)
        for precision in ("fp32", "bf16") if args.device == "cuda" else ("fp32",):
            r = run(precision, args, tmp / precision)
            if r:
                results.append(r)
                if precision == "fp32":
                    cross_check(tmp / precision, args)
        if args.device == "cuda":
            ddp_check(tmp)
    print(f"\n| LSTM H={args.hidden_size} L={args.num_layers} N=64 T=100, {args.steps} steps | chars/s | first loss "
          f"| final loss | val loss | seconds |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {args.device} {r['precision']} | {r['cps']:,.0f} | {r['first']:.3f} | {r['final']:.3f} | "
              f"{r['val']:.3f} | {r['seconds']:.1f} |")
    if FAILURES:
        print(f"\ngpu_check: {len(FAILURES)} check(s) failed: " + "; ".join(FAILURES), file=sys.stderr)
        sys.exit(1)
    print("\ngpu_check: all checks passed")


if __name__ == "__main__":
    main()
