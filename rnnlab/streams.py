"""Ids -> training batches: the train/validation split and truncated-BPTT streams."""

import numpy as np

from rnnlab.errors import UserError


def split(ids, val_frac=0.1):
    """(train, val) views: train = ids[:n_train], val = ids[n_train:] with n_train = int(len(ids) * (1 - val_frac)).

    Contiguous, validation is the LAST part (nanoGPT's data[:int(n*0.9)] rule); val_frac=0 gives an empty val.
    """
    if not 0 <= val_frac < 1:
        raise UserError(f"validation fraction {val_frac} is out of range; use a value in [0, 1), e.g. 0.1")
    n_train = int(len(ids) * (1 - val_frac))
    return ids[:n_train], ids[n_train:]


class Streams:
    """Truncated-BPTT batching (as in torch-rnn): N parallel contiguous streams read T steps at a time.

    The ids are cut into N streams of length L = (len(ids) - 1) // N (the tail is dropped); stream i covers
    ids[i*L : i*L + L + 1] (one extra id so the last target exists). num_batches = L // T. batch(b) returns
    x = streams[:, b*T : b*T+T] and y = streams[:, b*T+1 : b*T+T+1], both int64 of shape (N, T). Row i of batch
    b+1 continues row i of batch b, so the training loop carries the hidden state from batch to batch and resets
    it at b == 0. Works on memmaps: only the requested (N, T) window is read.
    """

    def __init__(self, ids, n_streams, seq_len):
        for name, v, flag in (("number of streams", n_streams, "--batch-size"), ("sequence length", seq_len,
                                                                                  "--seq-len")):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise UserError(f"{name} must be a positive integer, got {v!r}; set {flag} to 1 or more")
        ids = np.asarray(ids)
        if ids.ndim != 1:
            raise ValueError("ids must be 1-D")
        if not ids.flags.c_contiguous:
            ids = np.ascontiguousarray(ids)
        self.n_streams, self.seq_len = int(n_streams), int(seq_len)
        N, T = self.n_streams, self.seq_len
        self.stream_len = L = max(len(ids) - 1, 0) // N
        self.num_batches = L // T
        if self.num_batches == 0:
            raise UserError(f"the text is too short for one batch: {N} streams x {T} steps need {N * T + 1} "
                            f"characters but only {len(ids)} are present; use a smaller --batch-size or "
                            "--seq-len, or more text")
        self._data = np.lib.stride_tricks.as_strided(
            ids, shape=(N, L + 1), strides=(L * ids.itemsize, ids.itemsize), writeable=False)

    def __len__(self):
        return self.num_batches

    def batch(self, b):
        if not 0 <= b < self.num_batches:
            raise IndexError(f"batch {b} out of range 0..{self.num_batches - 1}")
        T = self.seq_len
        x = self._data[:, b * T: b * T + T].astype(np.int64)
        y = self._data[:, b * T + 1: b * T + T + 1].astype(np.int64)
        return x, y

    def __iter__(self):
        return (self.batch(b) for b in range(self.num_batches))
