"""Run by tests/test_ddp.py under torchrun (one copy per rank); also imported by it for the single-process run.

    torchrun --nproc-per-node 2 tests/ddp_worker.py OUT_DIR

Each rank trains the same tiny model with the torch engine for STEPS steps of the global batch (the engine takes
its own share of the streams) and saves what it ends with to OUT_DIR/rank<r>.npz: parameters, the carried state
and the loss of every step.
"""
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rnnlab.config import ModelConfig, TrainConfig  # noqa: E402
from rnnlab.engines import make_engine  # noqa: E402
from rnnlab.streams import Streams  # noqa: E402

STEPS = 6
MCFG = ModelConfig(cell="lstm", vocab_size=11, hidden_size=16, num_layers=2)
# Plain SGD: the parameters then differ from one process exactly by lr times the gradients' rounding (Adam would
# divide near-zero gradient entries by their own tiny RMS and turn rounding noise into steps of size lr).
TCFG = TrainConfig(batch_size=4, seq_len=8, optimizer="sgd", lr=0.5, clip_norm=1.0, dtype="float32")


def run(engine, steps: int = STEPS) -> dict:
    """STEPS training steps on a learnable text (a cycle with some noise) of three batches, so the state is both
    carried and reset."""
    n = TCFG.batch_size * TCFG.seq_len * 3 + 1
    rng = np.random.default_rng(0)
    ids = np.where(rng.random(n) < 0.1, rng.integers(0, MCFG.vocab_size, n), np.arange(n) * 3 % MCFG.vocab_size)
    streams = Streams(ids, TCFG.batch_size, TCFG.seq_len)
    params = engine.init_params(TCFG.seed)
    opt_state = engine.init_opt_state(params)
    state, losses = engine.zero_state(TCFG.batch_size), []
    for step in range(steps):
        b = step % streams.num_batches
        if b == 0:
            state = engine.zero_state(TCFG.batch_size)
        x, y = streams.batch(b)
        m, state = engine.train_step(params, opt_state, {"x": x, "y": y}, state, TCFG.lr, None)
        assert m["ok"]
        losses.append(m["loss"])
    out = {"param." + k: v for k, v in engine.export(params).items()}
    out.update({f"state.{i}": s for i, s in enumerate(engine.export_state(state))})
    out["losses"] = np.array(losses)
    return out


if __name__ == "__main__":
    engine = make_engine("torch", MCFG, TCFG, device="cpu")
    result = run(engine)
    np.savez(Path(sys.argv[1]) / f"rank{engine.rank}.npz", **result)
