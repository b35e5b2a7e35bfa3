"""The sequence graph of a cell PyTorch lacks (rnnlab.cells row with torch == ""): a TorchScript loop over time
around the traced step graph, which torch.onnx writes as an ONNX Loop, so the graph runs any T.

The torch engine runs such a cell as a Python loop over time (engines/torch/cells.StepRNN); a trace would fix that
loop at the traced length, so only the step is traced here and the loop is scripted. The cells of this kind carry
one state array, h (L, N, H); a cell with more has no loop here yet (onnx.py says so).
"""
from __future__ import annotations

import warnings
from typing import List

import torch


class Loop(torch.nn.Module):
    """(ids (N, T), h (L, N, H)) -> (logits (N, T, V), h_out): `step` (id (N,), h -> logits (N, V), h) over t."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def forward(self, ids, h):
        outs: List[torch.Tensor] = []
        for t in range(ids.size(1)):
            logits, h = self.step(ids[:, t], h)
            outs.append(logits)
        return torch.stack(outs, 1), h


def loop_module(step_module, state: tuple):
    """A scripted Loop over step_module traced on (ids (N,), h) = state's example tensors."""
    if len(state) != 1:
        raise NotImplementedError("the loop carries one state array")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                  # trace notes
        traced = torch.jit.trace(step_module, (torch.zeros(state[0].shape[1], dtype=torch.long), *state))
    return torch.jit.script(Loop(traced))
