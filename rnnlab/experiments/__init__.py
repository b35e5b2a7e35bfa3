"""The paper's claims as experiments, each a command that prints a number and draws a picture.

    gradients.py   vanishing / exploding gradients: ||dL_T/dh_k|| against the distance T - k
    memory.py      the memory horizon: a recall task at growing lags, rnn vs lstm vs gru on equal parameters

They use the NumPy engine's own functions (model.forward, the cells' step_backward, optim.update_), never a copy.
The argparse set-up of `rnnlab experiment ...`, `rnnlab viz` and `rnnlab plot` is rnnlab/cli/experiments.py.
"""
