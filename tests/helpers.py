"""Small shared helpers for the tests: running the CLI as a user would, finding the shared data, and random
arrays for a NumPy cell with a central-difference gradient check."""
import contextlib
import hashlib
import importlib
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


# ---- NumPy cells: random parameters, states and inputs, and a central-difference gradient check ----------------------

def numpy_cell(name: str):
    """The NumPy cell module rnnlab/engines/numpy/<name>.py of a row of rnnlab.cells."""
    return importlib.import_module(f"rnnlab.engines.numpy.{name}")


def cell_params(cell, D, H, rng, dtype=None, scale=0.6) -> dict:
    """Random p = {"weight_ih" (G*H, D), "weight_hh" (G*H, H), "bias_ih" (G*H,), "bias_hh" (G*H,)}, the names
    the cell's row of rnnlab.cells lists."""
    import numpy as np
    from rnnlab import cells
    shapes = cells.get(cell.__name__.rsplit(".", 1)[-1]).shapes(D, H)
    return {k: (scale * rng.standard_normal(s)).astype(dtype or np.float64) for k, s in shapes.items()}


def cell_state(cell, N, H, rng, dtype=None) -> tuple:
    """A random state tuple: one array (N, H) per state name of the cell's row of rnnlab.cells."""
    import numpy as np
    from rnnlab import cells
    n = len(cells.get(cell.__name__.rsplit(".", 1)[-1]).state)
    return tuple((0.5 * rng.standard_normal((N, H))).astype(dtype or np.float64) for _ in range(n))


def cell_input(ids, shape, D, rng, dtype=None):
    """Int ids of `shape` in [0, D), or floats of shape + (D,)."""
    import numpy as np
    return rng.integers(0, D, shape) if ids else rng.standard_normal(tuple(shape) + (D,)).astype(dtype or np.float64)


def assert_central_differences(loss, checks, label="", eps=1e-6, tol=1e-6) -> tuple:
    """checks: [(array, analytic gradient, name)]. Perturbs every entry of every array in place by +-eps, takes
    (loss() at +eps - loss() at -eps) / 2 eps, and compares with the analytic gradient. Returns the worst errors (2-norm, entries).

    Central differences in float64 with eps = 1e-6 carry ~3e-10 absolute noise (rounding of the O(1) loss, divided
    by 2 eps), so an elementwise relative error is only meaningful for entries well above that. Two measures: per
    array, |a - n| / (|a| + |n|) in the 2-norm (expected ~1e-9), and per entry the same ratio with the denominator
    floored at 1e-2, i.e. an absolute error of at most 1e-8 for small entries. Both must stay <= tol."""
    import numpy as np
    worst, worst_elem = 0.0, 0.0
    for arr, analytic, what in checks:
        assert analytic is not None and analytic.shape == arr.shape, f"{label} {what}"
        numeric = np.empty_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + eps
            plus = loss()
            arr[idx] = old - eps
            minus = loss()
            arr[idx] = old
            numeric[idx] = (plus - minus) / (2 * eps)
        diff = np.abs(analytic - numeric)
        norm_err = np.linalg.norm(diff) / max(np.linalg.norm(analytic) + np.linalg.norm(numeric), 1e-300)
        elem_err = np.max(diff / np.maximum(np.abs(analytic) + np.abs(numeric), 1e-2), initial=0.0)
        worst, worst_elem = max(worst, norm_err), max(worst_elem, elem_err)
        assert norm_err <= tol and elem_err <= tol, f"{label} {what}: {norm_err:.2e} (2-norm), {elem_err:.2e}"
    return worst, worst_elem
