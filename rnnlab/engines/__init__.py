"""Engines: the same model in NumPy (exact, readable) and PyTorch (fast, GPU, distributed).

Every engine offers the interface documented in `rnnlab.engines.numpy`; `make_engine` is the one place that
chooses between them.
"""
from __future__ import annotations

import os

from .. import cells
from ..errors import UserError

ENGINES = ("numpy", "torch", "auto")
# --engine auto (without --precision) trains the cells torch trains faster (cells' cpu_train) in bf16 on a CPU with
# AMX or AVX512-BF16: measured faster there at an equal or better validation loss (bench/RESULTS.md, issue 13: the
# 75 s LSTM recipe ran 4,282 steps in bf16 against 3,030 in fp32 and ended 0.0125 nats/char lower; after the same
# 300 steps, `rnnlab bench --only bf16`, bf16 was within 0.04). False keeps fp32 everywhere.
AUTO_CPU_BF16 = True


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def world_size() -> int:
    """How many processes torchrun started for this run: WORLD_SIZE, 1 when unset or empty (a ValueError when it
    is not an integer). The one reading of WORLD_SIZE outside engines/torch/distributed.py, whose world_from_env
    also reads RANK and LOCAL_RANK (it cannot import this package: engines -> engines.torch would be a circle)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def process_rank() -> int:
    """This process's rank in a run started by torchrun (RANK, when WORLD_SIZE > 1), else 0."""
    return int(os.environ.get("RANK", "0") or 0) if world_size() > 1 else 0


def auto_engine(mcfg, job: str = "train", **torch_options) -> str:
    """What --engine auto means: the faster engine for this model and job on this machine.

    torch on a GPU, under torchrun, or with bf16; on the CPU, torch (its oneDNN kernel) to train and evaluate an
    LSTM, and the NumPy engine for rnn and gru (nn.RNN and nn.GRU have no oneDNN path; the NumPy kernels train
    them faster, bench/RESULTS.md; rnnlab.cells says which per cell) and for sampling any cell (one character at a time is all per-call overhead:
    ~10x faster in NumPy). NumPy when torch is not installed."""
    if not torch_available():
        return "numpy"
    device = torch_options.get("device") or "auto"
    if device == "auto":
        from .torch.device import auto_device
        device = auto_device()
    if world_size() > 1 or torch_options.get("precision") == "bf16" or device != "cpu":
        return "torch"
    return cells.get(mcfg.cell).cpu_train if job != "sample" else "numpy"


def auto_precision(mcfg, tcfg, job: str = "train", device: str = "auto") -> str:
    """What --engine auto takes when --precision is not given: fp32; bf16 (autocast) to train a float32 model of a
    cell that torch trains faster on a CPU (cells' cpu_train) on a CPU with AMX or AVX512-BF16, when AUTO_CPU_BF16
    is on."""
    if not (AUTO_CPU_BF16 and job == "train" and tcfg.dtype == "float32" and torch_available()
            and cells.get(mcfg.cell).cpu_train == "torch"):
        return "fp32"
    from .torch.device import auto_device, cpu_bf16
    on_cpu = (device if device != "auto" else auto_device()) == "cpu"
    return "bf16" if on_cpu and cpu_bf16() else "fp32"


def make_engine(name: str, mcfg, tcfg, job: str = "train", threads: int | None = None, rows: int | None = None,
                **torch_options):
    """Build the engine called `name` ("numpy", "torch" or "auto": see auto_engine) for `job` (train, eval or
    sample: auto and the thread choice look at it). `threads` (the command line's --threads) sizes this process's
    BLAS and OpenMP pools for the job, on `rows` parallel sequences (default: the batch size, 1 to sample):
    0 = auto, N = N (rnnlab.threads.choose); None leaves them as they are (a library caller's process)."""
    engine = _build(name, mcfg, tcfg, job, torch_options)
    if threads is not None:
        from .. import threads as pools
        rows = rows or (1 if job == "sample" else tcfg.batch_size)
        pools.use(pools.choose(threads, rows))
    return engine


def _build(name: str, mcfg, tcfg, job: str, torch_options: dict):
    if name == "auto":
        if not torch_options.get("precision"):
            device = torch_options.get("device") or "auto"
            torch_options = {**torch_options, "precision": auto_precision(mcfg, tcfg, job, device)}
        name = auto_engine(mcfg, job, **torch_options)
    if name == "numpy":
        device, precision = torch_options.get("device") or "auto", torch_options.get("precision") or "fp32"
        asked = [f"--device {device}"] * (device not in ("auto", "cpu")) + [f"--precision {precision}"] * (
            precision != "fp32")
        if asked:
            raise UserError(f"{' '.join(asked)} needs --engine torch (or auto); the NumPy engine runs on the CPU in "
                            f"fp32/fp64 only")
        if world_size() > 1:
            raise UserError("torchrun started several processes but the NumPy engine cannot train distributed; "
                            "use --engine torch (or run one process without torchrun)")
        from .numpy.engine import Engine
        return Engine(mcfg, tcfg)
    if name == "torch":
        if not torch_available():
            raise UserError("--engine torch needs PyTorch, which is not installed; install it with "
                            "pip install 'rnnlab[torch]' (or use --engine numpy)")
        from .torch.engine import Engine
        return Engine(mcfg, tcfg, **torch_options)
    raise UserError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
