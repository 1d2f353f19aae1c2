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
from libc.stdlib cimport malloc, free
from libc.string cimport memset

import numpy as np

from pyconvnet._blas cimport gemm

# At most this many chunks of samples share the weight-gradient reduction:
# enough for both cores to stay busy on a batch of 10, few enough that adding
# the chunk buffers costs well under 1% of the GEMMs.
cdef enum:
    MAX_GRAD_CHUNKS = 16


cdef void _im2col(const floating* x, floating* cols,
                  int C, int H, int W, int KH, int KW,
                  int sh, int sw, int ph, int pw,
                  int OH, int OW) noexcept nogil:
    """Unfold one sample x (C, H, W) into cols (C*KH*KW, OH*OW)."""
    cdef int c, i, j, oh, ow, ih, iw
    cdef const floating* xrow
    cdef floating* out = cols
    for c in range(C):
        for i in range(KH):
            for j in range(KW):
                for oh in range(OH):
                    ih = oh * sh - ph + i
                    if ih < 0 or ih >= H:
                        memset(out, 0, OW * sizeof(floating))
                        out += OW
                        continue
                    xrow = x + (c * H + ih) * W
                    if sw == 1:
                        # Contiguous run; only its two ends may fall in the padding.
                        for ow in range(OW):
                            iw = ow - pw + j
                            out[ow] = xrow[iw] if 0 <= iw < W else 0
                    else:
                        for ow in range(OW):
                            iw = ow * sw - pw + j
                            out[ow] = xrow[iw] if 0 <= iw < W else 0
                    out += OW


cdef void _col2im(const floating* cols, floating* dx,
                  int C, int H, int W, int KH, int KW,
                  int sh, int sw, int ph, int pw,
                  int OH, int OW) noexcept nogil:
    """Fold cols (C*KH*KW, OH*OW) back onto dx (C, H, W), adding overlaps.

    dx must be zeroed by the caller. The inverse of the gathering in _im2col:
    every entry goes back to the pixel it was read from; padding is dropped.
    """
    cdef int c, i, j, oh, ow, ih, iw
    cdef floating* dxrow
    cdef const floating* src = cols
    for c in range(C):
        for i in range(KH):
            for j in range(KW):
                for oh in range(OH):
                    ih = oh * sh - ph + i
                    if 0 <= ih < H:
                        dxrow = dx + (c * H + ih) * W
                        for ow in range(OW):
                            iw = ow * sw - pw + j
                            if 0 <= iw < W:
                                dxrow[iw] += src[ow]
                    src += OW


def conv2d_forward(
    const floating[:, :, :, ::1] x,       # IN  (N, C, H, W)
    const floating[:, :, :, ::1] weight,  # IN  (F, C, KH, KW)
    const floating[::1] bias,             # IN  (F,) or None
    floating[:, :, :, ::1] out,           # OUT (N, F, OH, OW)
    int stride_h, int stride_w, int pad_h, int pad_w,
    int n_threads,
):
    cdef:
        int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
        int F = weight.shape[0], KH = weight.shape[2], KW = weight.shape[3]
        int OH = out.shape[2], OW = out.shape[3]
        int K = C * KH * KW, P = OH * OW
        bint has_bias = bias is not None
        bint direct = (KH == 1 and KW == 1 and stride_h == 1 and stride_w == 1
                       and pad_h == 0 and pad_w == 0)
        const floating* w = &weight[0, 0, 0, 0]
        const floating* b = &bias[0] if has_bias else NULL
        floating* cols
        const floating* xn
        floating* yn
        int n, f, p
    with nogil, parallel(num_threads=n_threads):
        cols = NULL
        if not direct:
            cols = <floating*> malloc(<size_t> K * P * sizeof(floating))
        for n in prange(N, schedule='static'):
            xn = &x[n, 0, 0, 0]
            yn = &out[n, 0, 0, 0]
            if not direct:
                _im2col(xn, cols, C, H, W, KH, KW, stride_h, stride_w,
                        pad_h, pad_w, OH, OW)
                xn = cols
            gemm(False, False, F, P, K, <floating> 1, w, K, xn, P,
                 <floating> 0, yn, P)
            if has_bias:
                for f in range(F):
                    for p in range(P):
                        yn[f * P + p] += b[f]
        free(cols)


def conv2d_backward(
    const floating[:, :, :, ::1] dy,      # IN  (N, F, OH, OW)
    const floating[:, :, :, ::1] x,       # IN  (N, C, H, W)
    const floating[:, :, :, ::1] weight,  # IN  (F, C, KH, KW)
    floating[:, :, :, ::1] dx,            # OUT (N, C, H, W), or None to skip
    floating[:, :, :, ::1] dweight,       # OUT (F, C, KH, KW)
    floating[::1] dbias,                  # OUT (F,)
    int stride_h, int stride_w, int pad_h, int pad_w,
    int n_threads,
):
    cdef:
        int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
        int F = weight.shape[0], KH = weight.shape[2], KW = weight.shape[3]
        int OH = dy.shape[2], OW = dy.shape[3]
        int K = C * KH * KW, P = OH * OW
        bint want_dx = dx is not None
        bint direct = (KH == 1 and KW == 1 and stride_h == 1 and stride_w == 1
                       and pad_h == 0 and pad_w == 0)
        int chunk = (N + MAX_GRAD_CHUNKS - 1) // MAX_GRAD_CHUNKS
        int n_chunks = (N + chunk - 1) // chunk
        const floating* w = &weight[0, 0, 0, 0]
        floating* cols
        floating* dcols
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
        cols = NULL
        dcols = NULL
        if not direct:
            cols = <floating*> malloc(<size_t> K * P * sizeof(floating))
            if want_dx:
                dcols = <floating*> malloc(<size_t> K * P * sizeof(floating))
        for ci in prange(n_chunks, schedule='static'):
            dwc = &dw_chunks[ci, 0]
            dbc = &db_chunks[ci, 0]
            for n in range(ci * chunk, min((ci + 1) * chunk, N)):
                xn = &x[n, 0, 0, 0]
                dyn = &dy[n, 0, 0, 0]
                if not direct:
                    _im2col(xn, cols, C, H, W, KH, KW, stride_h, stride_w,
                            pad_h, pad_w, OH, OW)
                    xn = cols
                first = n == ci * chunk
                gemm(False, True, F, K, P, <floating> 1, dyn, P, xn, P,
                     <floating> (0 if first else 1), dwc, K)
                for f in range(F):
                    acc = 0
                    for p in range(P):
                        acc = acc + dyn[f * P + p]
                    dbc[f] += acc
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
                        _col2im(dcols, &dx[n, 0, 0, 0], C, H, W, KH, KW,
                                stride_h, stride_w, pad_h, pad_w, OH, OW)
        free(cols)
        free(dcols)

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
