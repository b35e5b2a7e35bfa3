"""The table of recurrent cells: everything the rest of rnnlab needs to know about a cell, in one place.

A cell is a unit. Its maths lives in two places only: `rnnlab/engines/numpy/<name>.py` (the readable step pair
beside its equations, then the fused sequence pass proven equal to it) and its PyTorch implementation (a fused
`torch.nn` layer, or in `rnnlab/engines/torch/cells.py` a step function for cells PyTorch lacks, or the coefficient
function of a linear-recurrence cell). This table is the third and last place that names it; config, CLI, both
engines, checkpoints, benchmarks and the tests all read it, so a new cell is one NumPy file, one torch
implementation and one row here.

Each row is plain data:
    gates       G: the layer's weights are (G*H, D) and (G*H, H), gate blocks stacked in PyTorch's order
    state       the names of the state arrays carried between steps, each (L, N, H): ("h",) or ("h", "c")
    torch       the torch.nn layer with the same parameters (e.g. "LSTM" for nn.LSTM); "scan" for a linear
                recurrence h_t = a_t * h_{t-1} + b_t whose a_t, b_t depend on x_t only, which
                rnnlab/engines/torch/cells.py runs as a scan over T (ScanRNN); or "" when PyTorch has
                none and rnnlab/engines/torch/cells.py implements the step (StepRNN). `nn_layer` reads it.
    cpu_train   the engine that trains it faster on a CPU (measured: bench/RESULTS.md); --engine auto reads it
    help        one line for --help
    params      the names of one layer's parameters: weight_ih (G*H, D), weight_hh (G*H, H), bias_ih and bias_hh
                (G*H,); a cell without a recurrent weight (h_{t-1} only in an elementwise recurrence) lists fewer

    >>> CELLS["lstm"].gates, CELLS["lstm"].state
    (4, ('h', 'c'))
    >>> get("nope")
    Traceback (most recent call last):
    ...
    rnnlab.errors.UserError: unknown cell 'nope'; choose one of rnn, lstm, gru, mingru, minlstm
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import UserError


@dataclass(frozen=True)
class Cell:
    name: str
    gates: int
    state: tuple
    torch: str
    cpu_train: str
    help: str
    params: tuple = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")

    def shapes(self, D: int, H: int) -> dict:
        """name -> shape of one layer's parameters, for input size D and hidden size H."""
        G = self.gates
        known = {"weight_ih": (G * H, D), "weight_hh": (G * H, H), "bias_ih": (G * H,), "bias_hh": (G * H,)}
        return {n: known[n] for n in self.params}

    @property
    def nn_layer(self) -> str:
        """The torch.nn layer with this cell's parameters ("LSTM"), or "" when torch.nn has none."""
        return "" if self.torch in ("", "scan") else self.torch


CELLS = {c.name: c for c in (
    Cell("rnn", 1, ("h",), "RNN", "numpy", "the paper's tanh RNN: h = tanh(W_ih x + b_ih + W_hh h + b_hh)"),
    Cell("lstm", 4, ("h", "c"), "LSTM", "torch", "LSTM (gates i, f, g, o as nn.LSTM)"),
    Cell("gru", 3, ("h",), "GRU", "numpy", "GRU (gates r, z, n as nn.GRU)"),
    Cell("mingru", 2, ("h",), "scan", "numpy", "minGRU (Feng et al. 2024): gates z, h~ of x_t only, so h is a "
         "linear scan (parallel in time on the torch engine)", ("weight_ih", "bias_ih")),
    Cell("minlstm", 3, ("h",), "scan", "numpy", "minLSTM (Feng et al. 2024): gates f, i, h~ of x_t only, so h is a "
         "linear scan (parallel in time on the torch engine)", ("weight_ih", "bias_ih")),
)}
NAMES = tuple(CELLS)


def get(name: str) -> Cell:
    """The row for `name`; UserError naming the known cells for any other."""
    if name not in CELLS:
        raise UserError(f"unknown cell {name!r}; choose one of {', '.join(CELLS)}")
    return CELLS[name]
