"""Small shared helpers for the tests: running the CLI as a user would, and finding the shared data."""
import contextlib
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"


def rnnlab(*args, cwd=None, timeout=300, input=None):
    """Run `python -m rnnlab ARGS` in a subprocess; returns the CompletedProcess (text mode)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "rnnlab", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, input=input)


def assert_user_error(proc, *needles):
    """Exit code 2, exactly one line on stderr starting with 'error:', no traceback, each needle in the message."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def tree_digest(path: Path) -> dict:
    """name -> sha256 of every file under path (to prove nothing was overwritten)."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


WORDS = ("the ", "cat ", "sat ", "on ", "a ", "mat. ", "and ", "dog ", "ran\n")


def word_corpus(tmp_path, n_words=1500, words=WORDS) -> Path:
    """A small seeded text of random words at tmp_path/corpus.txt, for training tests that need no real data."""
    import numpy as np
    p = tmp_path / "corpus.txt"
    p.write_text("".join(np.random.default_rng(0).choice(list(words), size=n_words)), encoding="utf-8")
    return p


def shakespeare(n_chars=None) -> str:
    if not SHAKESPEARE.exists():
        pytest.skip("../shared/data/tinyshakespeare.txt is not present")
    text = SHAKESPEARE.read_text(encoding="utf-8")
    return text[:n_chars] if n_chars else text


@contextlib.contextmanager
def one_blas_thread():
    """Run NumPy's BLAS on one thread (when threadpoolctl is installed). The task tests multiply many small
    matrices, where one thread is fastest, and on two shared cores a second BLAS thread that spins waiting for a
    busy core made them 10-30x slower."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
