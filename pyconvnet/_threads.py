"""Thread control shared by the ops and the estimator.

The convolution kernels call BLAS from their own OpenMP threads. A BLAS that
also spreads every call over all cores would put n_threads x n_cores threads
on the machine, so while kernels run BLAS is held to one thread. The limit is
set once for a whole ``fit`` or ``predict`` (and once per public op call), not
per batch: changing it costs tens of microseconds.
"""
import threading
import time
from contextlib import contextmanager

from threadpoolctl import ThreadpoolController

from ._kernels.runtime import effective_n_threads, openmp_enabled

__all__ = ["ThreadGovernor", "blas_single_threaded", "effective_n_threads",
           "openmp_enabled"]

_lock = threading.Lock()
_state = {"controller": None, "depth": 0, "limiter": None}


def _controller():
    # Inspecting the loaded libraries is slow (milliseconds); do it once.
    if _state["controller"] is None:
        _state["controller"] = ThreadpoolController()
    return _state["controller"]


@contextmanager
def blas_single_threaded():
    """Hold BLAS to one thread inside the block; re-entrant and thread-safe.

    Only the outermost block, across all Python threads, sets and restores the
    limit, so nested calls (an estimator calling ops) cost nothing.
    """
    with _lock:
        if _state["depth"] == 0:
            _state["limiter"] = _controller().limit(limits=1, user_api="blas")
        _state["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0:
                _state["limiter"].restore_original_limits()
                _state["limiter"] = None


class ThreadGovernor:
    """Picks the thread count of each training step from measured step times.

    The kernels end every parallel region at a barrier. When another process
    holds one of the cores, a barrier waits for a descheduled thread to get
    back on a core, and training with as many threads as cores fell to a
    quarter of its quiet speed on a 2-core machine (measured by
    ``benchmarks/bench_train.py --contention``) — slower than one thread. So
    during ``fit`` the governor times a few steps at ``n_threads`` and at one
    thread fewer, keeps the faster for a while, and probes again, holding the
    winner longer each time the same count wins. Every kernel gives
    bit-identical results for any thread count, so the choice never changes
    the model, only how fast it is trained.
    """

    PROBE_STEPS = 3
    MIN_HOLD, MAX_HOLD = 24, 384

    def __init__(self, set_threads, n_threads, clock=time.perf_counter):
        self._set = set_threads
        self._clock = clock
        self.n_threads = n_threads
        self._candidates = [n_threads, n_threads - 1] if n_threads > 1 else [1]
        self._hold = self.MIN_HOLD
        self._winner = None
        self._set(n_threads)
        self._begin_probe(warmup=2)

    def resume(self, set_threads):
        """Continue with another call's network (``partial_fit`` in a loop, a
        warm start): what was learnt about this machine's load carries over,
        instead of every call paying for a fresh round of probes."""
        self._set = set_threads
        self._set(self._winner if self._winner is not None else self.n_threads)

    def _begin_probe(self, warmup=0):
        self._plan = [None] * warmup + [c for c in self._candidates
                                        for _ in range(self.PROBE_STEPS)]
        self._times = {c: [] for c in self._candidates}
        self._left = 0

    def start(self):
        """Call before a step; sets the thread count the step runs with."""
        if len(self._candidates) == 1:
            return
        if self._plan:
            count = self._plan[0]
            if count is not None:
                self._set(count)
        self._t0 = self._clock()

    def stop(self, n_images):
        """Call after the step with the number of images it trained on."""
        if len(self._candidates) == 1:
            return
        elapsed = self._clock() - self._t0
        if self._plan:
            count = self._plan.pop(0)
            if count is not None:
                self._times[count].append((elapsed, n_images))
            if not self._plan:
                # Time per image over all of a count's probe steps, not the
                # median step: on a busy machine most steps at n threads run
                # at quiet speed and a few wait many milliseconds at a barrier
                # for a descheduled thread. Those few are the cost of the
                # extra thread; a median hid them and kept 2 threads at a
                # third of the speed of one (nielsen, batch 10, beside one
                # busy process).
                rates = {c: sum(e for e, _ in t) / max(sum(n for _, n in t), 1)
                         for c, t in self._times.items()}
                winner = min(rates, key=rates.get)
                self._hold = (min(2 * self._hold, self.MAX_HOLD)
                              if winner == self._winner else self.MIN_HOLD)
                self._winner = winner
                self._set(winner)
                self._left = self._hold
            return
        self._left -= 1
        if self._left <= 0:
            self._begin_probe()
