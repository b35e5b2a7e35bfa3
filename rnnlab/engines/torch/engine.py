"""The torch engine class: the engine interface (rnnlab/engines/numpy/engine.py documents it) over the one network
of rnnlab/engines/torch/model.py, for every task, on one device and, under torchrun, one rank of many.

It offers exactly the NumPy engine's interface (arrays crossing it are NumPy; logits are float64), so the training
loop, sampling and the task shapes drive it unchanged. Inside, everything stays torch:

    params      Params: a dict name -> nn.Parameter of a Net (model.py), NumPy names and order; `.module`
                is the network, `.ddp` its DistributedDataParallel wrapper under torchrun (None otherwise)
    opt_state   OptState (optim.py): the NumPy engine's keys, tensors on the device
    state       tuple of (L, N, H) tensors on the device, always the full N streams (also under DDP)

Same numbers as the NumPy engine: parameters are initialised by the NumPy engine's init_params (the same seed
gives the same weights in both engines); the loss is summed over the scored positions and averaged over the rows;
a non-finite loss or gradient norm skips the update and returns ok=False. In float64 on the CPU the two engines
agree to ~1e-14 for every task (tests/test_torch_engine.py, tests/test_tasks_engines.py). Dropout masks come from
torch's generator, reseeded every step from the run's NumPy generator, so a run with dropout resumes exactly on
the CPU (cuDNN keeps its own dropout state on CUDA).

    >>> from rnnlab.config import ModelConfig, TrainConfig
    >>> e = Engine(ModelConfig(cell="lstm", vocab_size=4, hidden_size=3), TrainConfig(dtype="float64"), device="cpu")
    >>> p = e.init_params(0)
    >>> logits, state = e.step(p, np.array([1, 2]), e.zero_state(2))
    >>> logits.shape, logits.dtype, e.export_state(state)[1].shape
    ((2, 4), dtype('float64'), (1, 2, 3))
"""
from __future__ import annotations

import contextlib
import math

import numpy as np
import torch

from ... import cells
from ...errors import UserError
from ..numpy import model as np_model
from ..numpy import optim as np_optim
from . import distributed, optim
from .device import DTYPES, pick_device
from .model import Net, loss_sum, zero_state

LONG = ("x", "y", "src", "labels")       # batch keys holding ids or labels; "mask" and "src_mask" are bool


class Params(dict):
    """name -> nn.Parameter of `module`, in state_dict order; `ddp` is its DDP wrapper under torchrun, else None."""

    def __init__(self, module: Net):
        super().__init__(module.named_parameters())
        self.module = module
        self.ddp = None


class Engine:
    """Torch engine for one (ModelConfig, TrainConfig) pair on one device (and, under torchrun, one rank)."""
    name = "torch"

    def __init__(self, mcfg, tcfg, device: str = "auto", precision: str = "fp32", ddp_timeout: float | None = None):
        self.mcfg, self.tcfg = mcfg, tcfg
        self.dtype = DTYPES[tcfg.dtype]
        world = distributed.world_from_env()
        self.torch_device = pick_device(device or "auto", tcfg.dtype, precision or "fp32", world and world[2])
        self.bf16 = precision == "bf16"
        self.group, self.rank, self.world_size = None, 0, 1
        desc = str(self.torch_device) + (", bf16 autocast" if self.bf16 else "")
        if world is not None:
            K, N = world[1], tcfg.batch_size
            if N % K:
                raise UserError(f"--batch-size {N} streams cannot be shared evenly by the {K} processes torchrun "
                                f"started; use a batch size divisible by {K}, or --nproc-per-node that divides {N}")
            self.group = distributed.Group(self.torch_device, ddp_timeout)
            self.rank, self.world_size = self.group.rank, K
            desc += f", DDP {K} processes ({self.group.backend}), {N // K} of N={N} streams each"
        self.device = desc

    @property
    def state_names(self) -> tuple:
        return cells.get(self.mcfg.cell).state

    # --- creating and moving arrays -------------------------------------------------------------------------
    def init_params(self, seed: int) -> Params:
        """The NumPy engine's initialisation (the same numbers for the same seed), loaded onto the device."""
        return self.load_params(np_model.init_params(self.mcfg, seed, np.dtype(self.tcfg.dtype)))

    def init_opt_state(self, params: Params) -> optim.OptState:
        return self.load_opt_state(np_optim.init_state(self.export(params), self.tcfg))

    def zero_state(self, n: int) -> tuple:
        return zero_state(self.mcfg, n, self.dtype, self.torch_device)

    def load_params(self, arrays: dict) -> Params:
        """A model holding `arrays`; under torchrun also its DDP wrapper (DDP's constructor is a collective: every
        rank calls this at the same point of the training loop, before the first step)."""
        module = Net(self.mcfg).to(device=self.torch_device, dtype=self.dtype)
        module.load_state_dict({k: torch.as_tensor(np.array(v)) for k, v in arrays.items()})   # copies, strict
        params = Params(module)
        if self.group is not None:
            from torch.nn.parallel import DistributedDataParallel
            ids = [self.torch_device.index] if self.torch_device.type == "cuda" else None
            with self.group.guard():
                params.ddp = DistributedDataParallel(module, device_ids=ids)
        return params

    def load_opt_state(self, arrays: dict) -> optim.OptState:
        return optim.OptState({k: torch.tensor(np.array(v, dtype=np.int64)) if k == "step" else self._tensor(v)
                               for k, v in arrays.items()})

    def load_state(self, state: tuple) -> tuple:
        return tuple(self._tensor(s) for s in state)

    def export(self, arrays: dict) -> dict:
        return {k: v.detach().to("cpu").numpy().copy() for k, v in arrays.items()}

    def export_state(self, state: tuple) -> tuple:
        return tuple(s.detach().to("cpu", self.dtype).numpy().copy() for s in state)

    def _tensor(self, a) -> torch.Tensor:
        return torch.as_tensor(np.array(a)).to(self.torch_device, self.dtype)

    def _ids(self, a) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.long).to(self.torch_device, non_blocking=True)

    def _batch(self, batch: dict, lo: int = 0, hi: int | None = None) -> dict:
        """Rows lo:hi of a NumPy batch as tensors on the device: ids and labels int64, masks bool."""
        return {k: self._ids(v[lo:hi]) if k in LONG else torch.as_tensor(np.asarray(v[lo:hi], bool)).to(
                    self.torch_device) for k, v in batch.items() if v is not None}

    def _loss(self, logits, b: dict):
        """Summed cross-entropy of a task's logits: over the label (classify) or the scored steps."""
        return loss_sum(logits, b["y"], None if self.mcfg.task == "classify" else b.get("mask"))

    def _autocast(self):
        """--precision bf16: autocast to bfloat16 on this device (CUDA, or a CPU with AMX or AVX512-BF16)."""
        return torch.autocast(self.torch_device.type, dtype=torch.bfloat16) if self.bf16 else \
            contextlib.nullcontext()

    # --- the maths ------------------------------------------------------------------------------------------
    def train_step(self, params: Params, opt_state: optim.OptState, batch: dict, state, lr, rng):
        """One step of (truncated) BPTT on this rank's share of the rows (all of them in a single process).
        Returns ({"loss": nats per scored position over all rows, "grad_norm", "ok"}, the full new state)."""
        guard = self.group.guard() if self.group else contextlib.nullcontext()
        with guard:
            return self._train_step(params, opt_state, batch, state, lr, rng)

    def _train_step(self, params, opt_state, batch, state, lr, rng):
        N = len(batch["x"])
        if N % self.world_size:
            raise UserError(f"a batch of {N} rows cannot be shared evenly by the {self.world_size} processes "
                            f"torchrun started; use a --batch-size divisible by {self.world_size} (and at least "
                            f"that many training rows)")
        n = N // self.world_size
        lo, hi = self.rank * n, (self.rank + 1) * n                 # this rank's contiguous share of the rows
        net = params.module if params.ddp is None else params.ddp   # DDP averages the gradients across ranks
        if not params.module.training:
            net.train()
        if rng is not None and self.mcfg.dropout > 0:               # dropout masks from the run's RNG: exact resume
            torch.manual_seed(int(rng.integers(2 ** 62)) + self.rank)
        for p in params.values():
            p.grad = None
        b = self._batch(batch, lo, hi)
        local = None if state is None else tuple(s[:, lo:hi].contiguous() for s in state)   # each (L, n, H)
        with self._autocast():
            logits, new = net(b, local)                             # (n, T, V) or (n, C)
            loss = self._loss(logits, b)                            # summed over the share's scored positions
        (loss / n).backward()                                       # sum over positions, mean over rows (DDP: / K)
        new = None if new is None else tuple(s.detach().to(self.dtype) for s in new)
        loss = loss.detach()
        if self.group is not None:
            new, loss = self.group.gather(new, loss)                # full (L, N, H) state, loss over all N rows
        grads = [p.grad for p in params.values()]
        norm = optim.global_norm(grads)
        loss_v, norm_v = torch.stack([loss.to(norm.dtype), norm]).tolist()   # the step's one host sync
        ok = math.isfinite(loss_v) and math.isfinite(norm_v)       # the same on every rank (gathered, all-reduced)
        if ok:
            optim.clip_(grads, self.tcfg, norm)
            optim.update_(params, opt_state, self.tcfg, lr)
        return {"loss": loss_v / max(np_model.scored(self.mcfg, batch), 1), "grad_norm": norm_v, "ok": ok}, new

    def _eval_mode(self, params: Params):
        if params.module.training:
            params.module.eval()
        return params.module

    def evaluate(self, params: Params, batch: dict, state):
        """Summed loss in nats over the batch's scored positions (no dropout, no collectives: every rank may
        evaluate alone)."""
        module, b = self._eval_mode(params), self._batch(batch)
        with torch.no_grad(), self._autocast():
            logits, new = module(b, state)
            loss = self._loss(logits, b)
        return float(loss), None if new is None else tuple(s.to(self.dtype) for s in new)

    def logits(self, params: Params, batch: dict, state=None):
        """(logits float64 NumPy (N, T, V) or (N, C) for classify, new state), no dropout."""
        module = self._eval_mode(params)
        with torch.no_grad(), self._autocast():
            logits, new = module(self._batch(batch), state)
        return logits.to("cpu", torch.float64).numpy(), None if new is None else tuple(s.to(self.dtype) for s in new)

    def initial_state(self, params: Params, batch: dict) -> tuple:
        """Where a decoder starts: seq2seq's encoding of batch["src"], conditional's label rows, else zeros."""
        if self.mcfg.task not in ("seq2seq", "conditional"):
            return self.zero_state(len(batch["x"]))
        module = self._eval_mode(params)
        with torch.no_grad(), self._autocast():
            return tuple(s.to(self.dtype) for s in module.initial_state(self._batch(batch)))

    def step(self, params: Params, ids, state):
        """One time step for K sequences: ids (K,) -> logits (K, V) float64 NumPy, new state."""
        module = self._eval_mode(params)
        with torch.no_grad(), self._autocast(), self._one_step_kernels():
            logits, new = module.step(self._ids(np.asarray(ids).reshape(-1, 1)), state)   # (K, 1, V)
        return logits[:, 0].to("cpu", torch.float64).numpy(), tuple(s.to(self.dtype) for s in new)

    def _one_step_kernels(self):
        """oneDNN's LSTM pays a set-up cost per call that only a long sequence amortises; for one character at a
        time PyTorch's plain CPU kernels are several times faster (bench/bench_torch.py measures both)."""
        return _onednn_off() if self.torch_device.type == "cpu" else contextlib.nullcontext()

    # --- agreement between ranks ----------------------------------------------------------------------------
    def max_over_ranks(self, *values: int) -> tuple:
        """The maximum of each value over all processes (the values themselves in a single process)."""
        return self.group.max_over_ranks(*values) if self.group else tuple(int(v) for v in values)


@contextlib.contextmanager
def _onednn_off():
    """torch.backends.mkldnn.flags(enabled=False) without its other effects: flags() also resets allow_tf32 and
    the fp32 precision (and warns about TF32 on every CPU-only build), so only `enabled` is switched here."""
    was = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = was
