# The body of conv_winograd_generic, conv_winograd_avx2 and
# conv_winograd_avx512: one source compiled once per instruction set
# (setup.py's ISA_FLAGS), of which pyconvnet._kernels runs the best the CPU
# supports.
"""3x3 convolutions at stride 1 by Winograd's minimal filtering, forward and
backward: F(2x2, 3x3) (``m=2``) and F(4x4, 3x3) (``m=4``).

The transforms are in ``winograd.h`` (which says what each computes); here
they are put together. Samples are taken in *groups*: the tiles of a group's
samples form the columns of the a*a matrix products

    M[xi] (F, tiles) = U[xi] (F, C) @ V[xi] (C, tiles)

so that a product has a few hundred columns even where one sample has few
tiles (a 14x14 output has 49 tiles of 2x2, 16 of 4x4); ``group_size`` fixes
the group from the geometry alone. Per group: pad and transform each
sample's input (V), the products, then each sample's output transform, bias,
activation and, when asked for, max pooling while the output is in cache (as
``conv_im2col`` does: only the pooled values and their argmax are written).

Backward, per group: each sample's gradient at the activation's input
(rebuilt from the pooled gradient when pooled) is transformed once (dM) and
serves both gradients:

    dU[xi] (F, C) += dM[xi] (F, tiles) @ V[xi]^T (tiles, C)
    dV[xi] (C, tiles) = U[xi]^T (C, F) @ dM[xi] (F, tiles)

then dV is transformed back and added, tile by tile, into each sample's
input gradient. dU is summed per fixed chunk of groups and the chunks are
added in chunk order (``_reduce_chunks``): the chunking depends on the batch
size and the geometry only, so results are bit-identical for any
``n_threads``. The weight gradient is G^T dU G, once per batch.

In training the forward pass can keep V (a fraction 4/9 of im2col's
unfolding for m=2, 1/4 for m=4) for the backward pass.

Accuracy: the transforms add rounding that direct convolution has not: in
float32, relative to the largest value of a result, up to about 1e-6 for
m=2 and 2e-5 for m=4 on unit-scale data, against 3e-7 for im2col
(tests/test_kernels.py bounds each against the float64 reference).

Nothing here validates: ``pyconvnet.ops`` checks every shape first, and the
registry runs these only for 3x3 kernels at stride 1.
"""
from cython cimport floating
from cython.parallel cimport prange, parallel, threadid
from libc.string cimport memset

import numpy as np

from pyconvnet._kernels.blas cimport gemm
from pyconvnet._kernels.common cimport (PCN_IDENTITY, _act_grad, _bias_act,
                                        _max_pool_plane, _n_threads,
                                        _reduce_chunks, _sum, _unpool_act)


cdef extern from "winograd.h":
    enum:
        PCN_WL
        PCN_WSKEW
    void pcn_wino_block_f(const float* x, float* xb, int C, int H, int W,
                          int ph, int pw, int Hp, int Wp) noexcept nogil
    void pcn_wino_block_d(const double* x, double* xb, int C, int H, int W,
                          int ph, int pw, int Hp, int Wp) noexcept nogil
    void pcn_wino_unblock_f(const float* dxb, float* dx, int C, int H, int W,
                            int ph, int pw, int Hp, int Wp) noexcept nogil
    void pcn_wino_unblock_d(const double* dxb, double* dx, int C, int H,
                            int W, int ph, int pw, int Hp, int Wp) noexcept nogil
    void pcn_wino2_weights_f(const float* w, float* U, int F, int C) noexcept nogil
    void pcn_wino2_weights_d(const double* w, double* U, int F, int C) noexcept nogil
    void pcn_wino4_weights_f(const float* w, float* U, int F, int C) noexcept nogil
    void pcn_wino4_weights_d(const double* w, double* U, int F, int C) noexcept nogil
    void pcn_wino2_grad_weights_f(const float* dU, float* dw, int F, int C) noexcept nogil
    void pcn_wino2_grad_weights_d(const double* dU, double* dw, int F, int C) noexcept nogil
    void pcn_wino4_grad_weights_f(const float* dU, float* dw, int F, int C) noexcept nogil
    void pcn_wino4_grad_weights_d(const double* dU, double* dw, int F, int C) noexcept nogil
    void pcn_wino2_input_f(const float* xp, float* V, int C, int Hp, int Wp,
                           int TH, int TW, ptrdiff_t xs, ptrdiff_t t0) noexcept nogil
    void pcn_wino2_input_d(const double* xp, double* V, int C, int Hp, int Wp,
                           int TH, int TW, ptrdiff_t xs, ptrdiff_t t0) noexcept nogil
    void pcn_wino4_input_f(const float* xp, float* V, int C, int Hp, int Wp,
                           int TH, int TW, ptrdiff_t xs, ptrdiff_t t0) noexcept nogil
    void pcn_wino4_input_d(const double* xp, double* V, int C, int Hp, int Wp,
                           int TH, int TW, ptrdiff_t xs, ptrdiff_t t0) noexcept nogil
    void pcn_wino2_output_f(const float* Mb, float* y, int F, int OH, int OW,
                            int TH, int TW, ptrdiff_t xs, ptrdiff_t t0) noexcept nogil
    void pcn_wino2_output_d(const double* Mb, double* y, int F, int OH, int OW,
                            int TH, int TW, ptrdiff_t xs, ptrdiff_t t0) noexcept nogil
    void pcn_wino4_output_f(const float* Mb, float* y, int F, int OH, int OW,
                            int TH, int TW, ptrdiff_t xs, ptrdiff_t t0) noexcept nogil
    void pcn_wino4_output_d(const double* Mb, double* y, int F, int OH, int OW,
                            int TH, int TW, ptrdiff_t xs, ptrdiff_t t0) noexcept nogil
    void pcn_wino2_grad_output_f(const float* dz, float* zp, float* dM, int F,
                                 int OH, int OW, int TH, int TW, ptrdiff_t xs,
                                 ptrdiff_t t0) noexcept nogil
    void pcn_wino2_grad_output_d(const double* dz, double* zp, double* dM,
                                 int F, int OH, int OW, int TH, int TW,
                                 ptrdiff_t xs, ptrdiff_t t0) noexcept nogil
    void pcn_wino4_grad_output_f(const float* dz, float* zp, float* dM, int F,
                                 int OH, int OW, int TH, int TW, ptrdiff_t xs,
                                 ptrdiff_t t0) noexcept nogil
    void pcn_wino4_grad_output_d(const double* dz, double* zp, double* dM,
                                 int F, int OH, int OW, int TH, int TW,
                                 ptrdiff_t xs, ptrdiff_t t0) noexcept nogil
    void pcn_wino2_grad_input_f(const float* dV, float* dxp, int C, int Hp,
                                int Wp, int TH, int TW, ptrdiff_t xs,
                                ptrdiff_t t0) noexcept nogil
    void pcn_wino2_grad_input_d(const double* dV, double* dxp, int C, int Hp,
                                int Wp, int TH, int TW, ptrdiff_t xs,
                                ptrdiff_t t0) noexcept nogil
    void pcn_wino4_grad_input_f(const float* dV, float* dxp, int C, int Hp,
                                int Wp, int TH, int TW, ptrdiff_t xs,
                                ptrdiff_t t0) noexcept nogil
    void pcn_wino4_grad_input_d(const double* dV, double* dxp, int C, int Hp,
                                int Wp, int TH, int TW, ptrdiff_t xs,
                                ptrdiff_t t0) noexcept nogil


# At most this many chunks of groups share the weight-gradient reduction
# (as in conv_im2col).
cdef enum:
    MAX_GRAD_CHUNKS = 16

# A group holds about GROUP_TILES tiles (the products' row count), and a
# batch is cut into at least MIN_GROUPS groups when it has the samples, so
# that several threads have work (the group never depends on the thread
# count: results do not either). Measured on 32->64 channels at 14x14 and
# 16x16 and 64->128 at 8x8, batch 64, 2 threads: 128 to 256 tiles ran within
# a few percent of each other, 64 and 512 up to 20% slower; one group for
# the whole batch left a thread idle.
GROUP_TILES = 192
MIN_GROUPS = 4


cdef struct WGeometry:
    # Sizes of one layer: input (C, H, W), F filters, padding, output
    # (OH, OW); tile size m, AA = (m + 2)^2; TH x TW tiles per sample (T of
    # them); the blocked, padded input (Cb, Hp, Wp, PCN_WL); channels and
    # filters rounded up to the lanes (Cp, Fp); G samples per group,
    # n_groups groups; xsV and xsM: the distance between the xi-blocks of
    # V and of M (a group's tiles times Cp or Fp, plus PCN_WSKEW).
    int N, C, H, W, F, ph, pw, OH, OW, m, AA, TH, TW, Hp, Wp, G, n_groups
    Py_ssize_t T, Cp, Fp, xsV, xsM


def group_size(n_samples, tiles_per_sample):
    """Samples per group: about GROUP_TILES tiles, and MIN_GROUPS groups
    where the batch has that many samples."""
    return max(1, min(-(-GROUP_TILES // tiles_per_sample),
                      -(-n_samples // MIN_GROUPS)))


def _lanes(n):
    return -(-n // PCN_WL) * PCN_WL


def transformed_size(n_samples, channels, out_h, out_w, m):
    """Values of the transformed input V of a batch (what training keeps)."""
    tiles = (-(-out_h // m)) * (-(-out_w // m))
    group = group_size(n_samples, tiles)
    n_groups = -(-n_samples // group)
    return n_groups * (m + 2) ** 2 * (group * tiles * _lanes(channels) + PCN_WSKEW)


cdef WGeometry _wgeometry(const Py_ssize_t* x_shape, const Py_ssize_t* w_shape,
                          int m, int ph, int pw):
    cdef WGeometry g
    g.N = x_shape[0]
    g.C = x_shape[1]
    g.H = x_shape[2]
    g.W = x_shape[3]
    g.F = w_shape[0]
    g.ph = ph
    g.pw = pw
    g.OH = g.H + 2 * ph - 2
    g.OW = g.W + 2 * pw - 2
    g.m = m
    g.AA = (m + 2) * (m + 2)
    g.TH = (g.OH + m - 1) // m
    g.TW = (g.OW + m - 1) // m
    g.T = <Py_ssize_t> g.TH * g.TW
    g.Hp = g.TH * m + 2
    g.Wp = g.TW * m + 2
    g.Cp = _lanes(g.C)
    g.Fp = _lanes(g.F)
    g.G = group_size(g.N, g.T)
    g.n_groups = (g.N + g.G - 1) // g.G
    g.xsV = g.G * g.T * g.Cp + PCN_WSKEW
    g.xsM = g.G * g.T * g.Fp + PCN_WSKEW
    return g


cdef inline void _weights(const WGeometry* g, const floating* w,
                          floating* U) noexcept nogil:
    if floating is float:
        if g.m == 2:
            pcn_wino2_weights_f(w, U, g.F, g.C)
        else:
            pcn_wino4_weights_f(w, U, g.F, g.C)
    else:
        if g.m == 2:
            pcn_wino2_weights_d(w, U, g.F, g.C)
        else:
            pcn_wino4_weights_d(w, U, g.F, g.C)


cdef inline void _grad_weights(const WGeometry* g, const floating* dU,
                               floating* dw) noexcept nogil:
    if floating is float:
        if g.m == 2:
            pcn_wino2_grad_weights_f(dU, dw, g.F, g.C)
        else:
            pcn_wino4_grad_weights_f(dU, dw, g.F, g.C)
    else:
        if g.m == 2:
            pcn_wino2_grad_weights_d(dU, dw, g.F, g.C)
        else:
            pcn_wino4_grad_weights_d(dU, dw, g.F, g.C)


cdef inline void _input(const WGeometry* g, const floating* x, floating* xb,
                        floating* V, Py_ssize_t t0) noexcept nogil:
    """Block and pad one sample x into xb and transform it into V's tiles
    t0, t0 + 1, ..."""
    if floating is float:
        pcn_wino_block_f(x, xb, g.C, g.H, g.W, g.ph, g.pw, g.Hp, g.Wp)
        if g.m == 2:
            pcn_wino2_input_f(xb, V, g.C, g.Hp, g.Wp, g.TH, g.TW, g.xsV, t0)
        else:
            pcn_wino4_input_f(xb, V, g.C, g.Hp, g.Wp, g.TH, g.TW, g.xsV, t0)
    else:
        pcn_wino_block_d(x, xb, g.C, g.H, g.W, g.ph, g.pw, g.Hp, g.Wp)
        if g.m == 2:
            pcn_wino2_input_d(xb, V, g.C, g.Hp, g.Wp, g.TH, g.TW, g.xsV, t0)
        else:
            pcn_wino4_input_d(xb, V, g.C, g.Hp, g.Wp, g.TH, g.TW, g.xsV, t0)


cdef inline void _output(const WGeometry* g, const floating* Mb, floating* y,
                         Py_ssize_t t0) noexcept nogil:
    if floating is float:
        if g.m == 2:
            pcn_wino2_output_f(Mb, y, g.F, g.OH, g.OW, g.TH, g.TW, g.xsM, t0)
        else:
            pcn_wino4_output_f(Mb, y, g.F, g.OH, g.OW, g.TH, g.TW, g.xsM, t0)
    else:
        if g.m == 2:
            pcn_wino2_output_d(Mb, y, g.F, g.OH, g.OW, g.TH, g.TW, g.xsM, t0)
        else:
            pcn_wino4_output_d(Mb, y, g.F, g.OH, g.OW, g.TH, g.TW, g.xsM, t0)


cdef inline void _grad_output(const WGeometry* g, const floating* dz,
                              floating* zb, floating* dM,
                              Py_ssize_t t0) noexcept nogil:
    if floating is float:
        if g.m == 2:
            pcn_wino2_grad_output_f(dz, zb, dM, g.F, g.OH, g.OW, g.TH, g.TW, g.xsM, t0)
        else:
            pcn_wino4_grad_output_f(dz, zb, dM, g.F, g.OH, g.OW, g.TH, g.TW, g.xsM, t0)
    else:
        if g.m == 2:
            pcn_wino2_grad_output_d(dz, zb, dM, g.F, g.OH, g.OW, g.TH, g.TW, g.xsM, t0)
        else:
            pcn_wino4_grad_output_d(dz, zb, dM, g.F, g.OH, g.OW, g.TH, g.TW, g.xsM, t0)


cdef inline void _grad_input(const WGeometry* g, const floating* dV,
                             floating* dxb, floating* dx,
                             Py_ssize_t t0) noexcept nogil:
    """One sample's input gradient dx from dV's tiles t0, t0 + 1, ...,
    through the blocked, padded accumulator dxb."""
    if floating is float:
        if g.m == 2:
            pcn_wino2_grad_input_f(dV, dxb, g.C, g.Hp, g.Wp, g.TH, g.TW, g.xsV, t0)
        else:
            pcn_wino4_grad_input_f(dV, dxb, g.C, g.Hp, g.Wp, g.TH, g.TW, g.xsV, t0)
        pcn_wino_unblock_f(dxb, dx, g.C, g.H, g.W, g.ph, g.pw, g.Hp, g.Wp)
    else:
        if g.m == 2:
            pcn_wino2_grad_input_d(dV, dxb, g.C, g.Hp, g.Wp, g.TH, g.TW, g.xsV, t0)
        else:
            pcn_wino4_grad_input_d(dV, dxb, g.C, g.Hp, g.Wp, g.TH, g.TW, g.xsV, t0)
        pcn_wino_unblock_d(dxb, dx, g.C, g.H, g.W, g.ph, g.pw, g.Hp, g.Wp)


def _scratch(n_threads, n_items, size, dtype):
    """Per-thread scratch (threads used, size), allocated with the GIL held;
    never more threads than work items. Zeroed: the lanes past C or F of
    the transformed arrays are read by the transforms (their results
    dropped) but never written by the products."""
    n_used = _n_threads(n_threads, n_items)
    return np.zeros((n_used, max(size, 1)), dtype=dtype), n_used


cdef _transformed_weights(const floating[:, :, :, ::1] weight,
                          const WGeometry* g):
    """U (a*a, C, F) of the weights, a new array."""
    U_arr = np.empty(g.AA * g.F * g.C,
                     dtype=np.float32 if floating is float else np.float64)
    cdef floating[::1] U = U_arr
    with nogil:
        _weights(g, &weight[0, 0, 0, 0], &U[0])
    return U_arr


def conv2d_forward(
    const floating[:, :, :, ::1] x,       # IN  (N, C, H, W)
    const floating[:, :, :, ::1] weight,  # IN  (F, C, 3, 3)
    const floating[::1] bias,             # IN  (F,) or None
    floating[:, :, :, ::1] out,           # OUT (N, F, OH, OW); with argmax, the
                                          #     pooled (N, F, POH, POW)
    floating[::1] cache,                  # OUT transformed_size(...) values: V,
                                          #     kept for the backward pass; or None
    int m,                                # tile size: 2 or 4
    int pad_h, int pad_w,
    int activation,
    int n_threads,
    int[:, :, :, ::1] argmax=None,        # OUT (N, F, POH, POW), or None
    int pool_h=0, int pool_w=0,           # pooling window = stride
):
    """Convolution (3x3, stride 1), bias and activation of a batch; with
    ``argmax``, max pooled in the same pass (see ``conv_im2col``). Returns
    the transformed weights (for the backward pass)."""
    if x.shape[0] == 0:
        return None
    cdef:
        WGeometry g = _wgeometry(x.shape, weight.shape, m, pad_h, pad_w)
        Py_ssize_t F = g.F, C = g.C, P = <Py_ssize_t> g.OH * g.OW
        Py_ssize_t AA = g.AA, G = g.G, T = g.T, Cp = g.Cp, Fp = g.Fp
        bint has_bias = bias is not None
        bint keep = cache is not None
        bint pool = argmax is not None
        int POH = out.shape[2], POW = out.shape[3]
        Py_ssize_t off_V = g.Hp * <Py_ssize_t> g.Wp * Cp
        Py_ssize_t off_M = off_V + (0 if keep else AA * g.xsV)
        Py_ssize_t off_y = off_M + AA * g.xsM
        floating[:, ::1] scratch
        floating* base
        floating* V
        floating* Mb
        floating* yn
        const floating* U
        Py_ssize_t grp, n0, gs, ld, s, xi, f
        int n_used
    dtype = np.float32 if floating is float else np.float64
    U_arr = _transformed_weights(weight, &g)
    cdef floating[::1] U_view = U_arr
    U = &U_view[0]
    # One thread's scratch: [blocked sample | V | M | output when pooling].
    scratch_arr, n_used = _scratch(n_threads, g.n_groups,
                                   off_y + (F * P if pool else 0), dtype)
    scratch = scratch_arr
    with nogil, parallel(num_threads=n_used):
        for grp in prange(g.n_groups, schedule='dynamic'):
            base = &scratch[threadid(), 0]
            n0 = grp * G
            gs = min(G, g.N - n0)
            ld = gs * T
            V = &cache[grp * AA * g.xsV] if keep else base + off_V
            Mb = base + off_M
            for s in range(gs):
                _input(&g, &x[n0 + s, 0, 0, 0], base, V, s * T)
            for xi in range(AA):
                gemm(False, False, ld, F, C, <floating> 1, V + xi * g.xsV, Cp,
                     U + xi * C * F, F, <floating> 0, Mb + xi * g.xsM, Fp)
            for s in range(gs):
                yn = base + off_y if pool else &out[n0 + s, 0, 0, 0]
                _output(&g, Mb, yn, s * T)
                if has_bias or activation != PCN_IDENTITY:
                    for f in range(F):
                        _bias_act(yn + f * P, bias[f] if has_bias else 0, P,
                                  activation)
                if pool:
                    for f in range(F):
                        _max_pool_plane(yn + f * P, &out[n0 + s, f, 0, 0],
                                        &argmax[n0 + s, f, 0, 0], g.OH, g.OW,
                                        pool_h, pool_w, pool_h, pool_w, POH,
                                        POW)
    return U_arr


def conv2d_backward(
    const floating[:, :, :, ::1] dy,      # IN  (N, F, OH, OW); with argmax,
                                          #     d loss / d pooled
    const floating[:, :, :, ::1] y,       # IN  activated (or pooled) output,
                                          #     or None with no activation
    const floating[:, :, :, ::1] x,       # IN  (N, C, H, W)
    const floating[:, :, :, ::1] weight,  # IN  (F, C, 3, 3)
    const floating[::1] cache,            # IN  V from the forward pass, or None
    const floating[::1] U_in,             # IN  transformed weights, or None
    floating[:, :, :, ::1] dx,            # OUT (N, C, H, W), or None to skip
    floating[:, :, :, ::1] dweight,       # OUT (F, C, 3, 3)
    floating[::1] dbias,                  # OUT (F,)
    int m, int pad_h, int pad_w,
    int activation,
    int n_threads,
    const int[:, :, :, ::1] argmax=None,  # IN  the pooled forward pass's, or None
):
    """Gradients of :func:`conv2d_forward`: the input gradient (unless
    ``dx`` is None), and the weight and bias gradients summed over the
    samples in a fixed order."""
    cdef:
        WGeometry g = _wgeometry(x.shape, weight.shape, m, pad_h, pad_w)
        Py_ssize_t F = g.F, C = g.C, P = <Py_ssize_t> g.OH * g.OW
        Py_ssize_t AA = g.AA, G = g.G, T = g.T, Cp = g.Cp, Fp = g.Fp
        bint pool = argmax is not None
        bint act = activation != PCN_IDENTITY
        bint keep = cache is not None
        bint want_dx = dx is not None
        Py_ssize_t PQ = dy.shape[2] * dy.shape[3]
        Py_ssize_t per_chunk, n_chunks
        Py_ssize_t off_V, off_dz, off_zb, off_dM, off_dV, size
        floating[:, ::1] scratch
        floating* base
        floating* V
        floating* dz
        floating* dM
        floating* dV
        const floating* dyn
        const floating* U
        floating* dUc
        double* dbc
        double acc
        Py_ssize_t ci, grp, n0, n, gs, ld, s, xi, f
        int n_used
    if g.N == 0:
        dweight[...] = 0
        dbias[...] = 0
        return
    dtype = np.float32 if floating is float else np.float64
    per_chunk = (g.n_groups + MAX_GRAD_CHUNKS - 1) // MAX_GRAD_CHUNKS
    n_chunks = (g.n_groups + per_chunk - 1) // per_chunk
    cdef floating[:, ::1] dU_chunks = np.empty((n_chunks, AA * C * F), dtype=dtype)
    cdef double[:, ::1] db_chunks = np.zeros((n_chunks, F), dtype=np.float64)
    cdef const floating[::1] U_view
    U = NULL
    if want_dx:
        U_view = _transformed_weights(weight, &g) if U_in is None else U_in
        U = &U_view[0]
    # One thread's scratch: [blocked sample (the input, then the input
    # gradient) | V | activation gradient of a sample | blocked output
    # gradient | dM | dV].
    off_V = g.Hp * <Py_ssize_t> g.Wp * Cp
    off_dz = off_V + (0 if keep else AA * g.xsV)
    off_zb = off_dz + (F * P if act or pool else 0)
    off_dM = off_zb + T * g.m * g.m * Fp
    off_dV = off_dM + AA * g.xsM
    size = off_dV + (AA * g.xsV if want_dx else 0)
    scratch_arr, n_used = _scratch(n_threads, n_chunks, size, dtype)
    scratch = scratch_arr

    with nogil, parallel(num_threads=n_used):
        for ci in prange(n_chunks, schedule='dynamic'):
            base = &scratch[threadid(), 0]
            dz = base + off_dz
            dM = base + off_dM
            dV = base + off_dV
            dUc = &dU_chunks[ci, 0]
            dbc = &db_chunks[ci, 0]
            for grp in range(ci * per_chunk, min((ci + 1) * per_chunk, g.n_groups)):
                n0 = grp * G
                gs = min(G, g.N - n0)
                ld = gs * T
                if keep:
                    V = <floating*> &cache[grp * AA * g.xsV]
                else:
                    V = base + off_V
                    for s in range(gs):
                        _input(&g, &x[n0 + s, 0, 0, 0], base, V, s * T)
                for s in range(gs):
                    n = n0 + s
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
                    for f in range(F):
                        dbc[f] += _sum(dyn + f * P, P)
                    _grad_output(&g, dyn, base + off_zb, dM, s * T)
                for xi in range(AA):
                    gemm(True, False, C, F, ld, <floating> 1, V + xi * g.xsV,
                         Cp, dM + xi * g.xsM, Fp,
                         <floating> (0 if grp == ci * per_chunk else 1),
                         dUc + xi * C * F, F)
                if want_dx:
                    for xi in range(AA):
                        gemm(False, True, ld, C, F, <floating> 1,
                             dM + xi * g.xsM, Fp, U + xi * C * F, F,
                             <floating> 0, dV + xi * g.xsV, Cp)
                    for s in range(gs):
                        _grad_input(&g, dV, base, &dx[n0 + s, 0, 0, 0], s * T)

    dU_arr = np.empty(AA * C * F, dtype=dtype)
    cdef floating[::1] dU = dU_arr
    with nogil:
        _reduce_chunks(&dU[0], &dU_chunks[0, 0], n_chunks, AA * C * F, n_used)
        _grad_weights(&g, &dU[0], &dweight[0, 0, 0, 0])
    for f in range(F):
        acc = 0
        for ci in range(n_chunks):
            acc = acc + db_chunks[ci, f]
        dbias[f] = <floating> acc
