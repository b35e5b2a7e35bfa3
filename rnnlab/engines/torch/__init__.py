"""The PyTorch engine: the NumPy engine's networks, loss, optimisers and checkpoints on oneDNN, cuDNN or MPS
kernels, and across processes with DistributedDataParallel under torchrun.

engine.py (the engine interface), model.py (the one network as an nn.Module), cells.py (recurrent layers: nn.RNN/
LSTM/GRU, or a step loop for cells PyTorch lacks), device.py (--device, --precision), optim.py (optimisers equal to
the NumPy engine's rule for rule) and distributed.py (DDP under torchrun). Importing this package imports torch.
"""
