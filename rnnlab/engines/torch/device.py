"""Where the torch engine computes and in what precision: --device auto|cpu|cuda|mps and --precision fp32|bf16,
turned into a torch.device or a one-line UserError that says what to change.

bf16 is autocast (the GEMMs and the LSTM kernel in bfloat16, the weights, optimiser state and checkpoints float32)
on CUDA and on a CPU with bfloat16 instructions: Intel's AMX, or AVX512-BF16 (Intel since Cooper Lake, AMD since
Zen 4). Elsewhere a CPU emulates bfloat16 more slowly than it computes float32, so --precision bf16 is refused.
"""
from __future__ import annotations

import torch

from ...errors import UserError

DTYPES = {"float32": torch.float32, "float64": torch.float64}
PRECISIONS = ("fp32", "bf16")
DEVICES = ("auto", "cpu", "cuda", "mps")


def mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def auto_device() -> str:
    """What --device auto takes: CUDA, then Apple's MPS, then the CPU."""
    return "cuda" if torch.cuda.is_available() else "mps" if mps_available() else "cpu"


def cpu_flags(path: str = "/proc/cpuinfo") -> set:
    """The CPU's feature flags as Linux lists them (the first processor's "flags" line); empty elsewhere."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_bf16() -> str:
    """The CPU's fast bfloat16 instructions: "AMX" (Intel's tile unit), "AVX512-BF16", or "" when it has neither.
    Reads /proc/cpuinfo's flags, and asks torch (its cpuinfo library, on any OS) where that says nothing."""
    flags, cpu = cpu_flags(), getattr(torch, "cpu", None)
    ask = lambda name: bool(getattr(cpu, name, lambda: False)())      # noqa: E731 - torch.cpu._is_*_supported
    if "amx_bf16" in flags or ask("_is_amx_tile_supported"):
        return "AMX"
    if "avx512_bf16" in flags or ask("_is_avx512_bf16_supported"):
        return "AVX512-BF16"
    return ""


def pick_device(name: str, dtype: str, precision: str, local_rank: int | None = None) -> torch.device:
    """--device auto|cpu|cuda|mps (+ --dtype, --precision) -> a torch.device, or a UserError saying what to change.

    auto takes CUDA, then Apple's MPS, then the CPU. Under torchrun on CUDA each process takes GPU LOCAL_RANK."""
    if name not in DEVICES:
        raise UserError(f"unknown --device {name!r}; choose one of {', '.join(DEVICES)}")
    if precision not in PRECISIONS:
        raise UserError(f"unknown --precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    mps_ok = mps_available()
    if name == "auto":
        name = auto_device()
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device cuda: PyTorch {torch.__version__} sees no CUDA GPU (a CPU-only build, or no "
                        f"driver); use --device cpu, or install a CUDA build of torch")
    if name == "mps" and not mps_ok:
        raise UserError("--device mps: Apple's Metal backend is not available here; use --device cpu")
    if name == "mps" and dtype == "float64":
        raise UserError("--device mps has no float64; use --dtype float32 or --device cpu")
    if precision == "bf16" and name == "mps":
        raise UserError("--precision bf16 (autocast to bfloat16) runs on --device cuda or a CPU with AMX or "
                        "AVX512-BF16, not mps; use --precision fp32")
    if precision == "bf16" and name == "cpu" and not cpu_bf16():
        raise UserError("--precision bf16 on the CPU needs AMX or AVX512-BF16 instructions, which this CPU lacks "
                        "(it would emulate bfloat16, slower than float32); use --precision fp32")
    if precision == "bf16" and dtype != "float32":
        raise UserError("--precision bf16 keeps float32 weights and autocasts the maths; use --dtype float32")
    if name == "cuda":
        index = local_rank if local_rank is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise UserError(f"this process wants GPU {index} but only {torch.cuda.device_count()} are visible; "
                            f"start at most that many processes per machine (torchrun --nproc-per-node)")
        return torch.device("cuda", index)
    return torch.device(name)
