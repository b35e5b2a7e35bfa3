"""rnnlab: recurrent neural networks on sequences, in NumPy (exact, readable) and PyTorch (fast).

Start with `rnnlab hello` (the paper's case study) and `rnnlab train --help`. The NumPy engine lives in
`rnnlab.engines.numpy`; read its cells (rnn.py, lstm.py, gru.py) next to the equations.
"""
__version__ = "0.1.0"

from .api import Model, load, train  # noqa: E402  (the Python API: rnnlab.load(...).generate(...), rnnlab.train(...))
