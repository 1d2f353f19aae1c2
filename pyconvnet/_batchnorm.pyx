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
computed by one thread, in double, in a fixed order (sample by sample, each
plane in eight partial sums), so results are bit-identical for any thread
count. The variance is the two-pass one (the mean first), which keeps
float32 batches with a large mean accurate. The elementwise loops are the C
helpers of ``_kernels.h``.

Nothing here validates: ``pyconvnet.ops`` checks every shape first.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt


cdef extern from "_kernels.h":
    double pcn_sum_f(const float* a, ptrdiff_t n) noexcept nogil
    double pcn_sum_d(const double* a, ptrdiff_t n) noexcept nogil
    double pcn_sqdev_f(const float* a, ptrdiff_t n, double m) noexcept nogil
    double pcn_sqdev_d(const double* a, ptrdiff_t n, double m) noexcept nogil
    double pcn_dotdev_f(const float* d, const float* a, ptrdiff_t n,
                        double m) noexcept nogil
    double pcn_dotdev_d(const double* d, const double* a, ptrdiff_t n,
                        double m) noexcept nogil
    void pcn_scale_bias_act_f(float* y, const float* x, float s, float b,
                              ptrdiff_t n, int act) noexcept nogil
    void pcn_scale_bias_act_d(double* y, const double* x, double s, double b,
                              ptrdiff_t n, int act) noexcept nogil
    void pcn_act_grad_f(const float* dy, const float* y, float* dz,
                        ptrdiff_t n, int act) noexcept nogil
    void pcn_act_grad_d(const double* dy, const double* y, double* dz,
                        ptrdiff_t n, int act) noexcept nogil
    void pcn_bn_dx_f(float* dz, const float* x, ptrdiff_t n, float g,
                     float c2, float m, float c3) noexcept nogil
    void pcn_bn_dx_d(double* dz, const double* x, ptrdiff_t n, double g,
                     double c2, double m, double c3) noexcept nogil


cdef inline double _sum(const floating* a, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return pcn_sum_f(a, n)
    else:
        return pcn_sum_d(a, n)


cdef inline double _sqdev(const floating* a, Py_ssize_t n, double m) noexcept nogil:
    if floating is float:
        return pcn_sqdev_f(a, n, m)
    else:
        return pcn_sqdev_d(a, n, m)


cdef inline double _dotdev(const floating* d, const floating* a, Py_ssize_t n,
                           double m) noexcept nogil:
    if floating is float:
        return pcn_dotdev_f(d, a, n, m)
    else:
        return pcn_dotdev_d(d, a, n, m)


cdef inline void _affine(floating* y, const floating* x, floating s, floating b,
                         Py_ssize_t n, int act) noexcept nogil:
    if floating is float:
        pcn_scale_bias_act_f(y, x, s, b, n, act)
    else:
        pcn_scale_bias_act_d(y, x, s, b, n, act)


cdef inline void _act_grad(const floating* dy, const floating* y, floating* dz,
                           Py_ssize_t n, int act) noexcept nogil:
    if floating is float:
        pcn_act_grad_f(dy, y, dz, n, act)
    else:
        pcn_act_grad_d(dy, y, dz, n, act)


cdef inline void _bn_dx(floating* dz, const floating* x, Py_ssize_t n,
                        floating g, floating c2, floating m,
                        floating c3) noexcept nogil:
    if floating is float:
        pcn_bn_dx_f(dz, x, n, g, c2, m, c3)
    else:
        pcn_bn_dx_d(dz, x, n, g, c2, m, c3)


def forward_train(const floating[:, :, ::1] x, const double[::1] weights,
                  const floating[::1] gamma,
                  const floating[::1] beta, floating[:, :, ::1] out,
                  double[::1] mean, double[::1] var, double[::1] invstd,
                  double eps, int act, int n_threads):
    """out = act(gamma * (x - mean) * invstd + beta) per channel, with the
    batch's (weighted) statistics, which are written to ``mean``, ``var``
    (biased) and ``invstd``. x and out: (N, C, P), out may not alias x;
    weights: (N,), summing to more than 0."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], P = x.shape[2]
    cdef Py_ssize_t c, n
    cdef double m, s, inv, M = 0
    if N == 0 or P == 0:
        return
    for n in range(N):
        M += weights[n]
    M *= P
    for c in prange(C, nogil=True, num_threads=max(1, min(n_threads, C)),
                    schedule='dynamic'):
        s = 0
        for n in range(N):
            s = s + weights[n] * _sum(&x[n, c, 0], P)
        m = s / M
        s = 0
        for n in range(N):
            s = s + weights[n] * _sqdev(&x[n, c, 0], P, m)
        inv = 1 / sqrt(s / M + eps)
        mean[c] = m
        var[c] = s / M
        invstd[c] = inv
        for n in range(N):
            _affine(&out[n, c, 0], &x[n, c, 0], <floating> (gamma[c] * inv),
                    <floating> (beta[c] - m * gamma[c] * inv), P, act)


def forward_scale(const floating[:, :, ::1] x, const floating[::1] scale,
                  const floating[::1] shift, floating[:, :, ::1] out,
                  int act, int n_threads):
    """out = act(x * scale + shift) per channel (prediction, where scale and
    shift come from the running statistics). out may be x."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], P = x.shape[2]
    cdef Py_ssize_t i
    if N == 0 or P == 0:
        return
    for i in prange(N * C, nogil=True, num_threads=max(1, min(n_threads, N * C)),
                    schedule='static'):
        _affine(&out[i // C, i % C, 0], &x[i // C, i % C, 0], scale[i % C],
                shift[i % C], P, act)


def backward(const floating[:, :, ::1] dy, const floating[:, :, ::1] x,
             const double[::1] weights,
             const floating[:, :, ::1] y, const floating[::1] gamma,
             const double[::1] mean, const double[::1] invstd,
             floating[:, :, ::1] dx, floating[::1] dgamma,
             floating[::1] dbeta, int act, int n_threads):
    """Gradients of ``forward_train``: dx (N, C, P), dgamma and dbeta (C,).
    y is forward's output (the activation's derivative is taken from it).

    With M = P * sum(w), xhat = (x - mean) * invstd and dz the gradient
    before the activation, sample n's input gradient is
    gamma * invstd * (dz - w[n] * (sum(dz) + xhat * sum(dz * xhat)) / M):
    the statistics move with x[n] in proportion to its weight."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], P = x.shape[2]
    cdef Py_ssize_t c, n
    cdef double sb, sd, g, inv, m, M = 0
    if N == 0 or P == 0:
        dgamma[:] = 0
        dbeta[:] = 0
        return
    for n in range(N):
        M += weights[n]
    M *= P
    for c in prange(C, nogil=True, num_threads=max(1, min(n_threads, C)),
                    schedule='dynamic'):
        m = mean[c]
        inv = invstd[c]
        sb = 0
        sd = 0
        for n in range(N):
            # dx first holds dz, the gradient before the activation.
            _act_grad(&dy[n, c, 0], &y[n, c, 0], &dx[n, c, 0], P, act)
            sb = sb + _sum(&dx[n, c, 0], P)
            sd = sd + _dotdev(&dx[n, c, 0], &x[n, c, 0], P, m)
        dbeta[c] = <floating> sb
        dgamma[c] = <floating> (sd * inv)
        g = gamma[c] * inv
        for n in range(N):
            _bn_dx(&dx[n, c, 0], &x[n, c, 0], P, <floating> g,
                   <floating> (-weights[n] * g * inv * inv * sd / M),
                   <floating> m, <floating> (-weights[n] * g * sb / M))
