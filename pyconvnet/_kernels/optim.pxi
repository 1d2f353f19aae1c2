# The body of optim_generic, optim_avx2 and optim_avx512: one source compiled once
# per instruction set (setup.py's ISA_FLAGS).
"""Optimizer steps over the network's flat parameter array, one pass each.

Design
------
Every parameter of a network lives in one flat array (see ``Network``), its
gradient in another, and each optimizer state (velocity; Adam's two moments)
in one more. A step is then one loop over those arrays, reading each once and
writing each once. The same step written as NumPy expressions takes four
(SGD) to eleven (Adam) passes over memory and allocates temporaries
(benchmarks/PERFORMANCE.md has what that cost).

The loops are C over ``restrict`` pointers so the compiler vectorises them
(``sqrt`` included: the build passes -fno-math-errno). Each element's update
depends on that element alone, so the result does not depend on how the loop
is split: it is split into fixed blocks handed to ``n_threads`` threads
(dynamically, so that a thread a busy machine deschedules does not hold the
step up), and the result is the same for any number of threads. A step
touches every parameter of the network three or four times and is bound by
memory. Below two blocks the step runs on the calling thread.

Nothing here validates: ``pyconvnet._optimizers`` passes arrays of one dtype
and one size.
"""
from cython cimport floating
from cython.parallel cimport prange

from pyconvnet._kernels.common cimport _n_threads

# Values per block of a parallel step: large enough that handing out a block
# costs nothing next to its memory traffic, small enough that both cores get
# work on a network of 100k parameters.
cdef enum:
    BLOCK = 32768

cdef extern from *:
    """
    #include <math.h>
    #include <stddef.h>
    #if defined(_MSC_VER)
    #define PCN_RESTRICT __restrict
    #else
    #define PCN_RESTRICT __restrict__
    #endif

    /* v = mu * v - lr * g;  p += v  (Nesterov: p += mu * v - lr * g). */
    #define PCN_SGD(NAME, T)                                                  \\
    static void NAME(T* PCN_RESTRICT p, const T* PCN_RESTRICT g,            \\
                     T* PCN_RESTRICT v, ptrdiff_t n, T lr, T mu,            \\
                     int nesterov) {                                         \\
        ptrdiff_t k;                                                          \\
        if (nesterov) {                                                       \\
            for (k = 0; k < n; k++) {                                         \\
                T step = lr * g[k];                                           \\
                T vk = mu * v[k] - step;                                      \\
                v[k] = vk;                                                    \\
                p[k] = p[k] + (mu * vk - step);                               \\
            }                                                                 \\
        } else {                                                              \\
            for (k = 0; k < n; k++) {                                         \\
                T vk = mu * v[k] - lr * g[k];                                 \\
                v[k] = vk;                                                    \\
                p[k] = p[k] + vk;                                             \\
            }                                                                 \\
        }                                                                     \\
    }
    PCN_SGD(pcn_sgd_f, float)
    PCN_SGD(pcn_sgd_d, double)

    /* m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
       p -= lr * m / (sqrt(v) + eps), lr already bias-corrected. */
    #define PCN_ADAM(NAME, T, SQRT)                                           \\
    static void NAME(T* PCN_RESTRICT p, const T* PCN_RESTRICT g,            \\
                     T* PCN_RESTRICT m, T* PCN_RESTRICT v, ptrdiff_t n,     \\
                     T lr, T b1, T b2, T eps) {                              \\
        ptrdiff_t k;                                                          \\
        for (k = 0; k < n; k++) {                                             \\
            T gk = g[k];                                                      \\
            T mk = b1 * m[k] + (1 - b1) * gk;                                 \\
            T vk = b2 * v[k] + (1 - b2) * (gk * gk);                          \\
            m[k] = mk;                                                        \\
            v[k] = vk;                                                        \\
            p[k] = p[k] - lr * mk / (SQRT(vk) + eps);                         \\
        }                                                                     \\
    }
    PCN_ADAM(pcn_adam_f, float, sqrtf)
    PCN_ADAM(pcn_adam_d, double, sqrt)
    """
    void pcn_sgd_f(float* p, const float* g, float* v, ptrdiff_t n, float lr,
                   float mu, int nesterov) noexcept nogil
    void pcn_sgd_d(double* p, const double* g, double* v, ptrdiff_t n,
                   double lr, double mu, int nesterov) noexcept nogil
    void pcn_adam_f(float* p, const float* g, float* m, float* v, ptrdiff_t n,
                    float lr, float b1, float b2, float eps) noexcept nogil
    void pcn_adam_d(double* p, const double* g, double* m, double* v,
                    ptrdiff_t n, double lr, double b1, double b2,
                    double eps) noexcept nogil


def sgd_step(
    floating[::1] params,          # IN and OUT (n,)
    const floating[::1] grads,     # IN  (n,)
    floating[::1] velocity,        # IN and OUT (n,)
    double learning_rate, double momentum, bint nesterov,
    int n_threads=1,
):
    """One SGD step with (Nesterov) momentum, in place."""
    cdef Py_ssize_t n = params.shape[0], blk, k, len_
    cdef Py_ssize_t n_blocks = (n + BLOCK - 1) // BLOCK
    if n == 0:
        return
    for blk in prange(n_blocks, nogil=True, schedule='dynamic',
                      num_threads=_n_threads(n_threads, n_blocks)):
        k = blk * BLOCK
        len_ = min(<Py_ssize_t> BLOCK, n - k)
        if floating is float:
            pcn_sgd_f(&params[k], &grads[k], &velocity[k], len_,
                      <float> learning_rate, <float> momentum, nesterov)
        else:
            pcn_sgd_d(&params[k], &grads[k], &velocity[k], len_,
                      learning_rate, momentum, nesterov)


def adam_step(
    floating[::1] params,          # IN and OUT (n,)
    const floating[::1] grads,     # IN  (n,)
    floating[::1] m,               # IN and OUT (n,): first moment
    floating[::1] v,               # IN and OUT (n,): second moment
    double learning_rate, double beta_1, double beta_2, double epsilon,
    int n_threads=1,
):
    """One Adam step in place; ``learning_rate`` is already bias-corrected."""
    cdef Py_ssize_t n = params.shape[0], blk, k, len_
    cdef Py_ssize_t n_blocks = (n + BLOCK - 1) // BLOCK
    if n == 0:
        return
    for blk in prange(n_blocks, nogil=True, schedule='dynamic',
                      num_threads=_n_threads(n_threads, n_blocks)):
        k = blk * BLOCK
        len_ = min(<Py_ssize_t> BLOCK, n - k)
        if floating is float:
            pcn_adam_f(&params[k], &grads[k], &m[k], &v[k], len_,
                       <float> learning_rate, <float> beta_1, <float> beta_2,
                       <float> epsilon)
        else:
            pcn_adam_d(&params[k], &grads[k], &m[k], &v[k], len_,
                       learning_rate, beta_1, beta_2, epsilon)
