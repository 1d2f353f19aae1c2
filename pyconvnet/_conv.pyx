# cython: language_level=3
"""2-D convolution (cross-correlation) kernels: forward and backward.

Design
------
Layout is NCHW, C-contiguous; weights are (F, C, KH, KW). With
K = C*KH*KW and P = OH*OW, one sample's convolution is one matrix product

    y[n] (F, P) = W (F, K) @ cols[n] (K, P) + b

where ``cols`` is the im2col unfolding of x[n]: row (c, i, j) holds the input
pixel each output position sees at kernel offset (i, j) of channel c. Zero
padding lives in the im2col accessor (out-of-range pixels read as 0), never in
a padded copy of the input. A 1x1 kernel with stride 1 and no padding needs no
unfolding: x[n] viewed as (C, H*W) already is ``cols``.

When training, the forward pass keeps every sample's ``cols`` (a buffer the
layer reuses across batches) so the backward pass does not unfold x again:
on Nielsen's second layer the unfolding was 15% of the backward time.

Backward, per sample:

    dW  += dy[n] (F, P) @ cols[n]^T (P, K)
    db  += sum over P of dy[n]
    dx[n] = col2im(W^T (K, F) @ dy[n] (F, P))

Parallelism: ``prange`` over samples for the forward pass and the input
gradient, whose writes are disjoint. The weight and bias gradients are sums
over samples; they are accumulated per *fixed chunk* of samples into the
chunk's own buffer and the chunk buffers are then added in chunk order. The
chunking depends only on the batch size, never on the thread count, so the
result is bit-identical for any ``n_threads``. Each thread owns its im2col
workspace, allocated once per call inside the parallel block.

The matrix products go through scipy's BLAS (``_blas.gemm``), called from the
OpenMP threads without the GIL; the Python side keeps BLAS single-threaded
while these kernels run (see ``pyconvnet._threads``).

Nothing here validates: ``pyconvnet.ops`` checks every shape first.
"""
from cython cimport floating
from cython.parallel cimport prange, parallel
from libc.math cimport exp, tanh
from libc.stdlib cimport malloc, free
from libc.string cimport memset

import numpy as np

from pyconvnet._blas cimport gemm

# At most this many chunks of samples share the weight-gradient reduction:
# enough for both cores to stay busy on a batch of 10, few enough that adding
# the chunk buffers costs well under 1% of the GEMMs.
cdef enum:
    MAX_GRAD_CHUNKS = 16

# Activation fused into the convolution: the forward pass applies it to each
# sample's output while that output is still in cache, the backward pass
# multiplies by its derivative (computed from the activated output) before the
# matrix products. Saves two passes over the largest arrays of the network.
cdef enum:
    ACT_IDENTITY = 0
    ACT_RELU = 1
    ACT_SIGMOID = 2
    ACT_TANH = 3

ACTIVATIONS = {None: ACT_IDENTITY, "identity": ACT_IDENTITY, "relu": ACT_RELU,
               "sigmoid": ACT_SIGMOID, "tanh": ACT_TANH}


cdef struct Geometry:
    # One convolution's sizes: input (C, H, W), F filters of (C, KH, KW),
    # strides, paddings, output (OH, OW); K = C*KH*KW rows and P = OH*OW
    # columns of the im2col matrix. ``direct``: a 1x1 kernel at stride 1
    # without padding, whose input already is its im2col matrix.
    int N, C, H, W, F, KH, KW, sh, sw, ph, pw, OH, OW, K, P
    bint direct


cdef inline Geometry _geometry(const Py_ssize_t* x_shape,
                               const Py_ssize_t* w_shape, int OH, int OW,
                               int sh, int sw, int ph, int pw) noexcept nogil:
    cdef Geometry g
    g.N = x_shape[0]
    g.C = x_shape[1]
    g.H = x_shape[2]
    g.W = x_shape[3]
    g.F = w_shape[0]
    g.KH = w_shape[2]
    g.KW = w_shape[3]
    g.sh = sh
    g.sw = sw
    g.ph = ph
    g.pw = pw
    g.OH = OH
    g.OW = OW
    g.K = g.C * g.KH * g.KW
    g.P = OH * OW
    g.direct = g.KH == 1 and g.KW == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0
    return g


cdef inline void _valid_range(int j, int pw, int sw, int W, int OW,
                              int* lo, int* hi) noexcept nogil:
    """Output columns ow whose input column ow*sw - pw + j lies in [0, W)."""
    cdef int first = pw - j, last = W - 1 + pw - j
    lo[0] = 0 if first <= 0 else (first + sw - 1) // sw
    hi[0] = 0 if last < 0 else min(OW, last // sw + 1)
    if hi[0] < lo[0]:
        hi[0] = lo[0]


cdef void _im2col(const floating* x, floating* cols,
                  const Geometry* g) noexcept nogil:
    """Unfold one sample x (C, H, W) into cols (C*KH*KW, OH*OW).

    The columns that read padding are worked out once per kernel column j, so
    the inner loop is a branch-free copy that the compiler vectorises.
    """
    cdef int c, i, j, oh, ow, ih, lo, hi, off
    cdef int C = g.C, H = g.H, W = g.W, KH = g.KH, KW = g.KW
    cdef int sh = g.sh, sw = g.sw, ph = g.ph, pw = g.pw, OH = g.OH, OW = g.OW
    cdef const floating* xrow
    cdef floating* out = cols
    for c in range(C):
        for i in range(KH):
            for j in range(KW):
                _valid_range(j, pw, sw, W, OW, &lo, &hi)
                off = j - pw
                for oh in range(OH):
                    ih = oh * sh - ph + i
                    if ih < 0 or ih >= H:
                        memset(out, 0, OW * sizeof(floating))
                    else:
                        xrow = x + (c * H + ih) * W + off
                        if lo > 0:
                            memset(out, 0, lo * sizeof(floating))
                        if sw == 1:
                            # A plain loop, not memcpy: rows are short (8 to
                            # 28 values), where a libc call costs more than
                            # the copy.
                            for ow in range(lo, hi):
                                out[ow] = xrow[ow]
                        else:
                            for ow in range(lo, hi):
                                out[ow] = xrow[ow * sw]
                        if hi < OW:
                            memset(out + hi, 0, (OW - hi) * sizeof(floating))
                    out += OW


cdef void _col2im(const floating* cols, floating* dx,
                  const Geometry* g) noexcept nogil:
    """Fold cols (C*KH*KW, OH*OW) back onto dx (C, H, W), adding overlaps.

    dx must be zeroed by the caller. The inverse of the gathering in _im2col:
    every entry goes back to the pixel it was read from; padding is dropped.
    """
    cdef int c, i, j, oh, ow, ih, lo, hi, off
    cdef int C = g.C, H = g.H, W = g.W, KH = g.KH, KW = g.KW
    cdef int sh = g.sh, sw = g.sw, ph = g.ph, pw = g.pw, OH = g.OH, OW = g.OW
    cdef floating* dxrow
    cdef const floating* src = cols
    for c in range(C):
        for i in range(KH):
            for j in range(KW):
                _valid_range(j, pw, sw, W, OW, &lo, &hi)
                off = j - pw
                for oh in range(OH):
                    ih = oh * sh - ph + i
                    if 0 <= ih < H:
                        dxrow = dx + (c * H + ih) * W + off
                        if sw == 1:
                            for ow in range(lo, hi):
                                dxrow[ow] += src[ow]
                        else:
                            for ow in range(lo, hi):
                                dxrow[ow * sw] += src[ow]
                    src += OW


cdef inline double _row_sum(const floating* a, int n) noexcept nogil:
    """Sum of n values in double, in a fixed order.

    Four independent partial sums: a single running sum is a chain of
    dependent additions the CPU cannot overlap, and it made the bias gradient
    of the first layer (11,520 values a sample) a third of that layer's
    backward time.
    """
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0
    cdef int k = 0
    while k + 4 <= n:
        s0 += a[k]
        s1 += a[k + 1]
        s2 += a[k + 2]
        s3 += a[k + 3]
        k += 4
    while k < n:
        s0 += a[k]
        k += 1
    return (s0 + s1) + (s2 + s3)


cdef inline void _bias_activation(floating* y, const floating* b, int F, int P,
                                  int act) noexcept nogil:
    """y (F, P) += b[f], then the activation, in place while y is in cache.

    One loop per activation, so that each inner loop is branch-free and the
    compiler vectorises it.
    """
    cdef int f, p
    cdef floating v, bf
    cdef floating* row
    for f in range(F):
        bf = b[f] if b != NULL else 0
        row = y + f * P
        if act == ACT_RELU:
            for p in range(P):
                v = row[p] + bf
                row[p] = v if v > 0 else 0
        elif act == ACT_SIGMOID:
            for p in range(P):
                row[p] = 1 / (1 + exp(-(row[p] + bf)))
        elif act == ACT_TANH:
            for p in range(P):
                row[p] = tanh(row[p] + bf)
        else:
            for p in range(P):
                row[p] = row[p] + bf


cdef inline void _activation_grad(const floating* dy, const floating* y,
                                  floating* dz, int n, int act) noexcept nogil:
    """dz = dy * act'(z), written in terms of the activated output y."""
    cdef int k
    if act == ACT_RELU:
        # A multiply by the 0/1 mask, not a branch: which units are active is
        # unpredictable, and mispredicted branches dominated this loop.
        for k in range(n):
            dz[k] = dy[k] * <floating> (y[k] > 0)
    elif act == ACT_SIGMOID:
        for k in range(n):
            dz[k] = dy[k] * y[k] * (1 - y[k])
    else:
        for k in range(n):
            dz[k] = dy[k] * (1 - y[k] * y[k])


def conv2d_forward(
    const floating[:, :, :, ::1] x,       # IN  (N, C, H, W)
    const floating[:, :, :, ::1] weight,  # IN  (F, C, KH, KW)
    const floating[::1] bias,             # IN  (F,) or None
    floating[:, :, :, ::1] out,           # OUT (N, F, OH, OW)
    floating[:, ::1] cols_cache,          # OUT (N, K*P): each sample's im2col,
                                          #     kept for the backward pass; or None
    int stride_h, int stride_w, int pad_h, int pad_w,
    int activation,
    int n_threads,
):
    cdef:
        Geometry g = _geometry(x.shape, weight.shape,
                               out.shape[2], out.shape[3], stride_h, stride_w,
                               pad_h, pad_w)
        int N = g.N, F = g.F, K = g.K, P = g.P
        bint direct = g.direct
        bint has_bias = bias is not None
        const floating* w = &weight[0, 0, 0, 0]
        const floating* b = &bias[0] if has_bias else NULL
        bint cache = cols_cache is not None and not direct
        floating* cols
        floating* buf
        const floating* xn
        floating* yn
        int n
    with nogil, parallel(num_threads=n_threads):
        buf = NULL
        if not direct and not cache:
            buf = <floating*> malloc(<size_t> K * P * sizeof(floating))
        for n in prange(N, schedule='static'):
            xn = &x[n, 0, 0, 0]
            yn = &out[n, 0, 0, 0]
            if not direct:
                cols = &cols_cache[n, 0] if cache else buf
                _im2col(xn, cols, &g)
                xn = cols
            gemm(False, False, F, P, K, <floating> 1, w, K, xn, P,
                 <floating> 0, yn, P)
            if has_bias or activation != ACT_IDENTITY:
                _bias_activation(yn, b, F, P, activation)
        free(buf)


def conv2d_backward(
    const floating[:, :, :, ::1] dy,      # IN  (N, F, OH, OW): d loss / d y
    const floating[:, :, :, ::1] y,       # IN  (N, F, OH, OW): activated output,
                                          #     or None with no activation
    const floating[:, :, :, ::1] x,       # IN  (N, C, H, W)
    const floating[:, :, :, ::1] weight,  # IN  (F, C, KH, KW)
    const floating[:, ::1] cols_cache,    # IN  (N, K*P) from the forward pass,
                                          #     or None to unfold x again
    floating[:, :, :, ::1] dx,            # OUT (N, C, H, W), or None to skip
    floating[:, :, :, ::1] dweight,       # OUT (F, C, KH, KW)
    floating[::1] dbias,                  # OUT (F,)
    int stride_h, int stride_w, int pad_h, int pad_w,
    int activation,
    int n_threads,
):
    cdef:
        Geometry g = _geometry(x.shape, weight.shape,
                               dy.shape[2], dy.shape[3], stride_h, stride_w,
                               pad_h, pad_w)
        int N = g.N, C = g.C, H = g.H, W = g.W, F = g.F, K = g.K, P = g.P
        bint direct = g.direct
        bint want_dx = dx is not None
        int chunk = (N + MAX_GRAD_CHUNKS - 1) // MAX_GRAD_CHUNKS
        int n_chunks = (N + chunk - 1) // chunk
        const floating* w = &weight[0, 0, 0, 0]
        bint cache = cols_cache is not None and not direct
        floating* buf
        floating* dcols
        floating* dz
        const floating* xn
        const floating* dyn
        floating* dwc
        double* dbc
        double acc
        int ci, n, f, p, k, first
    dtype = np.float32 if floating is float else np.float64
    # Per-chunk partial sums; the bias sums in double, since they add up
    # N*OH*OW terms of one sign pattern and float32 would lose digits.
    cdef floating[:, ::1] dw_chunks = np.empty((n_chunks, F * K), dtype=dtype)
    cdef double[:, ::1] db_chunks = np.zeros((n_chunks, F), dtype=np.float64)

    with nogil, parallel(num_threads=n_threads):
        buf = NULL
        dcols = NULL
        dz = NULL
        if not direct:
            if not cache:
                buf = <floating*> malloc(<size_t> K * P * sizeof(floating))
            if want_dx:
                dcols = <floating*> malloc(<size_t> K * P * sizeof(floating))
        if activation != ACT_IDENTITY:
            dz = <floating*> malloc(<size_t> F * P * sizeof(floating))
        for ci in prange(n_chunks, schedule='static'):
            dwc = &dw_chunks[ci, 0]
            dbc = &db_chunks[ci, 0]
            for n in range(ci * chunk, min((ci + 1) * chunk, N)):
                xn = &x[n, 0, 0, 0]
                dyn = &dy[n, 0, 0, 0]
                if activation != ACT_IDENTITY:
                    _activation_grad(dyn, &y[n, 0, 0, 0], dz, F * P, activation)
                    dyn = dz
                if cache:
                    xn = &cols_cache[n, 0]
                elif not direct:
                    _im2col(xn, buf, &g)
                    xn = buf
                first = n == ci * chunk
                gemm(False, True, F, K, P, <floating> 1, dyn, P, xn, P,
                     <floating> (0 if first else 1), dwc, K)
                for f in range(F):
                    dbc[f] += _row_sum(dyn + f * P, P)
                if want_dx:
                    if direct:
                        # dx[n] viewed as (C, H*W) is dcols itself.
                        gemm(True, False, K, P, F, <floating> 1, w, K, dyn, P,
                             <floating> 0, &dx[n, 0, 0, 0], P)
                    else:
                        gemm(True, False, K, P, F, <floating> 1, w, K, dyn, P,
                             <floating> 0, dcols, P)
                        memset(&dx[n, 0, 0, 0], 0,
                               <size_t> C * H * W * sizeof(floating))
                        _col2im(dcols, &dx[n, 0, 0, 0], &g)
        free(buf)
        free(dcols)
        free(dz)

    # Fixed-order reduction of the chunks: the same sums in the same order
    # whatever the number of threads.
    cdef floating* dw = &dweight[0, 0, 0, 0]
    with nogil:
        for k in range(F * K):
            dw[k] = dw_chunks[0, k]
        for ci in range(1, n_chunks):
            for k in range(F * K):
                dw[k] += dw_chunks[ci, k]
        for f in range(F):
            acc = 0
            for ci in range(n_chunks):
                acc = acc + db_chunks[ci, f]
            dbias[f] = <floating> acc
