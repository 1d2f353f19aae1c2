"""Thread-count helpers for the OpenMP kernels.

Design: the number of threads is resolved once, in Python, and passed down as
an int to every ``prange(..., num_threads=n_threads)``. ``None`` means "what
OpenMP would use": ``omp_get_max_threads()`` honours ``OMP_NUM_THREADS`` and
the limits threadpoolctl sets on the OpenMP runtime, so an estimator running
inside a joblib worker (which limits OpenMP to its share of the cores) does not
oversubscribe the machine.
"""
import os

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define PYCONVNET_OPENMP 1
    #else
    #define PYCONVNET_OPENMP 0
    static int omp_get_max_threads(void) { return 1; }
    #endif
    """
    bint PYCONVNET_OPENMP
    int omp_get_max_threads() noexcept nogil


def openmp_enabled():
    """Whether the compiled kernels were built with OpenMP."""
    return bool(PYCONVNET_OPENMP)


def effective_n_threads(n_threads=None):
    """Resolve a user's ``n_threads`` to a positive int.

    ``None`` follows OpenMP (``OMP_NUM_THREADS``, threadpoolctl limits), capped
    by the number of CPUs this process may use. A negative value counts back
    from the number of CPUs, as in joblib: -1 is all of them.
    """
    if n_threads is not None and (
        isinstance(n_threads, bool) or not isinstance(n_threads, (int,))
        and not hasattr(n_threads, "__index__")
    ):
        raise TypeError(f"n_threads must be None or an int, got {n_threads!r}")
    if n_threads is not None:
        n_threads = int(n_threads)
        if n_threads == 0:
            raise ValueError("n_threads must be None or a non-zero int, got 0")
    if not PYCONVNET_OPENMP:
        return 1
    try:
        n_cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        n_cpus = os.cpu_count() or 1
    if n_threads is None:
        return max(1, min(omp_get_max_threads(), n_cpus))
    if n_threads < 0:
        return max(1, n_cpus + 1 + n_threads)
    return n_threads
