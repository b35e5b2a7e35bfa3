"""Recurrent layers for the torch engine: PyTorch's fused nn.RNN/LSTM/GRU where it has the cell, `ScanRNN`, a
scan over T (parallel on CUDA) for linear-recurrence cells, and `StepRNN`, a plain loop over a step function, for
other cells.

`make_rnn(cfg, input_size)` reads rnnlab.cells: a row whose `torch` names an nn layer ("LSTM") gets that layer;
a row with torch == "scan" gets ScanRNN over the function of the cell's name in this module (see ScanRNN; mingru and
minlstm below), and a row with torch == "" gets StepRNN over the function of the same name in this module,

    step(x_t, state, *weights) -> new state tuple      x_t (N, D), each state entry (N, H); the weights in the
                                                       order of the row's params (weight_ih, weight_hh, bias_ih, bias_hh)

Both have nn.RNN's parameter names (weight_ih_l{k} (G*H, D), weight_hh_l{k} (G*H, H), bias_ih_l{k}, bias_hh_l{k},
those the row lists), so a checkpoint moves between engines unchanged. Autograd differentiates them (all but
linear_scan, whose reverse scan is written out); the NumPy file of the cell is the reference they are tested against
(tests/test_new_cell.py, tests/test_min_cells.py).

`run_rnn(rnn, x, state, mask)` is the one call the model makes: x (N, T, D), state tuple of (L, N, H), mask (N, T)
bool or None. With a mask (padding at the end of each row) the state is carried through the padded steps, as the
NumPy stack does: packed sequences for the nn layers, torch.where in StepRNN's loop, a_t = 1 and b_t = 0 in
ScanRNN's scan.

    >>> from rnnlab.config import ModelConfig
    >>> rnn = make_rnn(ModelConfig(cell="gru", vocab_size=3, hidden_size=4, num_layers=2), 3)
    >>> out, (h,) = run_rnn(rnn, torch.zeros(2, 5, 3), (torch.zeros(2, 2, 4),), None)
    >>> tuple(out.shape), tuple(h.shape)
    ((2, 5, 4), (2, 2, 4))
"""
from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
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
        register_layers(self, name, input_size, hidden_size, num_layers)

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


class ScanRNN(nn.Module):
    """L layers of a linear-recurrence cell, batch first: (x (N, T, D), (h0 (L, N, H),), mask) -> (out (N, T, H),
    (h_T (L, N, H),)); a plain stack, dropout between layers as nn.RNN (not the paper's residual blocks with
    normalisation and an MLP between scans: the stack is the same for every cell, on both engines).

    A cell h_t = a_t * h_{t-1} + b_t whose a_t, b_t read x_t only is, in this module, one function of the cell's name

        coefficients(xw) -> (log_a, b)      xw = W_ih x + b_ih (N, T, G*H); log a_t and b_t (N, T, H), every step
                                            at once, log a_t computed in log space (logsigmoid, never log 0)

    and layer k is: xw = x W_ih^T + b_ih for all N*T rows; (log_a, b) for all steps; padded steps get a_t = 1,
    b_t = 0 (the state carried, no gradient into them); then the scan: on CUDA log_scan(log_a, b, h0), h_1..h_T
    in parallel over T; elsewhere linear_scan(exp(log_a), b, h0), a loop over T of one fused multiply-add on (N, H)
    rows with a hand-written reverse scan for its backward (torch's logcumsumexp is a scalar loop on CPUs, ~50 ns
    an element, 20x slower than the loop at T = 1024, N = 16, H = 1763). The maths runs in float32 at least (bf16
    autocast would lose the log-space sums); out comes back in the computing dtype. Sampling runs the same layer
    with T = 1."""

    def __init__(self, name: str, input_size: int, hidden_size: int, num_layers: int, dropout: float):
        super().__init__()
        self.coefficients = getattr(sys.modules[__name__], name)
        self.num_layers, self.dropout = num_layers, dropout
        register_layers(self, name, input_size, hidden_size, num_layers)

    def forward(self, x, state: tuple, mask=None):
        finals = []
        for k in range(self.num_layers):
            xw = F.linear(x, getattr(self, f"weight_ih_l{k}"), getattr(self, f"bias_ih_l{k}"))   # (N, T, G*H)
            xw = xw.to(torch.promote_types(xw.dtype, torch.float32))
            log_a, b = self.coefficients(xw)                                   # (N, T, H) each
            if mask is not None:
                m = mask[..., None]                                            # (N, T, 1)
                log_a, b = torch.where(m, log_a, 0.0), torch.where(m, b, 0.0)  # a_t = 1, b_t = 0: h carried
            h0 = state[0][k].to(b.dtype)                                       # (N, H)
            if x.shape[1] == 1:                        # one step (sampling, an ONNX step graph): no scan needed
                x = torch.exp(log_a) * h0[:, None] + b                         # (N, 1, H)
            elif x.is_cuda:
                x = log_scan(log_a, b, h0)                                     # (N, T, H)
            else:
                x = linear_scan(torch.exp(log_a), b, h0)                       # (N, T, H)
            finals.append(x[:, -1] if x.shape[1] else h0)
            if k < self.num_layers - 1:
                x = F.dropout(x, self.dropout, self.training)
        return x, (torch.stack(finals),)


def log_scan(log_a, b, h0):
    """h_t = a_t * h_{t-1} + b_t for t = 1..T, all t at once, in log space (Heinsen 2023, "Efficient parallelization
    of a ubiquitous sequential computation"). log_a, b (N, T, H); h0 (N, H). Returns h_1..h_T (N, T, H).

    With A_t = log a_1 + ... + log a_t (a cumsum) and the initial state folded in as step 0 (b_0 = h0, A_0 = 0),

        h_t = sum_{s<=t} exp(A_t - A_s) b_s = exp(A_t + logcumsumexp_s(log b_s - A_s))

    for b >= 0. b of either sign is split, b = (b+ + eps) - (b- + eps) with b+ = max(b, 0), b- = max(-b, 0), and the
    two parts scanned alike; eps = sqrt(the dtype's smallest normal) keeps log away from 0 and 1 / (b + eps) finite,
    and is lost in rounding next to any b that matters. At b = 0 exactly only the positive part passes the gradient
    (clamp passes it at its bound, relu does not), so dh/db is right there too. Cost: a few passes over (N, T, H),
    parallel over T; precision: h_t's relative error grows with |A_t| * the dtype's epsilon (~1e-13 at |A| = 1000
    in float64, 6e-5 in float32), the price of the log-space form."""
    eps = torch.finfo(b.dtype).tiny ** 0.5
    A = F.pad(torch.cumsum(log_a, dim=1), (0, 0, 1, 0))                      # (N, T+1, H): A_0 = 0, A_1..A_T
    v = torch.cat([h0[:, None], b], dim=1)                                    # (N, T+1, H): h0, b_1..b_T
    pos = torch.logcumsumexp(torch.log(v.clamp(min=0) + eps) - A, dim=1)      # (N, T+1, H)
    neg = torch.logcumsumexp(torch.log(torch.relu(-v) + eps) - A, dim=1)
    return (torch.exp(A + pos) - torch.exp(A + neg))[:, 1:]                   # (N, T, H) h_1..h_T


class _LinearScan(torch.autograd.Function):
    """h_t = a_t * h_{t-1} + b_t, t = 1..T, one step at a time, and its reverse scan (see linear_scan)."""

    @staticmethod
    def forward(ctx, a, b, h0):
        h = torch.empty_like(b)                                                # (N, T, H)
        prev = h0                                                              # (N, H)
        for t in range(b.shape[1]):
            prev = torch.addcmul(b[:, t], a[:, t], prev, out=h[:, t])          # b_t + a_t * h_{t-1}
        ctx.save_for_backward(a, h, h0)
        return h

    @staticmethod
    def backward(ctx, dout):
        a, h, h0 = ctx.saved_tensors
        dh = dout.clone(memory_format=torch.contiguous_format)                 # (N, T, H): the total grad of h_t
        for t in range(dh.shape[1] - 2, -1, -1):
            dh[:, t].addcmul_(a[:, t + 1], dh[:, t + 1])                       # dh_t += a_{t+1} * dh_{t+1}
        h_prev = torch.cat([h0[:, None], h[:, :-1]], dim=1)                    # (N, T, H): h_0..h_{T-1}
        return dh * h_prev, dh, a[:, 0] * dh[:, 0]                             # da, db, dh0


def linear_scan(a, b, h0):
    """h_t = a_t * h_{t-1} + b_t for t = 1..T, one step at a time: a, b (N, T, H), h0 (N, H) -> h_1..h_T (N, T, H).

    The backward is the reverse scan, as the NumPy engine's (rnnlab/engines/numpy/sequence.py, scan_backward):
    dh_t = dout_t + a_{t+1} * dh_{t+1} from dh_T = dout_T, then da_t = dh_t * h_{t-1}, db_t = dh_t, dh_0 = a_1 *
    dh_1. Exact in any dtype (no log space), T small steps forward and T back; ScanRNN's path off CUDA. T >= 1."""
    return _LinearScan.apply(a, b, h0)


def mingru(xw):
    """minGRU's coefficients (rnnlab/engines/numpy/mingru.py): xw = [k, h~] (N, T, 2H) -> log a = log(1 - z) =
    logsigmoid(-k), b = z h~ with z = sigmoid(k)."""
    k, cand = xw.chunk(2, dim=-1)                                             # (N, T, H) each
    return F.logsigmoid(-k), torch.sigmoid(k) * cand


def minlstm(xw):
    """minLSTM's coefficients (rnnlab/engines/numpy/minlstm.py): xw = [k_f, k_i, h~] (N, T, 3H) -> a = f / (f + i),
    b = i / (f + i) h~, as a = sigmoid(d), i / (f + i) = sigmoid(-d) with d = logsigmoid(k_f) - logsigmoid(k_i)."""
    kf, ki, cand = xw.chunk(3, dim=-1)                                        # (N, T, H) each
    d = F.logsigmoid(kf) - F.logsigmoid(ki)
    return F.logsigmoid(d), torch.sigmoid(-d) * cand


def register_layers(module: nn.Module, name: str, input_size: int, hidden_size: int, num_layers: int) -> None:
    """The row's parameters of every layer on `module`, nn.RNN's names (weight_ih_l0, ...); their values come from
    the engine's initialisation (the NumPy engine's, for the same numbers in both engines)."""
    for k in range(num_layers):
        for n, shape in cells.get(name).shapes(input_size if k == 0 else hidden_size, hidden_size).items():
            module.register_parameter(f"{n}_l{k}", nn.Parameter(torch.zeros(shape)))


def make_rnn(cfg, input_size: int) -> nn.Module:
    """The recurrent layers of `cfg` (cell, H, L, dropout between layers) taking inputs of `input_size`."""
    cell = cells.get(cfg.cell)
    between = cfg.dropout if cfg.num_layers > 1 else 0.0    # nn.RNNBase warns about dropout on one layer
    if cell.torch == "scan":
        return ScanRNN(cfg.cell, input_size, cfg.hidden_size, cfg.num_layers, between)
    if not cell.torch:
        return StepRNN(cfg.cell, input_size, cfg.hidden_size, cfg.num_layers, between)
    extra = {"nonlinearity": "tanh"} if cell.torch == "RNN" else {}
    return getattr(nn, cell.torch)(input_size, cfg.hidden_size, num_layers=cfg.num_layers, batch_first=True,
                                   dropout=between, **extra)


def run_rnn(rnn: nn.Module, x, state: tuple, mask=None):
    """x (N, T, D), state tuple of (L, N, H) -> (out (N, T, H), new state tuple); padded steps carry the state."""
    if isinstance(rnn, (StepRNN, ScanRNN)):
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
