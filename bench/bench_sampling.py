"""One-character sampling speed of the NumPy engine: rnnlab.sample.generate over Engine.step, LSTM H=512 L=2 float32.

Prints chars/s (best of --rounds) and md5 digests of a greedy and a temperature-1 sample, so two versions of the
code can be checked for identical text as well as timed. The model is freshly initialised (seed 0): speed does not
depend on training, and the digests only need to match between versions.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/bench_sampling.py --length 3000
"""
import argparse
import hashlib
import time

from rnnlab.config import ModelConfig, TrainConfig
from rnnlab.engines.numpy.engine import Engine
from rnnlab.sample import generate


class Vocab:
    """66 printable symbols, enough for generate (which needs .encoding, .symbols and .encode)."""
    encoding = "utf-8"
    symbols = [chr(c) for c in range(32, 97)] + ["\n"]

    def encode(self, s, unknown="error"):
        return [self.symbols.index(c) for c in s]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--length", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--hidden-size", type=int, default=512)
    ap.add_argument("--num-layers", type=int, default=2)
    args = ap.parse_args()
    cfg = ModelConfig(cell="lstm", vocab_size=len(Vocab.symbols), hidden_size=args.hidden_size,
                      num_layers=args.num_layers)
    engine = Engine(cfg, TrainConfig(dtype="float32"))
    params, vocab = engine.init_params(0), Vocab()
    generate(engine, params, vocab, length=50, argmax=True)          # warm-up
    best = 0.0
    for _ in range(args.rounds):
        t = time.perf_counter()
        greedy = generate(engine, params, vocab, length=args.length, argmax=True)[0]
        best = max(best, args.length / (time.perf_counter() - t))
    sampled = generate(engine, params, vocab, length=300, temperature=1.0, seed=3)[0]
    md5 = [hashlib.md5(s.encode()).hexdigest()[:12] for s in (greedy, sampled)]
    print(f"| lstm H={args.hidden_size} L={args.num_layers} float32, K=1 | {best:,.0f} chars/s | "
          f"greedy md5 {md5[0]} | T=1 md5 {md5[1]} |")


if __name__ == "__main__":
    main()
