# The body of pool_generic, pool_avx2 and pool_avx512: one source compiled once
# per instruction set (setup.py's ISA_FLAGS).
"""2-D pooling kernels: max, L2 and average, forward and backward.

Design
------
Layout is NCHW, C-contiguous. Every (sample, channel) plane is pooled on its
own, so ``prange`` runs over the N*C planes: their writes are disjoint, in the
forward and the backward pass alike, and the result does not depend on the
number of threads. Windows are (KH, KW) with stride (SH, SW), in floor mode: a
ragged edge that does not fill a whole window is dropped, so
OH = (H - KH) // SH + 1.

- max: y = the largest x in the window. The forward pass stores the index of
  the maximum within the plane (int32), so the backward pass is a scatter.
  Tie rule: the *first* maximum in row-major window order receives the
  gradient (strict ``>`` while scanning). NaN propagates: a window holding
  a NaN pools to NaN and its first NaN receives the gradient.
- L2: y = sqrt(sum of x^2 over the window), summed in double. The gradient is
  dy * x / y; where a window is all zeros (y == 0) the gradient is taken as 0,
  the subgradient that keeps training free of NaN.
- average: y = mean of the window; each input receives dy / (KH*KW).

With overlapping windows (stride < window) several outputs send gradient to
one input; the additions happen within one plane, hence in one thread and in a
fixed order.

Nothing here validates: ``pyconvnet.ops`` checks every shape first. An empty
batch starts no threads.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt
from libc.string cimport memset

from pyconvnet._kernels.common cimport _max_pool_plane, _n_threads, _unpool_act


cdef inline int _grain(Py_ssize_t plane_size) noexcept nogil:
    """Planes handed out at a time: enough values (about 4096) that taking
    the next chunk costs little next to pooling it. Planes are handed out
    dynamically, so a thread that still has a core takes the planes of one
    that another process has descheduled."""
    return <int> max(1, 4096 // max(plane_size, 1))


def max_pool_forward(
    const floating[:, :, :, ::1] x,   # IN  (N, C, H, W)
    floating[:, :, :, ::1] out,       # OUT (N, C, OH, OW)
    int[:, :, :, ::1] argmax,         # OUT (N, C, OH, OW): index in the plane
    int KH, int KW, int SH, int SW,
    int n_threads,
):
    """Max pooling of every (KH, KW) window at stride (SH, SW); stores the
    index of each window's first maximum in its plane for the backward
    pass. Shapes are trusted: call through ``pyconvnet.ops``."""
    cdef:
        int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
        int OH = out.shape[2], OW = out.shape[3]
        Py_ssize_t plane
    # The loop over one plane is the C loop of ``common.h``, which the
    # fused convolution-and-pooling kernel (``conv_im2col``) shares.
    for plane in prange(<Py_ssize_t> N * C, nogil=True, schedule='dynamic',
                        chunksize=_grain(H * W),
                        num_threads=_n_threads(n_threads, N * C)):
        _max_pool_plane(&x[0, 0, 0, 0] + plane * H * W,
                        &out[0, 0, 0, 0] + plane * OH * OW,
                        &argmax[0, 0, 0, 0] + plane * OH * OW,
                        H, W, KH, KW, SH, SW, OH, OW)


def max_pool_backward(
    const floating[:, :, :, ::1] dy,  # IN  (N, C, OH, OW)
    const int[:, :, :, ::1] argmax,   # IN  (N, C, OH, OW)
    floating[:, :, :, ::1] dx,        # OUT (N, C, H, W)
    int n_threads,
):
    """dx zeroed, then each dy added at its window's stored argmax."""
    cdef:
        int N = dx.shape[0], C = dx.shape[1], H = dx.shape[2], W = dx.shape[3]
        int OH = dy.shape[2], OW = dy.shape[3]
        Py_ssize_t plane
        const floating* gp
        const int* ap
        floating* dp
    for plane in prange(<Py_ssize_t> N * C, nogil=True, schedule='dynamic',
                        chunksize=_grain(H * W),
                        num_threads=_n_threads(n_threads, N * C)):
        gp = &dy[0, 0, 0, 0] + plane * OH * OW
        ap = &argmax[0, 0, 0, 0] + plane * OH * OW
        dp = &dx[0, 0, 0, 0] + plane * H * W
        memset(dp, 0, <size_t> H * W * sizeof(floating))
        _unpool_act(dp, gp, NULL, ap, OH * OW, 0)


def sum_pool_forward(
    const floating[:, :, :, ::1] x,   # IN  (N, C, H, W)
    floating[:, :, :, ::1] out,       # OUT (N, C, OH, OW)
    int KH, int KW, int SH, int SW,
    bint l2,
    int n_threads,
):
    """L2 pooling (``l2``: the square root of the window's sum of squares) or
    average pooling (the window's sum over its size); sums in double."""
    cdef:
        int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
        int OH = out.shape[2], OW = out.shape[3]
        Py_ssize_t plane
        int oh, ow, i, j
        double acc, v
        double inv = 1.0 / (KH * KW)
        const floating* xp
        const floating* row
        floating* yp
    for plane in prange(<Py_ssize_t> N * C, nogil=True, schedule='dynamic',
                        chunksize=_grain(H * W),
                        num_threads=_n_threads(n_threads, N * C)):
        xp = &x[0, 0, 0, 0] + plane * H * W
        yp = &out[0, 0, 0, 0] + plane * OH * OW
        for oh in range(OH):
            for ow in range(OW):
                acc = 0
                for i in range(KH):
                    row = xp + (oh * SH + i) * W + ow * SW
                    if l2:
                        for j in range(KW):
                            v = row[j]
                            acc = acc + v * v
                    else:
                        for j in range(KW):
                            acc = acc + row[j]
                yp[oh * OW + ow] = <floating> (sqrt(acc) if l2 else acc * inv)


def l2_pool_backward(
    const floating[:, :, :, ::1] dy,  # IN  (N, C, OH, OW)
    const floating[:, :, :, ::1] x,   # IN  (N, C, H, W)
    const floating[:, :, :, ::1] y,   # IN  (N, C, OH, OW): the forward output
    floating[:, :, :, ::1] dx,        # OUT (N, C, H, W)
    int KH, int KW, int SH, int SW,
    int n_threads,
):
    """dx = dy * x / y over each window (0 where y == 0), added up where
    windows overlap."""
    cdef:
        int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
        int OH = dy.shape[2], OW = dy.shape[3]
        Py_ssize_t plane
        int oh, ow, i, j, off
        floating scale, yv
        const floating* xp
        const floating* yp
        const floating* gp
        floating* dp
    for plane in prange(<Py_ssize_t> N * C, nogil=True, schedule='dynamic',
                        chunksize=_grain(H * W),
                        num_threads=_n_threads(n_threads, N * C)):
        xp = &x[0, 0, 0, 0] + plane * H * W
        yp = &y[0, 0, 0, 0] + plane * OH * OW
        gp = &dy[0, 0, 0, 0] + plane * OH * OW
        dp = &dx[0, 0, 0, 0] + plane * H * W
        memset(dp, 0, <size_t> H * W * sizeof(floating))
        for oh in range(OH):
            for ow in range(OW):
                yv = yp[oh * OW + ow]
                if yv == 0:
                    continue
                scale = gp[oh * OW + ow] / yv
                for i in range(KH):
                    off = (oh * SH + i) * W + ow * SW
                    for j in range(KW):
                        dp[off + j] += scale * xp[off + j]


def avg_pool_backward(
    const floating[:, :, :, ::1] dy,  # IN  (N, C, OH, OW)
    floating[:, :, :, ::1] dx,        # OUT (N, C, H, W)
    int KH, int KW, int SH, int SW,
    int n_threads,
):
    """dx = dy / (KH*KW) spread over each window, added up where windows
    overlap."""
    cdef:
        int N = dx.shape[0], C = dx.shape[1], H = dx.shape[2], W = dx.shape[3]
        int OH = dy.shape[2], OW = dy.shape[3]
        Py_ssize_t plane
        int oh, ow, i, j, off
        floating g
        floating inv = <floating> (1.0 / (KH * KW))
        const floating* gp
        floating* dp
    for plane in prange(<Py_ssize_t> N * C, nogil=True, schedule='dynamic',
                        chunksize=_grain(H * W),
                        num_threads=_n_threads(n_threads, N * C)):
        gp = &dy[0, 0, 0, 0] + plane * OH * OW
        dp = &dx[0, 0, 0, 0] + plane * H * W
        memset(dp, 0, <size_t> H * W * sizeof(floating))
        for oh in range(OH):
            for ow in range(OW):
                g = gp[oh * OW + ow] * inv
                for i in range(KH):
                    off = (oh * SH + i) * W + ow * SW
                    for j in range(KW):
                        dp[off + j] += g
