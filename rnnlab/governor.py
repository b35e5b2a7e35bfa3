"""The training loop's thread governor: it keeps a run on the faster of its n threads and 1 while the machine's
load changes (--threads 0, auto, only; rnnlab/threads.py chooses n).

Why measure while running: on an idle machine a second thread pays (torch's LSTM training 1.3-1.8x on 2 cores),
but when another job holds a core, each of the hundreds of parallel regions in a training step waits for the
scheduler to run the missing thread, and the step takes 10-100x longer (measured: two torch runs at once on 2
threads each, 22x; issue 13: ~90x). Which case holds is known only while the run goes on: the other job may start
after this one. So the loop times each step (`with governor:`):

    trial   after WARM steps, every `hold` seconds, and at once when, on n threads, SLOW steps in a row take
            over SLOWER x the kept time: TRIAL steps on 1 thread, then up to TRIAL on n (cut short as soon as a
            step on n takes over SLOWER x the median on 1: that is the collapse), the first step after each switch
            not counted in the medians; the faster by median step time stays
    hold    HOLD seconds, doubled each time a trial keeps the same count (up to MAX_HOLD), HOLD again on a change;
            at least COST x the trial's own seconds, so that a model with slow steps is not held in trials

A trial costs a few steps on the slower count: at most ~2% of an idle run's speed, less as the hold grows.

    >>> g = Governor(2, use=lambda n: n, clock=iter(range(100)).__next__)
    >>> for dt in [0.1] * 3 + [0.2] * 6 + [0.1] * 6:    # warm-up, 1 thread 0.2 s a step, 2 threads 0.1 s
    ...     g.observe(dt)
    >>> g.threads, g.hold
    (2, 30.0)

Switching is free for reproducibility only where the arithmetic does not depend on the thread count: a BLAS may
split a product differently on 1 and on n threads and round differently (OpenBLAS's float32 GEMMs do with its
Haswell kernels, OPENBLAS_CORETYPE=Haswell, measured: NumPy engine, 3.8e-6 apart after 30 steps; with its AVX-512
kernels they did not), where torch's CPU kernels gave the same bits on 1 and 2 threads for every model tried. So
by default (--adapt-threads auto) a run checks its own case before its first trial (`exact`: exact_on_one on the
run's parameters and batch) and adapts only when a step is the same bit for bit on both counts, saying which
through `log`; --adapt-threads on adapts anyway, off never. The check runs inside the training loop,
where Ctrl-C is handled, and only when a switch is about to be tried. One exception: when the check's own step on
n threads took over COLLAPSE x its step on 1 (another job holds a core now: two NumPy runs on OpenBLAS's Haswell
kernels measured 0.01 of their solo speed each), the run adapts anyway and says that it is no longer
bit-reproducible.
"""
from __future__ import annotations

import copy
import statistics
import time

import numpy as np

from . import threads as pools


class Governor:
    """Times training steps and switches this process's pools between `n` threads and 1 (see the module); with
    adapt=False (a count the user chose) it only reports n."""
    WARM, TRIAL, SLOW, SLOWER, HOLD, MAX_HOLD, COST, COLLAPSE = 3, 5, 2, 2.0, 30.0, 600.0, 25, 3.0

    def __init__(self, n: int, adapt: bool = True, use=pools.use, clock=time.monotonic, exact=None, log=None):
        self.n, self.adapt, self.use, self.clock = n, adapt, use, clock
        self.exact, self.log = exact, log   # exact() -> (same bits?, n/1 step time), once; log(str) its verdict
        self.threads, self.steps, self.slow, self.hold, self.until = n, 0, 0, self.HOLD, float("inf")
        self.ran_on = n                     # the count the last observed step ran on
        self.trial: dict | None = None      # threads -> step seconds in the running trial
        self.ref = None                     # the kept count's median step seconds
        self.kept = None                    # the count the last trial kept
        self.t0 = 0.0

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, kind, value, tb):
        if kind is None:
            self.observe(time.perf_counter() - self.t0)

    def observe(self, seconds: float) -> None:
        """One training step took `seconds`: record it, and start, go on with or end a trial."""
        self.ran_on = self.threads
        if self.n <= 1 or not self.adapt:
            return
        self.steps += 1
        if self.trial is not None:
            self._record(seconds)
        elif self.steps == self.WARM or self.clock() >= self.until or self._slowed(seconds):
            if self.exact is not None and not self._check():
                return
            self.trial = {1: [], self.n: []}
            self._switch(1)

    def _check(self) -> bool:
        """Run the exactness check once: adapt when 1 and n threads give the same bits, or when n collapsed
        (slower) now; otherwise hold n for good."""
        (same, slower), self.exact = self.exact(), None
        self.adapt = same or slower > self.COLLAPSE
        n = self.n
        if self.log is not None:
            self.log(f"threads: a step gives the same bits on 1 and {n}: adapting to the load" if same else
                     f"threads: 1 and {n} round differently here, but {n} ran {slower:.0f}x slower than 1 (another "
                     f"job holds a core): adapting; this run is not bit-reproducible (--adapt-threads off holds)"
                     if self.adapt else f"threads: 1 and {n} round differently here: held on {n} "
                     f"(bit-reproducible; --adapt-threads on to adapt anyway)")
        return self.adapt

    def _slowed(self, seconds: float) -> bool:
        """SLOW steps in a row over SLOWER x the kept time, on n threads (on 1, more load is no reason to try n)."""
        slower = self.threads == self.n and self.ref is not None and seconds > self.SLOWER * self.ref
        self.slow = self.slow + 1 if slower else 0
        return self.slow >= self.SLOW

    def _record(self, seconds: float) -> None:
        times = self.trial[self.threads]
        times.append(seconds)
        counted = times[1:]                             # the first step after a switch is not counted
        if self.threads == 1:
            if len(counted) >= self.TRIAL:
                self._switch(self.n)
            return
        one = statistics.median(self.trial[1][1:])
        if len(counted) < self.TRIAL and seconds <= self.SLOWER * one:
            return                                      # any step on n far slower than on 1 ends the trial
        many = statistics.median(counted or times)
        best = self.n if many <= one else 1
        self.hold = min(2 * self.hold, self.MAX_HOLD) if best == self.kept else self.HOLD
        spent = sum(map(sum, self.trial.values()))
        self.kept, self.ref, self.trial, self.slow = best, min(one, many), None, 0
        self.until = self.clock() + max(self.hold, self.COST * spent)
        self._switch(best)

    def _switch(self, n: int) -> None:
        if n != self.threads:
            self.threads = self.use(n)


def exact_on_one(engine, params, opt_state, batch: dict, state, lr: float, rng, n: int, use=pools.use) -> tuple:
    """(whether one training step and one evaluation of `batch` give the same bits on 1 thread as on `n`, the step's
    seconds on n threads / on 1). The step runs on copies of the parameters, the optimiser state and the RNG, so the
    run itself is untouched; the pools are left on n threads. Compares the updated parameters, the step's loss and
    new state, and the evaluation's loss. A check of this run's shapes on this machine (a BLAS splits a product by
    its shape), not a proof for others: costs two steps and two forward passes."""
    seen, took = [], []
    for k in (1, n):
        use(k)
        p, o = engine.load_params(engine.export(params)), engine.load_opt_state(engine.export(opt_state))
        t0 = time.perf_counter()
        m, new = engine.train_step(p, o, batch, state, lr, copy.deepcopy(rng))
        took.append(time.perf_counter() - t0)
        loss, _ = engine.evaluate(p, batch, state)
        arrays = list(engine.export(p).values()) + list(engine.export_state(new) if new is not None else ())
        seen.append(([np.asarray(a) for a in arrays], m["loss"], loss))
    use(n)
    (a1, *rest1), (an, *restn) = seen
    same = rest1 == restn and all(np.array_equal(x, y) for x, y in zip(a1, an))
    return same, took[1] / max(took[0], 1e-9)
