"""Recurrent layers for the torch engine: PyTorch's fused nn.RNN/LSTM/GRU where it has the cell, and `StepRNN`, a
plain loop over a step function, for cells it lacks.

`make_rnn(cfg, input_size)` reads rnnlab.cells: a row whose `torch` names an nn layer ("LSTM") gets that layer;
a row with torch == "" gets StepRNN over the function of the same name in this module,

    step(x_t, state, *weights) -> new state tuple      x_t (N, D), each state entry (N, H); the weights in the
                                                       order of the row's params (weight_ih, weight_hh, bias_ih, bias_hh)

with nn.RNN's parameter names (weight_ih_l{k} (G*H, D), weight_hh_l{k} (G*H, H), bias_ih_l{k}, bias_hh_l{k}), so a
checkpoint moves between engines unchanged. Autograd differentiates the loop; the NumPy file of the cell is the
reference it is tested against (tests/test_cells_torch.py).

`run_rnn(rnn, x, state, mask)` is the one call the model makes: x (N, T, D), state tuple of (L, N, H), mask (N, T)
bool or None. With a mask (padding at the end of each row) the state is carried through the padded steps, as the
NumPy stack does: packed sequences for the nn layers, torch.where in StepRNN's loop.

    >>> from rnnlab.config import ModelConfig
    >>> rnn = make_rnn(ModelConfig(cell="gru", vocab_size=3, hidden_size=4, num_layers=2), 3)
    >>> out, (h,) = run_rnn(rnn, torch.zeros(2, 5, 3), (torch.zeros(2, 2, 4),), None)
    >>> tuple(out.shape), tuple(h.shape)
    ((2, 5, 4), (2, 2, 4))
"""
from __future__ import annotations

import sys

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ... import cells


class StepRNN(nn.Module):
    """L layers of a cell given as a step function, batch first: (x (N, T, D), state) -> (out (N, T, H), state)."""

    def __init__(self, name: str, input_size: int, hidden_size: int, num_layers: int, dropout: float):
        super().__init__()
        self.step = getattr(sys.modules[__name__], name)
        self.num_layers, self.dropout = num_layers, dropout
        self.names = cells.get(name).params
        for k in range(num_layers):
            for n, shape in cells.get(name).shapes(input_size if k == 0 else hidden_size, hidden_size).items():
                self.register_parameter(f"{n}_l{k}", nn.Parameter(torch.zeros(shape)))   # values come from init

    def forward(self, x, state: tuple, mask=None):
        finals = []
        for k in range(self.num_layers):
            w = [getattr(self, f"{n}_l{k}") for n in self.names]
            s, outs = tuple(st[k] for st in state), []
            for t in range(x.shape[1]):
                new = self.step(x[:, t], s, *w)
                if mask is not None:
                    m = mask[:, t, None]                                       # (N, 1)
                    new = tuple(torch.where(m, a, b) for a, b in zip(new, s))
                s = new
                outs.append(s[0])
            x = torch.stack(outs, dim=1)                                       # (N, T, H)
            if k < self.num_layers - 1:
                x = nn.functional.dropout(x, self.dropout, self.training)
            finals.append(s)
        return x, tuple(torch.stack([f[i] for f in finals]) for i in range(len(state)))


def make_rnn(cfg, input_size: int) -> nn.Module:
    """The recurrent layers of `cfg` (cell, H, L, dropout between layers) taking inputs of `input_size`."""
    cell = cells.get(cfg.cell)
    between = cfg.dropout if cfg.num_layers > 1 else 0.0    # nn.RNNBase warns about dropout on one layer
    if not cell.torch:
        return StepRNN(cfg.cell, input_size, cfg.hidden_size, cfg.num_layers, between)
    extra = {"nonlinearity": "tanh"} if cell.torch == "RNN" else {}
    return getattr(nn, cell.torch)(input_size, cfg.hidden_size, num_layers=cfg.num_layers, batch_first=True,
                                   dropout=between, **extra)


def run_rnn(rnn: nn.Module, x, state: tuple, mask=None):
    """x (N, T, D), state tuple of (L, N, H) -> (out (N, T, H), new state tuple); padded steps carry the state."""
    if isinstance(rnn, StepRNN):
        return rnn(x, state, mask)
    hx = state if len(state) == 2 else state[0]                               # nn.LSTM takes (h, c)
    if mask is None:
        out, hT = rnn(x, hx)
    else:
        lengths = mask.sum(dim=1)                                              # (N,) real steps, a prefix of each row
        packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        out, hT = rnn(packed, hx)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    new = tuple(hT) if len(state) == 2 else (hT,)
    if mask is not None and not bool(lengths.all()):                          # empty rows keep their first state
        empty = (lengths == 0)[None, :, None]                                  # (1, N, 1)
        new = tuple(torch.where(empty, s0, s) for s0, s in zip(state, new))
    return out, new
