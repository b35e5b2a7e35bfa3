"""A run directory, the training clock and the signals: what every training loop does around its maths.

A run lives in one folder:
    latest.safetensors   written at every evaluation and at the end (atomically: a crash leaves the previous one)
    best.safetensors     the checkpoint with the best validation figure so far
    metrics.jsonl        one JSON object per line: training rows {"step", "loss", ...} and evaluation rows
    data.ids             (rnnlab train) the encoded text, a cache rewritten on every start
    .rnnlab.lock         exists while a run holds the folder

One run per folder: RunDir locks .rnnlab.lock when it opens and holds it until it closes; a second run on the
folder is refused at once, in one line, before it touches anything. The lock is fcntl.flock (POSIX; on NFS Linux
maps it to a byte-range lock); Windows, which lacks fcntl, gets msvcrt.locking on the file's first byte. The OS
drops the lock when its process dies (kill -9 too), so a killed run never blocks its resume.
A fresh start that fails before its first checkpoint (bad data, no GPU, diverged before its first evaluation)
removes what it created: the files it wrote and the folder if it made it; what was there before stays, and a new
run never appends to a stale metrics.jsonl. Under torchrun only rank 0 (main=True) locks or writes.
"""
from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from .errors import UserError

try:
    import fcntl
except ImportError:                      # Windows: msvcrt.locking instead
    fcntl = None
    import msvcrt

LOCK = ".rnnlab.lock"


class Interrupted(Exception):
    """Raised (by the loop, not a signal handler) after a checkpoint was written on SIGINT/SIGTERM."""
    def __init__(self, signum: int):
        self.signum = signum


class Clock:
    """A run's seconds of training: it goes on from `start` (the checkpoint's count, so a --max-time budget spans
    resumes) and leaves out the time spent inside `paused()` (evaluations, checkpoint writes). `wall()` is the
    seconds since this invocation's clock was made, pauses included."""
    def __init__(self, start: float = 0.0):
        self.start, self.t0, self.off = float(start), time.perf_counter(), 0.0

    def seconds(self) -> float:
        return self.start + time.perf_counter() - self.t0 - self.off

    def wall(self) -> float:
        return time.perf_counter() - self.t0

    @contextlib.contextmanager
    def paused(self):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.off += time.perf_counter() - t


class Signals:
    """SIGINT/SIGTERM: the first asks the loop to finish its step and checkpoint (`caught` is the signal's
    number); a second exits at once (the last checkpoint on disk is complete: writes are atomic)."""
    def __init__(self):
        self.caught = 0
        self._old = {}

    def __enter__(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:        # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame):
        if self.caught:
            sys.stderr.write("\ninterrupted again: exiting now; the last checkpoint on disk is intact\n")
            os._exit(128 + signum)
        self.caught = signum
        sys.stderr.write("\ninterrupted: finishing this step and writing a checkpoint (Ctrl-C again to quit now)\n")

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


def saved_seconds(meta: dict, where) -> float:
    """The training seconds a checkpoint's metadata recorded (0 for files from before the clock), checked."""
    s = meta.get("train_seconds", 0.0)
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 <= s < math.inf:
        raise UserError(f"{where}: its train_seconds {s!r} is not a number >= 0; the checkpoint is corrupt")
    return float(s)


def _step_of(line: str):
    """The step of a metrics line, or None for a line a crash cut short (it is dropped)."""
    try:
        row = json.loads(line)
    except ValueError:
        return None
    return row.get("step", 0) if isinstance(row, dict) and isinstance(row.get("step", 0), (int, float)) else None


def _try_lock(fd: int) -> bool:
    """An exclusive lock on the open file `fd` without waiting: False when another process holds it."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        return True
    except OSError:
        return False


class RunDir:
    """The run directory `out`, opened for a fresh run (resume=False) or to continue the run there.

    Opening takes the folder's lock (creating the folder for a fresh run) and checks it: a resume needs
    latest.safetensors, a fresh start refuses a folder that holds a run. Use it as a context manager (or call
    close()): the lock is held until then. main=False (rank != 0 under torchrun): the same checks, no lock, no
    writes. Raises UserError (one line) for a folder another run holds, can't be written, or fails a check."""
    def __init__(self, out, resume: bool, main: bool = True):
        self.path, self.resume, self.main = Path(out), resume, main
        self.latest, self.best = self.path / "latest.safetensors", self.path / "best.safetensors"
        self.metrics = self.path / "metrics.jsonl"
        self.saved = False                 # a checkpoint was written: the start succeeded
        self._fd, self._made, self._wrote, self._rows, self._new_log = None, [], set(), [], not resume
        try:
            if main:
                self._lock()
            if resume and not self.latest.exists():
                raise UserError(f"nothing to resume in {self.path}: no latest.safetensors there; start a run with "
                                f"--out {self.path}")
            if not resume and (self.latest.exists() or self.best.exists()):
                raise UserError(f"run directory {self.path} already holds a run; continue it with --resume "
                                f"{self.path}, or choose a new --out")
        except BaseException:
            self.close(failed=True)
            raise
        if resume:
            self.remove_stale()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        self.close(failed=exc_type is not None)

    def _make(self) -> None:
        """Create the folder and its missing parents, remembering which, so a failed start can remove them."""
        missing = [p for p in (self.path, *self.path.parents) if not p.exists()]
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create run directory {self.path}: {e.strerror or e}; choose another --out") \
                from None
        self._made += [p for p in missing if p not in self._made]

    def _lock(self) -> None:
        """Lock LOCK inside the folder; a lock file that its holder removed as we opened it is opened anew."""
        lock = self.path / LOCK
        for _ in range(100):
            if not self.resume:
                self._make()
            elif not self.path.is_dir():
                return                     # nothing there to hold: the resume check says so
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:
                continue                   # the folder went as we made it (a failed start's cleanup): again
            except OSError as e:
                raise UserError(f"cannot write in run directory {self.path}: {e.strerror or e}; choose a "
                                f"writable --out") from None
            if not _try_lock(fd):
                pid = ""
                with contextlib.suppress(OSError, UnicodeDecodeError):   # the holder wrote its pid there
                    pid = os.read(fd, 32).decode().strip()
                os.close(fd)
                who = f" (process {pid})" if pid.isdigit() else ""
                raise UserError(f"run directory {self.path} is in use: another rnnlab run{who} holds it; wait "
                                f"for it to end, or choose another --out")
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(lock))
            except OSError:
                same = False
            if same:
                self._fd = fd
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                return
            os.close(fd)
        raise UserError(f"cannot lock run directory {self.path}: its lock file keeps changing; choose another --out")

    def close(self, failed: bool = False) -> None:
        """Release the folder. A fresh start without a checkpoint that `failed` (an exception ends it), or that
        wrote nothing, removes what it created: the files it wrote (data.ids), then the folder and the parents it
        made if nothing else is in them; its metric rows are dropped. Idempotent."""
        undo = self.main and not self.resume and not self.saved and (failed or not (self._wrote or self._rows))
        try:
            if not failed:
                self._flush()              # a run that ended without a checkpoint still leaves its log
        finally:
            for p in sorted(self._wrote) if undo else ():
                p.unlink(missing_ok=True)
            self._unlock()
            for d in self._made if undo else ():
                try:
                    d.rmdir()
                except OSError:            # not empty: something else lives there now
                    break
            self._made, self._wrote, self._rows = [], set(), []

    def _unlock(self) -> None:
        if self._fd is None:
            return
        lock, fd, self._fd = self.path / LOCK, self._fd, None
        if fcntl is not None:              # unlink while holding it: a waiting opener sees the change and retries
            lock.unlink(missing_ok=True)
            os.close(fd)
        else:                              # Windows can't remove an open file
            os.close(fd)
            with contextlib.suppress(OSError):
                lock.unlink()

    def save(self, write, improved: bool) -> None:
        """write(path) the latest checkpoint, then the best one when `improved`. Nothing on rank != 0."""
        if self.main:
            write(self.latest)
            self.saved = True
            if improved:
                write(self.best)

    def last_good(self) -> str:
        """The checkpoint to fall back on, for error messages."""
        return str(self.latest) if self.latest.exists() else "none yet"

    def append(self, rows: list) -> None:
        """Log rows (dicts) to metrics.jsonl, one JSON object a line. A fresh run's rows wait in memory until its
        first checkpoint, then start a new file: a start that fails leaves the folder's metrics.jsonl as it was,
        and a new run never appends to a stale log. Nothing on rank != 0."""
        if self.main:
            self._rows += rows
            if self.saved or self.resume:
                self._flush()

    def _flush(self) -> None:
        if not self._rows:
            return
        try:
            with open(self.metrics, "w" if self._new_log else "a") as f:
                f.write("".join(json.dumps(r) + "\n" for r in self._rows))
        except OSError as e:         # the checkpoint before it is complete: a resume re-logs what is missing
            raise UserError(f"cannot write {self.metrics}: {e.strerror or e}; free disk space or choose a writable "
                            f"output folder, then continue with --resume {self.path}") from None
        self._rows, self._new_log = [], False

    def truncate_metrics(self, step: int) -> None:
        """On resume, drop metric lines logged after the checkpoint at `step` (they will be logged again), and any
        line a crash cut short. Nothing for a fresh run: its first rows start a new file."""
        if not self.main or not self.resume or not self.metrics.exists():
            return
        keep = [ln for ln in self.metrics.read_text(errors="replace").splitlines(True)
                if ln.endswith("\n") and (k := _step_of(ln)) is not None and k <= step]
        tmp = self.metrics.with_name(self.metrics.name + ".tmp")
        tmp.write_text("".join(keep))
        os.replace(tmp, self.metrics)

    def remove_stale(self) -> None:
        """Remove the temporary files (.NAME.tmp-PID) of a killed run: never complete, never read."""
        for stale in self.path.glob(".*.tmp-*") if self.main else ():
            stale.unlink(missing_ok=True)

    def saved_seconds(self, meta: dict) -> float:
        """The training seconds that latest.safetensors' metadata `meta` recorded, checked."""
        return saved_seconds(meta, self.latest)

    def scratch(self, name: str) -> Path:
        """Where this run keeps a file it derives from its inputs (data.ids): in the folder on rank 0 (a failed
        start removes it), in a temporary folder removed at exit on the other ranks."""
        if self.main:
            self._wrote.add(self.path / name)
            return self.path / name
        tmp = Path(tempfile.mkdtemp(prefix="rnnlab-rank-"))
        atexit.register(shutil.rmtree, tmp, True)
        return tmp / name
