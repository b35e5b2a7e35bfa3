"""rnnlab: recurrent neural networks on sequences, in NumPy (exact, readable) and PyTorch (fast).

Start with `rnnlab hello` (the paper's case study) and `rnnlab train --help`. The NumPy engine lives in
`rnnlab.engines.numpy`; read its cells (rnn.py, lstm.py, gru.py) next to the equations.
"""
__version__ = "0.1.0"

__all__ = ["Model", "load", "train"]


def __getattr__(name):
    """The Python API (rnnlab/api.py: rnnlab.load(...).generate(...), rnnlab.train(...)), imported on first use, so
    that `import rnnlab` loads neither NumPy nor torch (the command line sets their threads' wait policy first)."""
    if name in __all__:
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'rnnlab' has no attribute {name!r}")
