"""Engines: the same model in NumPy (exact, readable) and PyTorch (fast, GPU, distributed).

Every engine offers the interface documented in `rnnlab.engines.numpy`; `make_engine` is the one place that
chooses between them.
"""
from __future__ import annotations

from ..errors import UserError

ENGINES = ("numpy", "torch", "auto")


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def make_engine(name: str, mcfg, tcfg, **torch_options):
    """Build the engine called `name` ("numpy", "torch" or "auto": torch when importable, else numpy)."""
    if name == "auto":
        name = "torch" if torch_available() else "numpy"
    if name == "numpy":
        from .numpy import Engine
        return Engine(mcfg, tcfg)
    if name == "torch":
        if not torch_available():
            raise UserError("--engine torch needs PyTorch, which is not installed; install it with "
                            "pip install 'rnnlab[torch]' (or use --engine numpy)")
        from .torch import Engine
        return Engine(mcfg, tcfg, **torch_options)
    raise UserError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
