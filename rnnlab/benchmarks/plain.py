"""The yardstick of issue 5, written out and measured in the same run: "a plain 40-line PyTorch LSTM script" -
embedding, nn.LSTM, Linear, Adam at a constant 2e-3, clip-norm 5 on the mean loss, random windows - trained for a
wall-clock budget, then scored on the last 10% of the text the way rnnlab scores it (N contiguous streams, state
carried). It uses nothing of rnnlab, so it is what a user would write instead. Its one evaluation, at the end, is
not counted in the budget (rnnlab's clock does not count evaluations either).
"""
from __future__ import annotations

import time
from pathlib import Path


def run(data: str, budget: float, hidden: int = 256, batch: int = 32, seq: int = 64, lr: float = 2e-3,
        embed: int = 64, seed: int = 0) -> dict:
    """Train for `budget` seconds; returns {"steps", "chars_per_s", "val"} (val in nats/char)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    text = Path(data).read_text(encoding="utf-8")
    index = {c: i for i, c in enumerate(sorted(set(text)))}
    ids = torch.tensor([index[c] for c in text], dtype=torch.long)
    cut = int(len(ids) * 0.9)
    train, val, V = ids[:cut], ids[cut:], len(index)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.lstm = nn.Embedding(V, embed), nn.LSTM(embed, hidden, batch_first=True)
            self.out = nn.Linear(hidden, V)

        def forward(self, x, h=None):
            y, h = self.lstm(self.emb(x), h)                     # (N, T, H)
            return self.out(y), h                               # (N, T, V)

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < budget:
        off = torch.randint(0, len(train) - seq - 1, (batch,)).tolist()
        x = torch.stack([train[o:o + seq] for o in off])                     # (N, T)
        y = torch.stack([train[o + 1:o + seq + 1] for o in off])
        logits, _ = net(x)
        loss = nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        steps += 1
    elapsed = time.perf_counter() - t0

    n = min(batch, (len(val) - 1) // seq)                      # rnnlab's validation streams
    per = (len(val) - 1) // n
    xs, ys = val[:n * per].view(n, per), val[1:n * per + 1].view(n, per)
    h, total, chunks = None, 0.0, per // seq
    with torch.no_grad():
        for b in range(chunks):
            logits, h = net(xs[:, b * seq:(b + 1) * seq], h)
            total += nn.functional.cross_entropy(logits.reshape(-1, V), ys[:, b * seq:(b + 1) * seq].reshape(-1),
                                                 reduction="sum").item()
    return {"steps": steps, "chars_per_s": steps * batch * seq / elapsed, "val": total / (n * chunks * seq)}
