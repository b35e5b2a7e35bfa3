"""Taking a trained character model out of rnnlab: `rnnlab export RUN --format html|onnx --out FILE`.

    card.py     the checkpoint to export (character models only) and its model card
    html.py     one self-contained web page that samples in the browser (page.py: HTML/CSS, page_js.py: script)
    onnx.py     ONNX graphs of the step and of the sequence function, through torch.onnx (onnx_loop.py: the
                sequence graph of a cell without a torch.nn layer, an ONNX Loop around the traced step)

The command line is rnnlab/cli/export.py.
"""
