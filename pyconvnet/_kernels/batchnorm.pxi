# The body of batchnorm_generic, batchnorm_avx2 and batchnorm_avx512: one source
# compiled once per instruction set (setup.py's ISA_FLAGS).
"""Batch normalisation of convolutional feature maps, with a fused activation.

For input x of shape (N, C, H, W) seen as (N, C, P), P = H * W, and sample
weights w (N,), each channel c is normalised over its values, the positions
of sample n counting w[n] times (M = P * sum(w)):

    mean_c = sum_n w[n] sum(x[n, c]) / M
    var_c = sum_n w[n] sum((x[n, c] - mean_c)^2) / M
    y = act(gamma_c * (x - mean_c) / sqrt(var_c + eps) + beta_c)

in training (the batch's own statistics), and with running statistics in
prediction (a per-channel scale and shift the caller computes). With unit
weights these are the usual batch statistics, bit for bit (x * 1.0 is
exact); a weight of 2 is the sample twice, as everywhere in the estimator,
and a weight of 0 leaves the sample out of the statistics.

Threads take whole channels (``prange`` over C): every sum of a channel is
computed by one thread in a fixed order (sample by sample, each plane in
partial sums accumulated into a double total: float blocks for float32, see
``common.h``), so results are bit-identical for any thread count. The
variance is the two-pass one (the mean first), which keeps float32 batches
with a large mean accurate. The elementwise loops are the C helpers of
``common.h``.

With ``argmax``, the max pooling that follows (windows = stride, no
overlap) runs in the same pass, as the convolution's does: forward writes
only the pooled output and its argmax (each plane is normalised into a
per-thread scratch plane and pooled from there), and backward rebuilds each
plane's gradient before the activation from the pooled gradient
(``_unpool_act``), once in scratch for the sums and once more in dx for the
input gradient: neither the full output nor its gradient reaches memory, and
the results are bit for bit those of the two layers in turn.

Nothing here validates: ``pyconvnet.ops`` checks every shape first.
"""
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport sqrt
from libc.string cimport memset

import numpy as np

from pyconvnet._kernels.common cimport (_act_grad, _n_threads, _affine, _bn_dx, _dotdev, _sqdev,
                                _max_pool_plane, _sum, _unpool_act)


cdef double _count(const double[::1] weights, Py_ssize_t P):
    """M: how many values each channel's statistics average, P positions per
    sample each counted with the sample's weight."""
    cdef double total = 0
    cdef Py_ssize_t n
    for n in range(weights.shape[0]):
        total += weights[n]
    return total * P


def _planes_scratch(n_threads, C, P, dtype):
    """One plane of scratch per thread (threads used, P), with the GIL."""
    n_used = _n_threads(n_threads, C)
    return np.empty((n_used, max(P, 1)), dtype=dtype), n_used


def forward_train(const floating[:, :, ::1] x, const double[::1] weights,
                  const floating[::1] gamma,
                  const floating[::1] beta, floating[:, :, ::1] out,
                  double[::1] mean, double[::1] var, double[::1] invstd,
                  double eps, int act, int n_threads,
                  int[:, :, ::1] argmax=None, int H=0, int W=0,
                  int pool_h=0, int pool_w=0,
                  const double[:, :, ::1] stats=None):
    """out = act(gamma * (x - mean) * invstd + beta) per channel, with the
    batch's (weighted) statistics, which are written to ``mean``, ``var``
    (biased) and ``invstd``. x and out: (N, C, P), out may not alias x;
    weights: (N,), summing to more than 0. With ``argmax`` (N, C, PQ), out
    (N, C, PQ) is instead the max pooling of that output over (pool_h,
    pool_w) windows of the (H, W) planes, and argmax each window's index.
    With ``stats`` (N, C, 2), each plane's sum and sum of squared deviations
    from its own mean, the statistics are combined from them (Chan et al.:
    the channel's squared deviations are the planes' plus P times each
    plane mean's squared distance to the channel's mean, every term weighted
    by its sample's weight), without reading x."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], P = x.shape[2]
    cdef Py_ssize_t c, n
    cdef double m, s, inv, M = _count(weights, P)
    cdef bint pool = argmax is not None
    cdef bint has_stats = stats is not None
    cdef int POH = H // pool_h if pool else 0
    cdef int POW = W // pool_w if pool else 0
    cdef floating* plane
    cdef int n_used
    if N == 0 or P == 0:
        return
    scratch_arr, n_used = _planes_scratch(
        n_threads, C, P if pool else 0,
        np.float32 if floating is float else np.float64)
    cdef floating[:, ::1] scratch = scratch_arr
    for c in prange(C, nogil=True, num_threads=n_used, schedule='dynamic'):
        s = 0
        for n in range(N):
            s = s + weights[n] * (stats[n, c, 0] if has_stats
                                  else _sum(&x[n, c, 0], P))
        m = s / M
        s = 0
        for n in range(N):
            if has_stats:
                s = s + weights[n] * (stats[n, c, 1] + P * (stats[n, c, 0] / P - m)
                                      * (stats[n, c, 0] / P - m))
            else:
                s = s + weights[n] * _sqdev(&x[n, c, 0], P, m)
        inv = 1 / sqrt(s / M + eps)
        mean[c] = m
        var[c] = s / M
        invstd[c] = inv
        for n in range(N):
            plane = &scratch[threadid(), 0] if pool else &out[n, c, 0]
            _affine(plane, &x[n, c, 0], <floating> (gamma[c] * inv),
                    <floating> (beta[c] - m * gamma[c] * inv), P, act)
            if pool:
                _max_pool_plane(plane, &out[n, c, 0], &argmax[n, c, 0], H, W,
                                pool_h, pool_w, pool_h, pool_w, POH, POW)


def forward_scale(const floating[:, :, ::1] x, const floating[::1] scale,
                  const floating[::1] shift, floating[:, :, ::1] out,
                  int act, int n_threads):
    """out = act(x * scale + shift) per channel (prediction, where scale and
    shift come from the running statistics). out may be x."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], P = x.shape[2]
    cdef Py_ssize_t i
    if N == 0 or P == 0:
        return
    for i in prange(N * C, nogil=True, num_threads=_n_threads(n_threads, N * C),
                    schedule='static'):
        _affine(&out[i // C, i % C, 0], &x[i // C, i % C, 0], scale[i % C],
                shift[i % C], P, act)


def backward(const floating[:, :, ::1] dy, const floating[:, :, ::1] x,
             const double[::1] weights,
             const floating[:, :, ::1] y, const floating[::1] gamma,
             const double[::1] mean, const double[::1] invstd,
             floating[:, :, ::1] dx, floating[::1] dgamma,
             floating[::1] dbeta, int act, int n_threads,
             const int[:, :, ::1] argmax=None):
    """Gradients of ``forward_train``: dx (N, C, P), dgamma and dbeta (C,).
    y is forward's output (the activation's derivative is taken from it);
    after a pooled forward pass, dy and y are the pooled gradient and
    output (N, C, PQ) and ``argmax`` the forward pass's.

    With M = P * sum(w), xhat = (x - mean) * invstd and dz the gradient
    before the activation, sample n's input gradient is
    gamma * invstd * (dz - w[n] * (sum(dz) + xhat * sum(dz * xhat)) / M):
    the statistics move with x[n] in proportion to its weight."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], P = x.shape[2]
    cdef Py_ssize_t c, n
    cdef double sb, sd, g, inv, m, M = _count(weights, P)
    cdef bint pool = argmax is not None
    cdef Py_ssize_t PQ = dy.shape[2]
    cdef floating* dz
    cdef int n_used
    if N == 0 or P == 0:
        dgamma[:] = 0
        dbeta[:] = 0
        return
    scratch_arr, n_used = _planes_scratch(
        n_threads, C, P if pool else 0,
        np.float32 if floating is float else np.float64)
    cdef floating[:, ::1] scratch = scratch_arr
    for c in prange(C, nogil=True, num_threads=n_used, schedule='dynamic'):
        m = mean[c]
        inv = invstd[c]
        sb = 0
        sd = 0
        for n in range(N):
            if pool:
                # dz, the gradient before the activation, rebuilt in
                # scratch: zero but at each window's maximum.
                dz = &scratch[threadid(), 0]
                memset(dz, 0, <size_t> P * sizeof(floating))
                _unpool_act(dz, &dy[n, c, 0], &y[n, c, 0], &argmax[n, c, 0],
                            PQ, act)
            else:
                # dx first holds dz, the gradient before the activation.
                dz = &dx[n, c, 0]
                _act_grad(&dy[n, c, 0], &y[n, c, 0], dz, P, act)
            sb = sb + _sum(dz, P)
            sd = sd + _dotdev(dz, &x[n, c, 0], P, m)
        dbeta[c] = <floating> sb
        dgamma[c] = <floating> (sd * inv)
        g = gamma[c] * inv
        for n in range(N):
            if pool:
                # dz again, in dx this time, which _bn_dx turns into the
                # input gradient.
                memset(&dx[n, c, 0], 0, <size_t> P * sizeof(floating))
                _unpool_act(&dx[n, c, 0], &dy[n, c, 0], &y[n, c, 0],
                            &argmax[n, c, 0], PQ, act)
            _bn_dx(&dx[n, c, 0], &x[n, c, 0], P, <floating> g,
                   <floating> (-weights[n] * g * inv * inv * sd / M),
                   <floating> m, <floating> (-weights[n] * g * sb / M))
