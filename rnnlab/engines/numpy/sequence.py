from .layers import sequence_backward as _sb, sequence_forward as _sf  # TEMP until the cell-steps merge

def sequence_forward(cell, x, s0, p, mask=None):
    raise NotImplementedError

def sequence_backward(cell, dout, dsT, cache):
    raise NotImplementedError
