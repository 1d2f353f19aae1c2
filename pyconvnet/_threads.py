"""Thread control shared by the ops and the estimator.

The convolution kernels call BLAS from their own OpenMP threads. A BLAS that
also spreads every call over all cores would put n_threads x n_cores threads
on the machine, so while kernels run BLAS is held to one thread. The limit is
set once for a whole ``fit`` or ``predict`` (and once per public op call), not
per batch: changing it costs tens of microseconds.
"""
import threading
from contextlib import contextmanager

from threadpoolctl import ThreadpoolController

from ._openmp import effective_n_threads, openmp_enabled

__all__ = ["blas_single_threaded", "effective_n_threads", "openmp_enabled"]

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
