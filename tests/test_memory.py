"""Training never holds the text in memory: the corpus is streamed into a memory-mapped id file, so a 16 MB corpus
costs (almost) no more peak RSS than a 1 MB one. bench/memory.py measures the same on 200 MB."""
import importlib.util

from helpers import ROOT

spec = importlib.util.spec_from_file_location("bench_memory", ROOT / "bench" / "memory.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_peak_rss_does_not_grow_with_the_corpus(tmp_path):
    small, big = tmp_path / "small.txt", tmp_path / "big.txt"
    bench.make_corpus(small, 1_000_000, seed=1)
    bench.make_corpus(big, 16_000_000)
    size = big.stat().st_size
    tiny = ["--hidden-size", 32, "--batch-size", 4, "--seq-len", 16]
    base, _, _ = bench.peak_rss(bench.train_args(small, tmp_path / "r-small", 2) + tiny)
    peak, _, _ = bench.peak_rss(bench.train_args(big, tmp_path / "r-big", 2) + tiny)
    assert (tmp_path / "r-big" / "data.ids").stat().st_size >= 15_000_000
    # Holding the ids alone in memory would cost ~1.0x the corpus, the text ~1x more, the old whole-text encode ~20x.
    assert peak - base <= 0.5 * size, (peak / 1e6, base / 1e6, size / 1e6)
