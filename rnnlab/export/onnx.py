"""`rnnlab export --format onnx`: a character model as two ONNX graphs, traced from the torch engine's network.

    OUT (e.g. model.onnx)          the sequence function
        inputs   ids (N, T) int64, h (L, N, H) float32 [, c (L, N, H) float32 for the LSTM]
        outputs  logits (N, T, V) float32, h_out (L, N, H) [, c_out]
    OUT.step.onnx (model.step.onnx) the step function: one symbol per row
        inputs   id (N,) int64, h [, c]
        outputs  logits (N, V), h_out [, c_out]

N and T are dynamic. The state names are the cell's (rnnlab.cells: h, and c for the LSTM); zeros start a text.
logits are unnormalised: softmax(logits / temperature) is the next symbol's distribution. Each file's metadata
(ModelProto.metadata_props, onnxruntime: session.get_modelmeta().custom_metadata_map) holds

    rnnlab.vocabulary   JSON {"encoding": "utf-8" | "bytes", "symbols": [...]}: id i is symbols[i]
    rnnlab.start        the id to feed first when there is no prime (a newline where the vocabulary has one)
    rnnlab.graph        "sequence" or "step";  rnnlab.signature  the inputs and outputs above, in words
    rnnlab.model        JSON of the model config;  rnnlab.card  JSON [[field, text]] of the model card

torch.onnx.export's TorchScript exporter (dynamo=False) traces the network: rnn, lstm and gru become ONNX's own
RNN/LSTM/GRU operators (PyTorch's gate order and both biases, as ONNX defines them), so the sequence graph runs
any T. A cell PyTorch lacks runs as a Python loop over time in the torch engine, which a trace would fix at the
traced length: its sequence graph is an ONNX Loop around the traced step instead (onnx_loop.py), for cells with
one state array (minGRU and minLSTM have only h). Nothing else is needed to run the files:
`onnxruntime` alone (tests/test_export.py runs them in a Python without rnnlab and compares with the engine).
Writing them needs torch and the onnx package (`pip install 'rnnlab[onnx]'`).
"""
from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path

from .. import cells
from ..config import to_dict
from ..errors import UserError
from ..sample import default_start
from .card import card, load_lm

OPSET = 17


def signature(cfg, step: bool) -> tuple:
    """(input names, output names, dynamic axes, text) of the step or sequence graph of cfg's cell."""
    state = cells.get(cfg.cell).state                        # ("h",) or ("h", "c")
    ids = "id" if step else "ids"
    inputs, outputs = [ids, *state], ["logits", *(s + "_out" for s in state)]
    axes = {ids: {0: "N"} if step else {0: "N", 1: "T"}, "logits": {0: "N"} if step else {0: "N", 1: "T"},
            **{s: {1: "N"} for s in state}, **{s + "_out": {1: "N"} for s in state}}
    L, H, V = cfg.num_layers, cfg.hidden_size, cfg.vocab_size
    st = ", ".join(f"{s} (L={L}, N, H={H}) float32" for s in state)
    text = (f"inputs: {ids} {'(N,)' if step else '(N, T)'} int64, {st}; outputs: logits "
            f"{'(N, V=' if step else '(N, T, V='}{V}) float32, " + ", ".join(s + "_out" for s in state))
    return inputs, outputs, axes, text


def network(snap):
    """The torch engine's network for the snapshot, float32 on the CPU, in eval mode."""
    from ..engines import make_engine
    engine = make_engine("torch", snap.mcfg, replace(snap.tcfg, dtype="float32"), "eval", device="cpu")
    return engine.load_params(snap.params).module.eval()


def graph_module(net, step: bool):
    """An nn.Module (ids, *state) -> (logits, *new state) over net.lm: the step (ids (N,)) or sequence function."""
    import torch

    class Graph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, ids, *state):
            logits, new = self.net.lm(ids[:, None] if step else ids, tuple(state))    # (N, T, V)
            return (logits[:, 0] if step else logits, *new)
    return Graph().eval()


def export_graph(net, cfg, out: Path, step: bool, meta: dict) -> None:
    """Trace one graph to `out` (a cell without a torch.nn layer: its sequence graph is onnx_loop's scripted loop
    over the traced step), then add its metadata and check it (onnx.checker)."""
    import torch
    inputs, outputs, axes, text = signature(cfg, step)
    ids = torch.zeros((2,) if step else (2, 3), dtype=torch.long)
    state = tuple(torch.zeros(cfg.num_layers, 2, cfg.hidden_size) for _ in cells.get(cfg.cell).state)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")                   # the TorchScript exporter's deprecation and trace notes
        module = graph_module(net, step)
        if not step and not cells.get(cfg.cell).nn_layer:   # a step loop or a log-space scan: loop the step
            from .onnx_loop import loop_module
            module = loop_module(graph_module(net, True), state)
        torch.onnx.export(module, (ids, *state), str(out), dynamo=False, input_names=inputs,
                          output_names=outputs, dynamic_axes=axes, opset_version=OPSET)
    import onnx
    model = onnx.load(str(out))
    onnx.helper.set_model_props(model, {**meta, "rnnlab.graph": "step" if step else "sequence",
                                        "rnnlab.signature": text})
    onnx.checker.check_model(model)
    onnx.save(model, str(out))


def step_path(out) -> Path:
    """Where the step graph goes: model.onnx -> model.step.onnx."""
    out = Path(out)
    return out.with_name(f"{out.stem}.step{out.suffix or '.onnx'}")


def write(path, out, which: str = "best") -> list:
    """Export the character model at `path` as the sequence graph `out` and the step graph step_path(out);
    returns both paths. UserError without PyTorch or onnx, for a cell without a torch.nn layer and with two state arrays, or an
    unwritable out."""
    try:
        import onnx  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        raise UserError("--format onnx needs PyTorch and the onnx package (torch.onnx writes through it); "
                        "pip install 'rnnlab[onnx]', or export a web page with --format html") from None
    snap, where = load_lm(path, which)
    cfg = snap.mcfg
    if not cells.get(cfg.cell).torch and len(cells.get(cfg.cell).state) != 1:
        raise UserError(f"ONNX export of the {cfg.cell} cell is not implemented (a cell without a torch.nn layer "
                        f"exports through a loop that carries one state array, h); use --format html")
    out = Path(out)
    if out.is_dir():
        raise UserError(f"--out {out} is a directory; pass a file name such as {out / 'model.onnx'}")
    meta = {"rnnlab.vocabulary": json.dumps(snap.vocab.to_json()), "rnnlab.start": str(default_start(snap.vocab)),
            "rnnlab.model": json.dumps(to_dict(cfg)), "rnnlab.card": json.dumps(card(snap, where))}
    net = network(snap)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        for target, step in ((out, False), (step_path(out), True)):
            export_graph(net, cfg, target, step, meta)
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror or e}; choose a writable --out") from None
    return [out, step_path(out)]
