"""How many threads the maths runs on, and how idle pool threads wait (issue 13).

NumPy's BLAS (OpenBLAS: a pthreads pool) and torch (OpenMP: GNU libgomp in the pip wheels, Intel's libiomp5 in
some builds; MKL and oneDNN run on it) keep pools of threads that spin, waiting for the next piece of work,
before they sleep. Two runs on two shared cores then spin on the very core the other needs: two `rnnlab train
--engine torch` started together ran at 1% of the solo speed each. So the command line

  1. calls prepare_env() before NumPy or torch is imported (the runtimes read these once, when they load):
         GOMP_SPINCOUNT   libgomp's spin before a waiting thread sleeps: 1,000 pause loops (tens of us) instead
                          of 300,000 (several ms, longer than the scheduler's time slice). Measured (2 cores,
                          torch, lstm H=256 N=32 T=64, 2 threads): alone 107k chars/s at 1,000 as at 300,000;
                          two runs at once held on 2 threads 35k each at 1,000, 4.7k at 20,000 (on auto,
                          where the governor takes them to 1 thread: 62k each)
         KMP_BLOCKTIME    the same for Intel's libiomp5, in ms (default 200; not in the pip wheels, unmeasured)
         OPENBLAS_THREAD_TIMEOUT   OpenBLAS's idle workers sleep after 2^22 cycles (~1.5 ms) instead of 2^28
                          (~0.1 s); NumPy engine alone: 70k chars/s as at 2^28 (2^4: 63k)
     A variable the user set is left as it is. OMP_WAIT_POLICY=PASSIVE (no spin at all) is not set: it cost a
     torch run alone 32% (every OpenMP region then waits for a futex wake-up).
  2. sets the pools' size for the job through make_engine(..., threads=N) -> use(choose(N, ...)):
     choose(0, ...) (auto) takes the CPUs this process may use (usable_cpus: affinity and cgroup quota; a
     torchrun rank its share; OMP_NUM_THREADS when the user set it), and 1 thread for a single sequence
     (one-character sampling of one sample): there the second thread only adds wake-ups. Measured alone (2 cores,
     lstm H=256 N=32 T=64): torch 60k chars/s on 1 thread, 106k on 2; NumPy 52k, 70k. A training run on auto
     then keeps measuring 1 thread against that count where switching keeps it bit-reproducible
     (rnnlab/governor.py).

    >>> choose(0, rows=1, cpus=8), choose(0, rows=32, cpus=8), choose(3, rows=1, cpus=8)
    (1, 8, 3)
"""
from __future__ import annotations

import math
import os
from pathlib import Path

from .errors import UserError

WAIT_ENV = {"GOMP_SPINCOUNT": "1000", "KMP_BLOCKTIME": "1", "OPENBLAS_THREAD_TIMEOUT": "22"}
CGROUP = Path("/sys/fs/cgroup")
MAX_THREADS = 1024        # far beyond a machine's cores; a larger --threads is a typo


def prepare_env(environ=None) -> dict:
    """Set WAIT_ENV in `environ` (os.environ) where unset; returns what was set. Call before NumPy and torch
    load: afterwards these variables change nothing in this process (they still reach its subprocesses)."""
    environ = os.environ if environ is None else environ
    added = {k: v for k, v in WAIT_ENV.items() if k not in environ}
    environ.update(added)
    return added


def cgroup_cpus(root: Path = CGROUP, proc_cgroup: str = "/proc/self/cgroup") -> float | None:
    """The CPU quota of this process's cgroup in CPUs (quota / period), or None when there is none: cgroup v2's
    cpu.max ("max 100000" = none, "150000 100000" = 1.5), else v1's cpu.cfs_quota_us / cpu.cfs_period_us (-1 =
    none). Looks in the process's own cgroup and at the mount's root (a container sees its own cgroup there)."""
    try:
        lines = Path(proc_cgroup).read_text().splitlines()
    except OSError:
        lines = []
    places = []
    for line in lines:                                   # "0::/path" (v2) or "4:cpu,cpuacct:/path" (v1)
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        rel = path.strip("/")
        if controllers == "":
            places += [(root / rel, "v2"), (root, "v2")]
        elif "cpu" in controllers.split(","):
            for mount in (root / controllers, root / "cpu", root / "cpu,cpuacct"):
                places += [(mount / rel, "v1"), (mount, "v1")]
    for folder, kind in places:
        try:
            if kind == "v2":
                quota, period = (folder / "cpu.max").read_text().split()[:2]
                return None if quota == "max" else int(quota) / int(period)
            quota = int((folder / "cpu.cfs_quota_us").read_text())
            return None if quota <= 0 else quota / int((folder / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
    return None


def usable_cpus() -> int:
    """The CPUs this process may really use: its affinity mask (os.sched_getaffinity, else os.cpu_count()),
    capped by its cgroup's CPU quota rounded up (a quota of 1.5 CPUs runs 2 threads at 75% each)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):                    # macOS, Windows: no affinity call
        n = os.cpu_count() or 1
    quota = cgroup_cpus()
    return max(1, min(n, math.ceil(quota)) if quota else n)


def choose(requested: int, rows: int, cpus: int | None = None) -> int:
    """The thread count for a job on `rows` parallel sequences (the batch, or K samples); `requested` > 0 is taken
    as given, 0 means auto:

        1                        for one sequence: each step is a matrix-vector product and a few tiny ops, all
                                 per-call overhead (sampling one sample, evaluating one stream, a batch of 1)
        cpus // local ranks      otherwise; cpus = usable_cpus(), or OMP_NUM_THREADS when the user set it;
                                 under torchrun each of the LOCAL_WORLD_SIZE processes on this machine its share
    No size threshold: on an idle machine the second thread never lost for N=32 (lstm T=64, 2 cores, torch/NumPy:
    H=16 1.25x/1.01x, H=64 1.51x/1.09x, H=256 1.78x/1.36x), and the libraries run a matrix too small to share on
    one thread by themselves. A training run on auto then measures 1 thread against this count as it goes, which
    is what decides on a busy machine (rnnlab/governor.py). Raises UserError for a count outside [0, MAX_THREADS]."""
    if not 0 <= requested <= MAX_THREADS:
        raise UserError(f"--threads must be 0 (auto) or a count from 1 to {MAX_THREADS}, not {requested}")
    if requested:
        return requested
    if rows == 1:
        return 1
    cpus = cpus or _env_int("OMP_NUM_THREADS") or usable_cpus()
    return max(1, cpus // max(1, _env_int("LOCAL_WORLD_SIZE") or 1))


def _env_int(name: str) -> int:
    try:
        return int(os.environ.get(name, "") or 0)
    except ValueError:
        return 0


def use(n: int) -> int:
    """Run every BLAS and OpenMP pool of this process on n threads (threadpoolctl: OpenBLAS, MKL, libgomp) and
    torch's intra-op pool too when torch is loaded (its inter-op pool, which rnnlab never uses, gets 1 thread
    where it is not started yet). Returns n."""
    import sys

    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=n)                           # global: the process is the command's
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:                              # already set, or the pool has started: leave it
            pass
    return n


def current(engine: str) -> int:
    """The threads `engine`'s maths runs on now: torch's intra-op pool, or the largest BLAS pool for NumPy."""
    if engine == "torch":
        import torch
        return torch.get_num_threads()
    from threadpoolctl import threadpool_info
    return max([p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"], default=1)


def describe(engine: str) -> str:
    """"1 thread" or "N threads", as the first line of train, sample and eval says it."""
    n = current(engine)
    return f"{n} thread{'s' if n != 1 else ''}"
