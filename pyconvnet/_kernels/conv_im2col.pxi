# The body of conv_im2col_generic, conv_im2col_avx2 and conv_im2col_avx512:
# one source compiled once per instruction set (setup.py's ISA_FLAGS), of
# which pyconvnet._kernels runs the best the CPU supports.
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

One product per sample: grouping samples into one wider product, a
channels-last layout and a direct convolution were each built and measured,
and lost or drew level (``benchmarks/PERFORMANCE.md`` has the figures).

When training, the forward pass can keep every sample's ``cols`` (a buffer
the caller reuses across batches) so the backward pass does not unfold x
again.

Backward, per sample:

    dW^T += cols[n] (K, P) @ dy[n]^T (P, F)
    db   += sum over P of dy[n]
    dx[n] = col2im(W^T (K, F) @ dy[n] (F, P))

The weight gradient is accumulated transposed, (K, F), and transposed once
per batch after the reduction: OpenBLAS runs cols @ dy^T faster than the
same product as dy @ cols^T on every benchmark layer.

Parallelism: ``prange`` over samples for the forward pass and the input
gradient, whose writes are disjoint. The weight and bias gradients are sums
over samples; they are accumulated per *fixed chunk* of samples into the
chunk's own buffer and the chunk buffers are then added in chunk order
(threads split the weights, never one weight's sum). The chunking depends
only on the batch size, never on the thread count, so the result is
bit-identical for any ``n_threads``.

Scratch memory (the im2col workspace, the activation gradient) is one NumPy
array of shape (n_used_threads, size), allocated with the GIL held before the
parallel block and indexed by the thread id: a failed allocation is a
``MemoryError`` in Python, never a write through NULL. At most as many threads
start as there are work items. Work items are handed out dynamically: when
another process holds one core, the thread that still runs takes the items
the descheduled one would have waited for at a static barrier. Which thread
computes an item never changes what it computes, so results stay identical.

A convolution followed by max pooling without overlap can run as one
kernel: the forward pass pools each sample's activated output while it is
still in cache and writes only the pooled values and their argmax; the
backward pass rebuilds the gradient at the activation's input from those, per
sample, in scratch. Neither the full output nor its gradient is ever written
to memory (the two largest arrays of a training step), and the pooling layer's
own passes over them disappear. Results are bit-identical to the two layers
run one after the other.

The elementwise passes (bias and activation forward; activation gradient and
the bias sums backward) are plain C loops over ``restrict`` pointers, which
the compiler vectorises: written as Cython loops inside the OpenMP region they
compiled to scalar code with a branch per element.

The matrix products go through scipy's BLAS (``_blas.gemm``), called from the
OpenMP threads without the GIL; the Python side keeps BLAS single-threaded
while these kernels run (see ``pyconvnet._threads``). In float32 the AVX-512
build runs the forward product and the input gradient's on ``sgemm.h``'s
kernels instead (``products.pxd``: OpenBLAS runs AVX2 kernels on AMD's
AVX-512 CPUs); the weight gradient's product, whose output is small and
whose inner size is long, stays with BLAS.

Nothing here validates: ``pyconvnet.ops`` checks every shape first.
"""
from cython cimport floating
from cython.parallel cimport prange, parallel, threadid
from libc.string cimport memset

import numpy as np

from pyconvnet._kernels.blas cimport gemm
from pyconvnet._kernels.products cimport _product, _product_nt
from pyconvnet._kernels.common cimport (MAX_GRAD_CHUNKS, PCN_IDENTITY,
                                        _act_grad, _conv_tail, _n_threads,
                                        _scratch_rows,
                                        _reduce_chunks, _sum, _transpose,
                                        _unpool_act, pcn_col2im_d,
                                        pcn_col2im_f, pcn_col2im_padded_d,
                                        pcn_col2im_padded_f, pcn_im2col_d,
                                        pcn_im2col_f, pcn_im2col_padded_d,
                                        pcn_im2col_padded_f, pcn_pad_d,
                                        pcn_pad_f)

def _scratch(n_threads, n_items, size, dtype):
    """Per-thread scratch (threads used, size) and the threads to start."""
    return _scratch_rows(n_threads, n_items, size,
                         lambda shape: np.empty(shape, dtype=dtype))


cdef enum:
    # The weight gradient's product over positions, for layers with at
    # most this many rows of unfolding (a first layer on grey or RGB
    # images: K = C*KH*KW of 9 to 75), runs as row-by-row dot products
    # (products.pxd): BLAS spent 2.5x PyTorch's time on these thin products.
    SMALL_K = 128



cdef struct Geometry:
    # One convolution's sizes: input (C, H, W), F filters of (C, KH, KW),
    # strides, paddings, output (OH, OW); K = C*KH*KW rows and P = OH*OW
    # columns of the im2col matrix. ``direct``: a 1x1 kernel at stride 1
    # without padding, whose input already is its im2col matrix.
    # ``pyconvnet.ops`` guarantees that C*H*W, F*P, K*P and every
    # index*stride + padding fit an int. ``pad_size``: the values of the
    # zero-padded copy of a sample that im2col goes through at stride 1
    # (``common.h``), or 0 to unfold straight from the sample. The copy is
    # used only when it is no larger than the unfolding itself, so a huge
    # padding never asks for more scratch than the layer already needs.
    int N, C, H, W, F, KH, KW, sh, sw, ph, pw, OH, OW, K, P
    bint direct
    Py_ssize_t pad_size


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
    g.pad_size = 0
    if sh == 1 and sw == 1 and not g.direct:
        g.pad_size = (<Py_ssize_t> g.C * (g.H + 2 * <Py_ssize_t> ph)
                      * (g.W + 2 * <Py_ssize_t> pw) + 8)
        if g.pad_size > <Py_ssize_t> g.K * g.P:
            g.pad_size = 0
    return g


cdef inline void _im2col(const floating* x, floating* cols, floating* pad,
                         const Geometry* g) noexcept nogil:
    """Unfold one sample x (C, H, W) into cols (C*KH*KW, OH*OW), through the
    padded copy ``pad`` (``g.pad_size`` values) when the geometry has one."""
    if g.pad_size:
        if floating is float:
            pcn_pad_f(x, pad, g.C, g.H, g.W, g.ph, g.pw)
            pcn_im2col_padded_f(pad, cols, g.C, g.H, g.W, g.KH, g.KW,
                                    g.ph, g.pw, g.OH, g.OW)
        else:
            pcn_pad_d(x, pad, g.C, g.H, g.W, g.ph, g.pw)
            pcn_im2col_padded_d(pad, cols, g.C, g.H, g.W, g.KH, g.KW,
                                    g.ph, g.pw, g.OH, g.OW)
    elif floating is float:
        pcn_im2col_f(x, cols, g.C, g.H, g.W, g.KH, g.KW, g.sh, g.sw,
                         g.ph, g.pw, g.OH, g.OW)
    else:
        pcn_im2col_d(x, cols, g.C, g.H, g.W, g.KH, g.KW, g.sh, g.sw,
                         g.ph, g.pw, g.OH, g.OW)


cdef inline void _col2im(const floating* cols, floating* dx, floating* pad,
                         const Geometry* g) noexcept nogil:
    """Fold cols (C*KH*KW, OH*OW) back onto dx (C, H, W), adding overlaps,
    through the padded accumulator ``pad`` when the geometry has one."""
    if g.pad_size:
        if floating is float:
            pcn_col2im_padded_f(cols, pad, dx, g.C, g.H, g.W, g.KH, g.KW,
                                    g.ph, g.pw, g.OH, g.OW)
        else:
            pcn_col2im_padded_d(cols, pad, dx, g.C, g.H, g.W, g.KH, g.KW,
                                    g.ph, g.pw, g.OH, g.OW)
        return
    memset(dx, 0, <size_t> (g.C * g.H * g.W) * sizeof(floating))
    if floating is float:
        pcn_col2im_f(cols, dx, g.C, g.H, g.W, g.KH, g.KW, g.sh, g.sw,
                         g.ph, g.pw, g.OH, g.OW)
    else:
        pcn_col2im_d(cols, dx, g.C, g.H, g.W, g.KH, g.KW, g.sh, g.sw,
                         g.ph, g.pw, g.OH, g.OW)


def conv2d_forward(
    const floating[:, :, :, ::1] x,       # IN  (N, C, H, W)
    const floating[:, :, :, ::1] weight,  # IN  (F, C, KH, KW)
    const floating[::1] bias,             # IN  (F,) or None
    floating[:, :, :, ::1] out,           # OUT (N, F, OH, OW); with argmax, the
                                          #     pooled (N, F, POH, POW)
    floating[:, ::1] cols_cache,          # OUT (N, K*P): each sample's im2col,
                                          #     kept for the backward pass; or None
    int stride_h, int stride_w, int pad_h, int pad_w,
    int activation,
    int n_threads,
    int[:, :, :, ::1] argmax=None,        # OUT (N, F, POH, POW): index in the
                                          #     plane, or None not to pool
    int pool_h=0, int pool_w=0,           # pooling window = stride
    double[:, :, ::1] stats=None,         # OUT (N, F, 2): each output plane's
                                          #     sum and squared deviations, or None
):
    """Convolution, bias and activation of a batch, in one pass per sample.

    ``out[n] = act(W @ im2col(x[n]) + b)``; with ``cols_cache`` each sample's
    im2col matrix is kept there for :func:`conv2d_backward`.

    With ``argmax``, the activated output is max pooled over windows
    (pool_h, pool_w) at the same stride while it is still in cache, and only
    the pooled values (to ``out``) and each window's argmax (the plane's C
    loop that ``pool`` uses) are written: the full output stays in a per-thread
    scratch plane and never reaches memory. The backward pass needs no more
    (see :func:`conv2d_backward`). Shapes are trusted: call through
    ``pyconvnet.ops``.
    """
    if x.shape[0] == 0:
        return
    cdef:
        Geometry g = _geometry(
            x.shape, weight.shape,
            (x.shape[2] + 2 * pad_h - weight.shape[2]) // stride_h + 1,
            (x.shape[3] + 2 * pad_w - weight.shape[3]) // stride_w + 1,
            stride_h, stride_w, pad_h, pad_w)
        Py_ssize_t N = g.N, F = g.F, K = g.K, P = g.P
        bint direct = g.direct
        bint has_bias = bias is not None
        const floating* w = &weight[0, 0, 0, 0]
        bint cache = cols_cache is not None and not direct
        bint pool = argmax is not None
        bint has_stats = stats is not None
        int OH = g.OH, OW = g.OW
        int POH = out.shape[2], POW = out.shape[3]
        Py_ssize_t off_y = 0 if direct or cache else K * P
        Py_ssize_t off_pad = off_y + (F * P if pool else 0)
        floating[:, ::1] scratch
        floating* base
        floating* cols
        const floating* xn
        floating* yn
        Py_ssize_t n, f
        int n_used
    dtype = np.float32 if floating is float else np.float64
    # One thread's scratch: [im2col of x | output when pooling | padded x].
    scratch_arr, n_used = _scratch(n_threads, N,
                                   off_pad + (0 if direct else g.pad_size), dtype)
    scratch = scratch_arr
    with nogil, parallel(num_threads=n_used):
        for n in prange(N, schedule='dynamic'):
            base = &scratch[threadid(), 0]
            xn = &x[n, 0, 0, 0]
            yn = base + off_y if pool else &out[n, 0, 0, 0]
            if not direct:
                cols = &cols_cache[n, 0] if cache else base
                _im2col(xn, cols, base + off_pad, &g)
                xn = cols
            _product(False, F, P, K, w, K, xn, P, False, yn, P)
            _conv_tail(yn, F, P, &bias[0] if has_bias else NULL, activation,
                       &stats[n, 0, 0] if has_stats else NULL,
                       &out[n, 0, 0, 0] if pool else NULL,
                       &argmax[n, 0, 0, 0] if pool else NULL, OH, OW, pool_h,
                       pool_w, POH, POW)


def conv2d_backward(
    const floating[:, :, :, ::1] dy,      # IN  (N, F, OH, OW): d loss / d y;
                                          #     with argmax, d loss / d pooled
    const floating[:, :, :, ::1] y,       # IN  (N, F, OH, OW): activated output,
                                          #     or None with no activation; with
                                          #     argmax, the pooled output
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
    const int[:, :, :, ::1] argmax=None,  # IN  (N, F, POH, POW): the pooled
                                          #     forward pass's, or None
):
    """Gradients of :func:`conv2d_forward` for a batch: the input gradient
    (unless ``dx`` is None), and the weight and bias gradients summed over the
    samples in a fixed order.

    With ``argmax`` (the forward pass pooled, without overlap), each
    sample's gradient at the activation's input is rebuilt in scratch from
    the pooled gradient, the pooled values and the argmax: zero except at
    each window's maximum (``_unpool_act`` of ``common.h``), bit for bit
    what pooling's backward pass followed by the activation's would give.
    Shapes are trusted: call through ``pyconvnet.ops``."""
    cdef:
        bint pool = argmax is not None
        Geometry g = _geometry(
            x.shape, weight.shape,
            (x.shape[2] + 2 * pad_h - weight.shape[2]) // stride_h + 1,
            (x.shape[3] + 2 * pad_w - weight.shape[3]) // stride_w + 1,
            stride_h, stride_w, pad_h, pad_w)
        Py_ssize_t N = g.N, F = g.F, K = g.K, P = g.P
        bint direct = g.direct
        bint want_dx = dx is not None
        Py_ssize_t chunk, n_chunks
        const floating* w = &weight[0, 0, 0, 0]
        bint cache = cols_cache is not None and not direct
        bint unfold = not direct and not cache
        bint col_dx = want_dx and not direct
        bint act = activation != PCN_IDENTITY
        Py_ssize_t PQ = dy.shape[2] * dy.shape[3]
        Py_ssize_t off_cols, off_dcols, off_dz, off_pad, size
        floating[:, ::1] scratch
        floating* base
        floating* dcols
        floating* dz
        const floating* xn
        const floating* dyn
        floating* dwc
        double* dbc
        double acc
        Py_ssize_t ci, n, f, k
        int n_used, first
    if N == 0:
        dweight[...] = 0
        dbias[...] = 0
        return
    chunk = (N + MAX_GRAD_CHUNKS - 1) // MAX_GRAD_CHUNKS
    n_chunks = (N + chunk - 1) // chunk
    dtype = np.float32 if floating is float else np.float64
    # Per-chunk partial sums; the bias sums in double, since they add up
    # N*OH*OW terms of one sign pattern and float32 would lose digits.
    # Each chunk's weight gradient, transposed: (K, F).
    cdef floating[:, ::1] dw_chunks = np.empty((n_chunks, K * F), dtype=dtype)
    cdef double[:, ::1] db_chunks = np.zeros((n_chunks, F), dtype=np.float64)
    # One thread's scratch: [im2col of x | dcols | activation gradient |
    # padded copy of x, then padded accumulator of dx].
    off_cols = 0
    off_dcols = off_cols + (K * P if unfold else 0)
    off_dz = off_dcols + (K * P if col_dx else 0)
    off_pad = off_dz + (F * P if act or pool else 0)
    size = off_pad + (g.pad_size if unfold or col_dx else 0)
    scratch_arr, n_used = _scratch(n_threads, n_chunks, size, dtype)
    scratch = scratch_arr

    with nogil, parallel(num_threads=n_used):
        for ci in prange(n_chunks, schedule='dynamic'):
            base = &scratch[threadid(), 0]
            dcols = base + off_dcols
            dz = base + off_dz
            dwc = &dw_chunks[ci, 0]
            dbc = &db_chunks[ci, 0]
            for n in range(ci * chunk, min((ci + 1) * chunk, N)):
                xn = &x[n, 0, 0, 0]
                if pool:
                    memset(dz, 0, <size_t> (F * P) * sizeof(floating))
                    for f in range(F):
                        _unpool_act(dz + f * P, &dy[n, f, 0, 0],
                                    &y[n, f, 0, 0], &argmax[n, f, 0, 0],
                                    PQ, activation)
                    dyn = dz
                elif act:
                    _act_grad(&dy[n, 0, 0, 0], &y[n, 0, 0, 0], dz, F * P,
                              activation)
                    dyn = dz
                else:
                    dyn = &dy[n, 0, 0, 0]
                if cache:
                    xn = &cols_cache[n, 0]
                elif unfold:
                    _im2col(xn, base + off_cols, base + off_pad, &g)
                    xn = base + off_cols
                first = n == ci * chunk
                if K <= SMALL_K:
                    _product_nt(K, F, P, xn, P, dyn, P, not first, dwc, F)
                else:
                    gemm(False, True, K, F, P, <floating> 1, xn, P, dyn, P,
                         <floating> (0 if first else 1), dwc, F)
                for f in range(F):
                    dbc[f] += _sum(dyn + f * P, P)
                if want_dx:
                    if direct:
                        # dx[n] viewed as (C, H*W) is dcols itself.
                        _product(True, K, P, F, w, K, dyn, P, False,
                                 &dx[n, 0, 0, 0], P)
                    else:
                        _product(True, K, P, F, w, K, dyn, P, False, dcols, P)
                        _col2im(dcols, &dx[n, 0, 0, 0], base + off_pad, &g)

    # Fixed-order reduction of the chunks (see ``_reduce_chunks``), then
    # the one transpose to (F, K).
    dwt_arr = np.empty((K, F), dtype=dtype)
    cdef floating[:, ::1] dwt_view = dwt_arr
    cdef floating* dwt = &dwt_view[0, 0]
    with nogil:
        _reduce_chunks(dwt, &dw_chunks[0, 0], n_chunks, F * K, n_used)
        _transpose(&dweight[0, 0, 0, 0], dwt, K, F)
    for f in range(F):
        acc = 0
        for ci in range(n_chunks):
            acc = acc + db_chunks[ci, f]
        dbias[f] = <floating> acc
