"""The one model of rnnlab as a torch.nn.Module: the same networks as rnnlab.engines.numpy.model, for every task.

    lm           ids (N, T) -> [encoder: nn.Embedding (V, D)] or one-hot (N, T, V) -> rnn (L layers) -> locked
                 dropout -> decoder: nn.Linear(H, V) -> logits (N, T, V); the state is carried between batches
    classify     the same stack over padded texts (mask: the state passes through padding), its true last h of
                 the top layer -> dropout -> classifier: nn.Linear(H, C) -> logits (N, C)
    conditional  an lm whose initial state is a learned row per label: cond: nn.Embedding(C, S*L*H), the row laid
                 out as [state][layer][unit] -> S tensors (L, N, H)
    seq2seq      enc (an lm stack without decoder) reads the padded source; its true last state starts dec (a
                 whole lm) on BOS + target (teacher forcing)

`rnn` is nn.RNN(tanh)/LSTM/GRU, or rnnlab.engines.torch.cells.StepRNN for cells PyTorch lacks (cells.py says which),
so oneDNN and cuDNN run the cells they have. The submodule names are the NumPy engine's parameter names
(encoder.weight, rnn.weight_ih_l0, decoder.bias, classifier.weight, cond.weight, enc.rnn..., dec.decoder...), so
`state_dict()` moves between the engines unchanged.

Why the one-hot input is a real one-hot tensor here (the NumPy engine gathers columns of W_ih instead):
nn.RNN/LSTM/GRU always multiply their input by weight_ih_l0 inside the fused kernel; there is no way to hand them
the projection W_ih x_t already gathered without leaving the fused kernel for a Python loop over time. The one-hot
GEMM is exact (each output is one weight plus zeros; its gradient sums the same numbers as the scatter-add).

    >>> from rnnlab.config import ModelConfig
    >>> m = Net(ModelConfig(cell="gru", vocab_size=5, hidden_size=3, num_layers=2))
    >>> logits, state = m.lm(torch.zeros(2, 4, dtype=torch.long), zero_state(m.cfg, 2, torch.float32, "cpu"))
    >>> tuple(logits.shape), tuple(state[0].shape)
    ((2, 4, 5), (2, 2, 3))
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ... import cells
from .cells import make_rnn, run_rnn


class Net(nn.Module):
    """The network of ModelConfig `cfg` (cfg.task picks the heads); `part` builds seq2seq's halves."""

    def __init__(self, cfg, part: str | None = None):
        super().__init__()
        self.cfg, part = cfg, part or cfg.task
        if part == "seq2seq":
            self.enc, self.dec = Net(cfg, "stack"), Net(cfg, "lm")
            return
        V, H = cfg.vocab_size, cfg.hidden_size
        if cfg.embed_dim:
            self.encoder = nn.Embedding(V, cfg.embed_dim)
        self.rnn = make_rnn(cfg, cfg.input_size)
        self.drop = nn.Dropout(cfg.dropout)       # on classify's last h (N, H)
        if part in ("lm", "conditional"):
            self.decoder = nn.Linear(H, V)
        if part == "classify":
            self.classifier = nn.Linear(H, cfg.num_labels)
        if part == "conditional":
            S = len(cells.get(cfg.cell).state)
            self.cond = nn.Embedding(cfg.num_labels, S * cfg.num_layers * H)

    def stack(self, ids, state: tuple, mask=None):
        """ids (N, T) -> top layer's outputs after dropout (N, T, H) and the final state tuple of (L, N, H)."""
        dtype = self.rnn.weight_ih_l0.dtype
        x = self.encoder(ids) if self.cfg.embed_dim else one_hot(ids, self.cfg.vocab_size, dtype)   # (N, T, D)
        out, new = run_rnn(self.rnn, x, state, mask)
        return locked_dropout(out, self.cfg.dropout, self.training), new

    def lm(self, ids, state: tuple):
        """Logits (N, T, V) and the new state: the character model (also seq2seq's dec, conditional's body)."""
        out, new = self.stack(ids, state)
        return self.decoder(out), new

    def initial_state(self, b: dict) -> tuple:
        """The state a task's decoder starts from: seq2seq's encoding of b["src"], conditional's label rows."""
        if self.cfg.task == "seq2seq":
            zero = zero_state(self.cfg, b["src"].shape[0], self.dec.rnn.weight_ih_l0.dtype, b["src"].device)
            return self.enc.stack(b["src"], zero, b.get("src_mask"))[1]
        L, H, N = self.cfg.num_layers, self.cfg.hidden_size, b["labels"].shape[0]
        e = self.cond(b["labels"]).view(N, -1, L, H)                           # (N, S, L, H)
        return tuple(e[:, i].transpose(0, 1) for i in range(e.shape[1]))     # S x (L, N, H)

    def forward(self, b: dict, state=None):
        """Logits of batch b (tensors x, y, mask, src, src_mask, labels as the task has them) and the new state:
        (N, T, V) for lm/conditional/seq2seq, (N, C) for classify; the state is lm's carried state, else None."""
        task = self.cfg.task
        if task == "lm":                                                       # no carried state: zeros
            x = b["x"]
            return self.lm(x, state if state is not None else zero_state(self.cfg, x.shape[0],
                                                                         self.rnn.weight_ih_l0.dtype, x.device))
        if task == "classify":
            zero = zero_state(self.cfg, b["x"].shape[0], self.rnn.weight_ih_l0.dtype, b["x"].device)
            _, s = self.stack(b["x"], zero, b.get("mask"))
            return self.classifier(self.drop(s[0][-1])), None                 # (N, C) from the top layer's h_T
        dec = self.dec if task == "seq2seq" else self
        return dec.lm(b["x"], self.initial_state(b))[0], None

    def step(self, ids, state: tuple):
        """One decoder step for K rows: ids (K, 1) -> logits (K, 1, V), new state."""
        return (self.dec if self.cfg.task == "seq2seq" else self).lm(ids, state)


def locked_dropout(x, p: float, training: bool):
    """Variational ("locked") inverted dropout on x (N, T, H): one mask per sequence and unit, shared by all T
    steps (Gal & Ghahramani 2016; Merity et al. 2018, AWD-LSTM), kept with probability 1 - p and scaled by
    1 / (1 - p); x itself when not training or p = 0. The NumPy engine's top layer does the same (model.py).
    Cheaper than nn.Dropout too: N*H draws, not N*T*H (bernoulli_ on 1M elements is ~5 ms on a CPU)."""
    if not training or p <= 0:
        return x
    keep = 1.0 - p
    mask = torch.empty(x.shape[0], 1, x.shape[-1], dtype=x.dtype, device=x.device).bernoulli_(keep)   # (N, 1, H)
    return x * mask.div_(keep)


def one_hot(ids: torch.Tensor, V: int, dtype) -> torch.Tensor:
    """(N, T) ids -> (N, T, V) one-hot in `dtype`: one scatter into zeros (F.one_hot builds int64 first)."""
    out = torch.zeros(*ids.shape, V, dtype=dtype, device=ids.device)          # (N, T, V)
    return out.scatter_(-1, ids.unsqueeze(-1), 1.0)


def zero_state(cfg, n: int, dtype, device) -> tuple:
    """One (L, n, H) zero tensor per state name of the cell ((h,) or (h, c))."""
    return tuple(torch.zeros(cfg.num_layers, n, cfg.hidden_size, dtype=dtype, device=device)
                 for _ in cells.get(cfg.cell).state)


def loss_sum(logits: torch.Tensor, y: torch.Tensor, mask=None) -> torch.Tensor:
    """Cross-entropy summed over the scored positions (mask True; all without one), in float32 at least (bf16
    logits are upcast). logits (..., V), y and mask of the leading shape. 0-d tensor, nats."""
    V = logits.shape[-1]
    logits, y = logits.reshape(-1, V), y.reshape(-1)
    if mask is not None:
        keep = mask.reshape(-1)
        logits, y = logits[keep], y[keep]
    return F.cross_entropy(logits.to(torch.promote_types(logits.dtype, torch.float32)), y, reduction="sum")
