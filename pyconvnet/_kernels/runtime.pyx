"""What the compiled kernels know about the machine they run on: the
OpenMP thread count, the CPU's instruction sets, and the activation codes
every kernel shares (the enum of common.h, exported to Python here once).

Threads
-------

Design: the number of threads is resolved once, in Python, and passed down as
an int to every ``prange(..., num_threads=n_threads)``. ``None`` means "what
OpenMP would use": ``omp_get_max_threads()`` honours ``OMP_NUM_THREADS`` and
the limits threadpoolctl sets on the OpenMP runtime, so an estimator running
inside a joblib worker (which limits OpenMP to its share of the cores) does not
oversubscribe the machine.
"""
import os

from pyconvnet._kernels.common cimport (PCN_IDENTITY, PCN_RELU, PCN_SIGMOID,
                                        PCN_TANH)

#: The kernels' activation codes (common.h's enum) by name; every other
#: name, alias and property of an activation is in ``pyconvnet._activations``.
ACTIVATION_CODES = {"identity": PCN_IDENTITY, "relu": PCN_RELU,
                    "sigmoid": PCN_SIGMOID, "tanh": PCN_TANH}

cdef extern from *:
    """
    /* The instruction sets the CPU and the operating system support, as far
       as the compiler can ask: gcc and clang on x86 check CPUID and that the
       OS saves the vector registers (XGETBV). Elsewhere none is reported, and
       the baseline build runs. */
    static int pcn_cpu_has(int which) {
    #if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
        __builtin_cpu_init();
        if (which == 1)
            return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        if (which == 2)
            return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd")
                && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")
                && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2")
                && __builtin_cpu_supports("fma");
    #endif
        (void) which;
        return 0;
    }
    """
    int pcn_cpu_has(int which) noexcept nogil


def cpu_instruction_sets():
    """The instruction sets this CPU runs, best last: "generic" always,
    then "avx2" (AVX2 and FMA) and "avx512" (AVX-512 F, CD, BW, DQ and VL,
    as x86-64-v4) when the CPU and the operating system support them."""
    found = ["generic"]
    if pcn_cpu_has(1):
        found.append("avx2")
        if pcn_cpu_has(2):
            found.append("avx512")
    return tuple(found)


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


# At most this many threads per CPU: more only adds barrier waits, and an
# unbounded count (100,000) made the OpenMP runtime itself crash.
MAX_THREADS_PER_CPU = 4


def max_threads():
    """The largest ``n_threads`` accepted: 4 per CPU of this machine."""
    return MAX_THREADS_PER_CPU * (os.cpu_count() or 1)


def effective_n_threads(n_threads=None):
    """Resolve a user's ``n_threads`` to a positive int.

    ``None`` follows OpenMP (``OMP_NUM_THREADS``, threadpoolctl limits), capped
    by the number of CPUs this process may use. A negative value counts back
    from the number of CPUs, as in joblib: -1 is all of them. Accepted:
    ``1 <= n_threads <= max_threads()`` (4 per CPU) and
    ``-n_cpus <= n_threads <= -1``; anything else is a ValueError.
    """
    if n_threads is not None and (
        isinstance(n_threads, bool) or not isinstance(n_threads, (int,))
        and not hasattr(n_threads, "__index__")
    ):
        raise TypeError(f"n_threads must be None or an int, got {n_threads!r}")
    try:
        n_cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        n_cpus = os.cpu_count() or 1
    if n_threads is not None:
        n_threads = int(n_threads)
        if n_threads == 0 or n_threads > max_threads() or n_threads < -n_cpus:
            raise ValueError(
                f"n_threads must be None, an int in [1, {max_threads()}] (4 per "
                f"CPU) or in [-{n_cpus}, -1] (counting back from the CPUs), "
                f"got {n_threads}"
            )
    if not PYCONVNET_OPENMP:
        return 1
    if n_threads is None:
        return max(1, min(omp_get_max_threads(), n_cpus))
    if n_threads < 0:
        return max(1, n_cpus + 1 + n_threads)
    return n_threads
