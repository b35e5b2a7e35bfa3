"""`rnnlab export`: a trained character model taken out of rnnlab (the library is rnnlab/export/).

    rnnlab export RUN_OR_CHECKPOINT --format html --out page.html [--dtype float16]   a page that samples
    rnnlab export RUN_OR_CHECKPOINT --format onnx --out model.onnx                    + model.step.onnx
"""
from __future__ import annotations

from ..errors import UserError


def add_subcommands(sub):
    e = sub.add_parser("export", help="a character model as a self-contained web page that samples, or as ONNX",
                       description="Export a trained character model. html: one self-contained page (inline "
                                   "script and weights, no network) that samples in the browser as rnnlab sample "
                                   "does; ?prime=TEXT&length=N&argmax=1&autorun=1 (also temperature, top_k, "
                                   "top_p, seed) fills its controls and generates at load. onnx: the sequence "
                                   "function (ids, state -> logits, state) as OUT and the step function (id, state "
                                   "-> logits, state) as OUT with .step before its suffix, the vocabulary in "
                                   "their metadata (needs PyTorch).")
    e.add_argument("path", metavar="RUN_OR_CHECKPOINT", help="a run directory or a .safetensors checkpoint")
    e.add_argument("--format", required=True, choices=("html", "onnx"), help="html (a web page) or onnx")
    e.add_argument("--out", required=True, help="the file to write (page.html, model.onnx)")
    e.add_argument("--which", choices=("best", "latest"), default="best",
                   help="checkpoint in a run directory (default: best)")
    e.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                   help="html: the weights' type in the page; float16 halves the file, rounding each weight "
                        "(default: float32)")
    e.set_defaults(run=cmd_export)


def cmd_export(args):
    if args.format == "html":
        from ..export import html
        out = html.write(args.path, args.out, args.which, args.dtype)
        print(f"wrote {out} ({out.stat().st_size:,} bytes, {args.dtype} weights): open it in a browser; "
              f"{out.name}?prime=TEXT&length=200&autorun=1 generates at load")
        return
    if args.dtype != "float32":
        raise UserError("--dtype float16 is for --format html; the ONNX graphs are float32")
    from ..export import onnx
    seq, step = onnx.write(args.path, args.out, args.which)
    print(f"wrote {seq} (ids (N, T), state -> logits (N, T, V), state) and {step} (id (N,), state -> logits "
          f"(N, V), state); the vocabulary is in their metadata (rnnlab.vocabulary)")
