"""`rnnlab bench`: speed and time-to-quality tables, every row measured in the same run (rnnlab/cli/bench.py).

    measure.py    corpus, alternating timed rounds, GEMM peak, FLOPs per character, peak RSS
    training.py   engines vs a bare PyTorch loop, and the paper's configuration vs min_char_rnn.py
    sampling.py   rnnlab.sample.generate vs a bare PyTorch sampling loop
    scaling.py    time and memory of a step against T, H and B
    quality.py    the recommended recipe under a wall-clock budget: the validation curve
"""
