"""DistributedDataParallel set-up under torchrun, and the three collectives the torch engine adds to DDP's own.

torchrun starts K processes and tells each its place through the environment (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT); `world_from_env` reads it and `Group` joins the process group: gloo on the CPU, nccl on
CUDA, with a collective timeout so that a process whose peer died or hangs stops with an error instead of waiting
forever. Each rank trains a contiguous share of the N streams, rows [rank*N/K, (rank+1)*N/K); DDP averages the
gradients, which is exactly the single-process gradient because the loss is a mean over streams and every share has
N/K of them:  (1/K) sum_r (1/(N/K)) sum_{i in r} g_i = (1/N) sum_i g_i.

The collectives added here, all small:
    gather(state, loss)   every rank's (L, N/K, H) share of the carried state -> the full (L, N, H) on every rank
                          (so a checkpoint holds the global state and resumes under any K that divides N), and the
                          summed loss, in one all-gather per step;
    max_over_ranks(...)   ints -> their maximum over ranks (the training loop's "stop now?" must agree everywhere).
DDP's gradient all-reduce is the third.
"""
from __future__ import annotations

import atexit
import datetime
import os
from contextlib import contextmanager

import torch
import torch.distributed as dist

from ...errors import UserError

DEFAULT_TIMEOUT = {"gloo": 60.0, "nccl": 600.0}


def world_from_env():
    """(rank, world_size, local_rank) set by torchrun, or None for a single process."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        if world <= 1:
            return None
        return int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0"))
    except (KeyError, ValueError):
        raise UserError("WORLD_SIZE is set but RANK is missing or not a number; start distributed runs with "
                        "torchrun --nproc-per-node K -m rnnlab train ...") from None


def _is_comm_failure(e: BaseException) -> bool:
    """True for errors that mean 'a peer is gone or silent' (gloo and nccl raise plain RuntimeErrors)."""
    dist_error = getattr(dist, "DistError", ())
    text = str(e)
    return isinstance(e, dist_error) or any(w in text for w in ("gloo", "Gloo", "NCCL", "Timed out", "timed out",
                                                                 "Connection reset", "Connection closed"))


class Group:
    """This process's membership of the default process group."""

    def __init__(self, device: torch.device, timeout_s: float | None):
        self.rank, self.world_size, self.local_rank = world_from_env()
        self.backend = "nccl" if device.type == "cuda" else "gloo"
        self.timeout_s = float(timeout_s or DEFAULT_TIMEOUT[self.backend])
        if self.timeout_s <= 0:
            raise UserError(f"--ddp-timeout must be > 0 seconds, got {timeout_s}")
        self.device = device
        self.failed = False
        if device.type == "cuda":
            torch.cuda.set_device(device)
        # DDP's constructor imports torch._dynamo: seconds (more on a busy machine). Import it before joining, so
        # that no rank sits in a timed collective while another is still importing.
        import torch._dynamo  # noqa: F401
        if not dist.is_initialized():
            try:
                dist.init_process_group(self.backend, timeout=datetime.timedelta(seconds=self.timeout_s))
            except ValueError as e:           # e.g. MASTER_ADDR missing: WORLD_SIZE set by hand, not by torchrun
                raise UserError(f"cannot join the distributed run ({e}); start it with torchrun") from None
            except RuntimeError as e:
                raise self._failure(e) from None
            atexit.register(self._close)

    def _close(self):
        # After a peer failure, tearing the group down can wait on the dead peer: leave it to process exit.
        if not self.failed and dist.is_initialized():
            dist.destroy_process_group()

    def _failure(self, e: BaseException) -> UserError:
        self.failed = True
        reason = " ".join(str(e).split())[:300]
        return UserError(f"distributed training stopped: another process failed, or did not answer within "
                         f"--ddp-timeout {self.timeout_s:g} s ({self.backend}: {reason}); see the other "
                         f"processes' output, then continue from the last checkpoint with --resume")

    @contextmanager
    def guard(self):
        """Turn a peer's death or silence inside the block into a one-line UserError (exit 2), not a hang."""
        try:
            yield
        except RuntimeError as e:
            if not _is_comm_failure(e):
                raise
            raise self._failure(e) from None

    def gather(self, state: tuple | None, loss: torch.Tensor):
        """Local state shares (L, n, H) and local loss sum -> global state (L, K*n, H) in rank order, global loss.
        A task without carried state (None) gathers the loss alone and gets None back."""
        K = self.world_size
        parts = [s.reshape(-1) for s in state or ()]
        flat = torch.cat(parts + [loss.reshape(1).to(parts[0].dtype if parts else loss.dtype)])
        out = torch.empty(K * flat.numel(), dtype=flat.dtype, device=flat.device)
        all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
        all_gather(out, flat)
        out = out.view(K, -1)                                                   # row r = rank r's flat
        full, off = [], 0
        for s in state or ():
            L, n, H = s.shape
            part = out[:, off:off + s.numel()].reshape(K, L, n, H)               # (K, L, n, H)
            full.append(part.transpose(0, 1).reshape(L, K * n, H))              # (L, N, H)
            off += s.numel()
        return (None if state is None else tuple(full)), out[:, -1].sum()

    def max_over_ranks(self, *values: int) -> tuple:
        t = torch.tensor([int(v) for v in values], dtype=torch.int64,
                         device=self.device if self.backend == "nccl" else "cpu")
        with self.guard():
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return tuple(int(v) for v in t.tolist())
