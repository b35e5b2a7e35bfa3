"""The NumPy engine: every forward and backward pass written out by hand, no autograd.

Read it beside the equations: one file per cell (rnn.py, lstm.py, gru.py: the step pair, then the fused sequence
pass proven equal to it), sequence.py (the plain pass over time, with padding masks), layers.py (embedding,
linear, dropout, softmax cross-entropy), model.py (the one stack and every task's network), step.py (one step for
sampling), optim.py (the optimisers) and engine.py (the engine interface that the training loop drives).
"""
