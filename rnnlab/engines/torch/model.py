"""The character model as a torch.nn.Module, and the choice of device and precision.

The same network as rnnlab.engines.numpy.model, built from PyTorch's fused recurrent layers so that oneDNN (CPU)
and cuDNN (CUDA) kernels run it:

    ids (N, T) -> [encoder: nn.Embedding (V, D)] or one-hot (N, T, V) -> rnn: nn.RNN(tanh)/nn.LSTM/nn.GRU
      (L layers, batch_first, dropout between layers) -> nn.Dropout -> decoder: nn.Linear(H, V) -> logits (N, T, V)

The submodules are named `encoder`, `rnn` and `decoder`, so `state_dict()` has exactly the NumPy engine's names and
shapes (rnn.weight_ih_l0 (G*H, V), ..., decoder.bias (V,)) and a checkpoint moves between engines unchanged.

Why the one-hot input is a real one-hot tensor here (the NumPy engine gathers columns of W_ih instead):
nn.RNN/LSTM/GRU always multiply their input by weight_ih_l0 inside the fused kernel; there is no way to hand them
the projection W_ih x_t already gathered without leaving the fused kernel for a Python loop over time. The one-hot
GEMM is exact (each output is one weight plus zeros; its gradient sums the same numbers as the scatter-add) and
measured small: bench/bench_torch.py prints its share of a training step.

    >>> from rnnlab.config import ModelConfig
    >>> m = CharModel(ModelConfig(cell="gru", vocab_size=5, hidden_size=3, num_layers=2))
    >>> logits, state = m(torch.zeros(2, 4, dtype=torch.long), zero_state(m.cfg, 2, torch.float32, "cpu"))
    >>> tuple(logits.shape), tuple(state[0].shape)
    ((2, 4, 5), (2, 2, 3))
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import UserError

DTYPES = {"float32": torch.float32, "float64": torch.float64}
PRECISIONS = ("fp32", "bf16")
DEVICES = ("auto", "cpu", "cuda", "mps")


class CharModel(nn.Module):
    """ids (N, T) int64 and a state tuple of (L, N, H) -> logits (N, T, V) and the new state tuple."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        V, H, L = cfg.vocab_size, cfg.hidden_size, cfg.num_layers
        if cfg.embed_dim:
            self.encoder = nn.Embedding(V, cfg.embed_dim)
        layer = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cfg.cell]
        extra = {"nonlinearity": "tanh"} if cfg.cell == "rnn" else {}
        # nn.RNNBase warns about dropout with one layer (it would apply to nothing); the last layer's dropout is
        # self.drop, as in the NumPy engine ("between layers and before the decoder").
        self.rnn = layer(cfg.input_size, H, num_layers=L, batch_first=True,
                         dropout=cfg.dropout if L > 1 else 0.0, **extra)
        self.drop = nn.Dropout(cfg.dropout)
        self.decoder = nn.Linear(H, V)

    def forward(self, ids: torch.Tensor, state: tuple):
        if self.cfg.embed_dim:
            x = self.encoder(ids)                                              # (N, T, D)
        else:
            x = one_hot(ids, self.cfg.vocab_size, self.decoder.weight.dtype)   # (N, T, V)
        hx = state if self.cfg.cell == "lstm" else state[0]                    # LSTM takes (h, c)
        out, hT = self.rnn(x, hx)                                              # (N, T, H)
        logits = self.decoder(self.drop(out))                                  # (N, T, V)
        return logits, (tuple(hT) if self.cfg.cell == "lstm" else (hT,))


def one_hot(ids: torch.Tensor, V: int, dtype) -> torch.Tensor:
    """(N, T) ids -> (N, T, V) one-hot in `dtype`: one scatter into zeros (F.one_hot builds int64 first)."""
    out = torch.zeros(*ids.shape, V, dtype=dtype, device=ids.device)          # (N, T, V)
    return out.scatter_(-1, ids.unsqueeze(-1), 1.0)


def zero_state(cfg, n: int, dtype, device) -> tuple:
    """(h,) or (h, c) for an LSTM, each (L, n, H) zeros."""
    k = 2 if cfg.cell == "lstm" else 1
    return tuple(torch.zeros(cfg.num_layers, n, cfg.hidden_size, dtype=dtype, device=device) for _ in range(k))


def loss_sum(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy summed over all N*T positions, in float32 at least (bf16 logits are upcast). 0-d tensor."""
    V = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, V).to(torch.promote_types(logits.dtype, torch.float32)),
                           y.reshape(-1), reduction="sum")


def mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def auto_device() -> str:
    """What --device auto takes: CUDA, then Apple's MPS, then the CPU."""
    return "cuda" if torch.cuda.is_available() else "mps" if mps_available() else "cpu"


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
    if precision == "bf16" and name != "cuda":
        raise UserError(f"--precision bf16 (autocast to bfloat16) is for --device cuda only, not {name}; "
                        f"use --precision fp32")
    if precision == "bf16" and dtype != "float32":
        raise UserError("--precision bf16 keeps float32 weights and autocasts the maths; use --dtype float32")
    if name == "cuda":
        index = local_rank if local_rank is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise UserError(f"this process wants GPU {index} but only {torch.cuda.device_count()} are visible; "
                            f"start at most that many processes per machine (torchrun --nproc-per-node)")
        return torch.device("cuda", index)
    return torch.device(name)
