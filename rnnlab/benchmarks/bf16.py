"""bf16 against fp32 on this CPU (torch engine, --precision bf16 = CPU autocast; issue 13): the GEMM peaks of
torch.matmul in float32 and bfloat16, the training chars/s of one LSTM in both precisions (alternating rounds,
rnnlab.benchmarks.measure), and the validation loss of that LSTM after the same number of steps on a text, from
the same initialisation, in both precisions: bf16 pays only if it is faster at an equal loss.
"""
from __future__ import annotations

import time

from ..config import ModelConfig, TrainConfig
from . import measure, training

CONFIG = (512, 2, 32, 64)        # (H, L, N, T): the training row


def gemm_peaks(n: int = 2048, reps: int = 5) -> dict:
    """{"fp32": GFLOP/s, "bf16": GFLOP/s} of torch.matmul on (n, n) @ (n, n), best of `reps`."""
    import torch
    a = torch.randn(n, n, generator=torch.Generator().manual_seed(0))
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        x, y = a.to(dtype), a.t().contiguous().to(dtype)
        torch.matmul(x, y)
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            torch.matmul(x, y)
            best = min(best, time.perf_counter() - t0)
        out[name] = 2 * n ** 3 / best / 1e9
    return out


def training_rates(V: int, ids, seconds: float, rounds: int, config=CONFIG) -> measure.Medians:
    """Training chars/s of the torch engine's LSTM of `config` in fp32 and bf16, alternating within rounds."""
    H, L, N, T = config
    contenders = {p: measure.rate(training.engine_trainer("torch", "lstm", V, H, L, N, T, ids, precision=p))
                  for p in ("fp32", "bf16")}
    return measure.alternate(contenders, seconds, rounds, f"bf16 lstm H={H} L={L} B={N} T={T}")


def losses(data: str | None, steps: int, config=CONFIG) -> dict:
    """{"fp32": val nats/char, "bf16": ...} after `steps` training steps of the LSTM of `config` on `data` (None:
    the embedded corpus), Adam 2e-3, clip-norm 5, the same seed; validation on the text's last 10%."""
    import tempfile

    from ..lm import train
    H, L, N, T = config
    mcfg = ModelConfig(cell="lstm", hidden_size=H, num_layers=L)
    tcfg = TrainConfig(data=data or "", batch_size=N, seq_len=T, lr=2e-3, clip_norm=5.0, max_steps=steps,
                       eval_every=steps, log_every=steps)
    out = {}
    with tempfile.TemporaryDirectory(prefix="rnnlab-bf16-") as tmp:
        for p in ("fp32", "bf16"):
            summary = train(mcfg, tcfg, f"{tmp}/{p}", "torch", progress=False, log=lambda *a, **k: None,
                            engine_options={"device": "cpu", "precision": p})
            out[p] = summary["best_val"]
    return out
