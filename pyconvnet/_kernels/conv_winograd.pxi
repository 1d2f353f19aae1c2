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

Kernels larger than 3x3 (up to 9x9) are cut into 3x3 pieces, zero past the
kernel's edge (Huang et al., "DWM: A Decomposable Winograd Method for
Convolution Acceleration", 2020): piece (a, b) is a 3x3 convolution of the
input shifted by (3a, 3b), so the pieces are P more input channels of one
3x3 Winograd convolution (a 5x5 kernel: 4 pieces, 4 * 2.25 = 9 multiplies
per output and channel with m=4 instead of 25), with the same transforms and
products over P times the channels.

The products are BLAS calls, except in float32 in the AVX-512 build, where
``sgemm.h``'s register-tiled kernels run them (OpenBLAS runs AVX2 kernels on
AMD's AVX-512 CPUs: half of Zen 5's peak); that build's float32 results
differ from the others' in rounding.

Nothing here validates: ``pyconvnet.ops`` checks every shape first, and the
registry runs these only at stride 1.
"""
from cython cimport floating
from cython.parallel cimport prange, parallel, threadid
from libc.string cimport memset

import numpy as np

from pyconvnet._kernels.blas cimport gemm
from pyconvnet._kernels.products cimport _own, _product
from pyconvnet._kernels.common cimport (MAX_GRAD_CHUNKS, PCN_IDENTITY,
                                        _act_grad, _conv_tail, _n_threads,
                                        _scratch_rows,
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
                           int TH, int TW, ptrdiff_t ldv, ptrdiff_t xs,
                           ptrdiff_t t0) noexcept nogil
    void pcn_wino2_input_d(const double* xp, double* V, int C, int Hp, int Wp,
                           int TH, int TW, ptrdiff_t ldv, ptrdiff_t xs,
                           ptrdiff_t t0) noexcept nogil
    void pcn_wino4_input_f(const float* xp, float* V, int C, int Hp, int Wp,
                           int TH, int TW, ptrdiff_t ldv, ptrdiff_t xs,
                           ptrdiff_t t0) noexcept nogil
    void pcn_wino4_input_d(const double* xp, double* V, int C, int Hp, int Wp,
                           int TH, int TW, ptrdiff_t ldv, ptrdiff_t xs,
                           ptrdiff_t t0) noexcept nogil
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
                                int Wp, int TH, int TW, ptrdiff_t ldv,
                                ptrdiff_t xs, ptrdiff_t t0) noexcept nogil
    void pcn_wino2_grad_input_d(const double* dV, double* dxp, int C, int Hp,
                                int Wp, int TH, int TW, ptrdiff_t ldv,
                                ptrdiff_t xs, ptrdiff_t t0) noexcept nogil
    void pcn_wino4_grad_input_f(const float* dV, float* dxp, int C, int Hp,
                                int Wp, int TH, int TW, ptrdiff_t ldv,
                                ptrdiff_t xs, ptrdiff_t t0) noexcept nogil
    void pcn_wino4_grad_input_d(const double* dV, double* dxp, int C, int Hp,
                                int Wp, int TH, int TW, ptrdiff_t ldv,
                                ptrdiff_t xs, ptrdiff_t t0) noexcept nogil


# A group holds about GROUP_TILES tiles (the products' row count), and a
# batch is cut into at least MIN_GROUPS groups when it has the samples, so
# that several threads have work (the group never depends on the thread
# count: results do not either). Why 192: benchmarks/PERFORMANCE.md.
GROUP_TILES = 192
# The channels the transforms take at a time in this build (winograd.h).
LANES = PCN_WL
MIN_GROUPS = 4


cdef struct WGeometry:
    # Sizes of one layer: input (C, H, W), F filters of (KH, KW) cut into
    # PH x PW pieces of 3x3 (P of them; one piece for a 3x3 kernel),
    # padding, output (OH, OW); tile size m, AA = (m + 2)^2; TH x TW tiles
    # per sample (T of them); the blocked, padded input (Cb, Hp, Wp,
    # PCN_WL); channels and filters rounded up to the lanes (Cp, Fp); K =
    # P*Cp, the products' inner size (a row of V); G samples per group,
    # n_groups groups; xsV and xsM: the distance between the xi-blocks of V
    # and of M (a group's tiles times K or Fp, plus PCN_WSKEW).
    int N, C, H, W, F, KH, KW, PH, PW, P, ph, pw, OH, OW, m, AA, TH, TW, Hp, Wp
    int G, n_groups
    Py_ssize_t T, Cp, Fp, K, xsV, xsM


def group_size(n_samples, tiles_per_sample):
    """Samples per group: about GROUP_TILES tiles, and MIN_GROUPS groups
    where the batch has that many samples."""
    return max(1, min(-(-GROUP_TILES // tiles_per_sample),
                      -(-n_samples // MIN_GROUPS)))


def _lanes(n):
    return -(-n // PCN_WL) * PCN_WL


def transformed_size(n_samples, channels, out_h, out_w, kernel, m):
    """Values of the transformed input V of a batch (what training keeps)."""
    tiles = (-(-out_h // m)) * (-(-out_w // m))
    pieces = (-(-kernel[0] // 3)) * (-(-kernel[1] // 3))
    group = group_size(n_samples, tiles)
    n_groups = -(-n_samples // group)
    return n_groups * (m + 2) ** 2 * (group * tiles * pieces * _lanes(channels)
                                      + PCN_WSKEW)


cdef WGeometry _wgeometry(const Py_ssize_t* x_shape, const Py_ssize_t* w_shape,
                          int m, int ph, int pw):
    cdef WGeometry g
    g.N = x_shape[0]
    g.C = x_shape[1]
    g.H = x_shape[2]
    g.W = x_shape[3]
    g.F = w_shape[0]
    g.KH = w_shape[2]
    g.KW = w_shape[3]
    g.PH = (g.KH + 2) // 3
    g.PW = (g.KW + 2) // 3
    g.P = g.PH * g.PW
    g.ph = ph
    g.pw = pw
    g.OH = g.H + 2 * ph - g.KH + 1
    g.OW = g.W + 2 * pw - g.KW + 1
    g.m = m
    g.AA = (m + 2) * (m + 2)
    g.TH = (g.OH + m - 1) // m
    g.TW = (g.OW + m - 1) // m
    g.T = <Py_ssize_t> g.TH * g.TW
    g.Hp = g.TH * m + 2 + 3 * (g.PH - 1)
    g.Wp = g.TW * m + 2 + 3 * (g.PW - 1)
    g.Cp = _lanes(g.C)
    g.Fp = _lanes(g.F)
    g.K = g.P * g.Cp
    g.G = group_size(g.N, g.T)
    g.n_groups = (g.N + g.G - 1) // g.G
    g.xsV = g.G * g.T * g.K + PCN_WSKEW
    g.xsM = g.G * g.T * g.Fp + PCN_WSKEW
    return g


cdef inline void _weights(const WGeometry* g, const floating* w,
                          floating* U) noexcept nogil:
    """U (AA, K, F) of the pieces w (F, K, 3, 3)."""
    if floating is float:
        if g.m == 2:
            pcn_wino2_weights_f(w, U, g.F, g.K)
        else:
            pcn_wino4_weights_f(w, U, g.F, g.K)
    else:
        if g.m == 2:
            pcn_wino2_weights_d(w, U, g.F, g.K)
        else:
            pcn_wino4_weights_d(w, U, g.F, g.K)


cdef inline void _grad_weights(const WGeometry* g, const floating* dU,
                               floating* dw) noexcept nogil:
    """The pieces' gradient dw (F, K, 3, 3) from dU (AA, K, F)."""
    if floating is float:
        if g.m == 2:
            pcn_wino2_grad_weights_f(dU, dw, g.F, g.K)
        else:
            pcn_wino4_grad_weights_f(dU, dw, g.F, g.K)
    else:
        if g.m == 2:
            pcn_wino2_grad_weights_d(dU, dw, g.F, g.K)
        else:
            pcn_wino4_grad_weights_d(dU, dw, g.F, g.K)


cdef inline Py_ssize_t _piece_origin(const WGeometry* g, int p) noexcept nogil:
    """Where piece p's patches start in the blocked input: 3 rows down per
    piece row, 3 columns right per piece column."""
    return ((3 * (p // g.PW)) * <Py_ssize_t> g.Wp + 3 * (p % g.PW)) * PCN_WL


cdef inline void _input(const WGeometry* g, const floating* x, floating* xb,
                        floating* V, Py_ssize_t t0) noexcept nogil:
    """Block and pad one sample x into xb and transform it, piece by piece,
    into V's tiles t0, t0 + 1, ..."""
    cdef int p
    cdef floating* Vp
    cdef const floating* xbp
    if floating is float:
        pcn_wino_block_f(x, xb, g.C, g.H, g.W, g.ph, g.pw, g.Hp, g.Wp)
    else:
        pcn_wino_block_d(x, xb, g.C, g.H, g.W, g.ph, g.pw, g.Hp, g.Wp)
    for p in range(g.P):
        xbp = xb + _piece_origin(g, p)
        Vp = V + p * g.Cp
        if floating is float:
            if g.m == 2:
                pcn_wino2_input_f(xbp, Vp, g.C, g.Hp, g.Wp, g.TH, g.TW, g.K, g.xsV, t0)
            else:
                pcn_wino4_input_f(xbp, Vp, g.C, g.Hp, g.Wp, g.TH, g.TW, g.K, g.xsV, t0)
        else:
            if g.m == 2:
                pcn_wino2_input_d(xbp, Vp, g.C, g.Hp, g.Wp, g.TH, g.TW, g.K, g.xsV, t0)
            else:
                pcn_wino4_input_d(xbp, Vp, g.C, g.Hp, g.Wp, g.TH, g.TW, g.K, g.xsV, t0)


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
    """One sample's input gradient dx from dV's tiles t0, t0 + 1, ...: each
    piece's B dV B^T added at its origin in the blocked, padded accumulator
    dxb, which is then cropped and unblocked."""
    cdef int p
    cdef floating* dxbp
    cdef const floating* dVp
    memset(dxb, 0, <size_t> ((g.Cp // PCN_WL) * g.Hp * <Py_ssize_t> g.Wp
                             * PCN_WL) * sizeof(floating))
    for p in range(g.P):
        dxbp = dxb + _piece_origin(g, p)
        dVp = dV + p * g.Cp
        if floating is float:
            if g.m == 2:
                pcn_wino2_grad_input_f(dVp, dxbp, g.C, g.Hp, g.Wp, g.TH, g.TW, g.K, g.xsV, t0)
            else:
                pcn_wino4_grad_input_f(dVp, dxbp, g.C, g.Hp, g.Wp, g.TH, g.TW, g.K, g.xsV, t0)
        else:
            if g.m == 2:
                pcn_wino2_grad_input_d(dVp, dxbp, g.C, g.Hp, g.Wp, g.TH, g.TW, g.K, g.xsV, t0)
            else:
                pcn_wino4_grad_input_d(dVp, dxbp, g.C, g.Hp, g.Wp, g.TH, g.TW, g.K, g.xsV, t0)
    if floating is float:
        pcn_wino_unblock_f(dxb, dx, g.C, g.H, g.W, g.ph, g.pw, g.Hp, g.Wp)
    else:
        pcn_wino_unblock_d(dxb, dx, g.C, g.H, g.W, g.ph, g.pw, g.Hp, g.Wp)


def _array(buffer, key, shape, dtype):
    """A work array: lent by the layer for its lifetime when ``buffer`` is
    given (in training: no fresh pages to fault in and clear on every
    call), else a new one."""
    if buffer is not None:
        return buffer("winograd-" + key, shape, dtype)
    return np.empty(shape, dtype=dtype)


def _scratch(n_threads, n_items, size, dtype, buffer, key, bint lanes_full):
    """Per-thread scratch (threads used, size), allocated with the GIL held;
    never more threads than work items. Unless every lane holds a channel
    and a filter (``lanes_full``), zeroed: the lanes past C or F of the
    transformed arrays are read by the transforms (their results dropped)
    but never written by the products, and must not hold denormal or other
    slow garbage."""
    scratch, n_used = _scratch_rows(n_threads, n_items, size,
                                    lambda shape: _array(buffer, key, shape, dtype))
    if not lanes_full:
        scratch[...] = 0
    return scratch, n_used


cdef _pieces(weight, const WGeometry* g):
    """The kernel as P pieces of 3x3 over Cp channels each: (F, K, 3, 3),
    zero past the kernel's edge and past C (the kernel itself when it is
    3x3 over whole lanes)."""
    if g.P == 1 and g.C == g.Cp and g.KH == 3 and g.KW == 3:
        return weight
    F, C, KH, KW = weight.shape
    padded = np.zeros((F, C, 3 * g.PH, 3 * g.PW), dtype=weight.dtype)
    padded[:, :, :KH, :KW] = weight
    pieces = np.zeros((F, g.PH, g.PW, g.Cp, 3, 3), dtype=weight.dtype)
    pieces[:, :, :, :C] = padded.reshape(F, C, g.PH, 3, g.PW, 3).transpose(
        0, 2, 4, 1, 3, 5)
    return pieces.reshape(F, g.K, 3, 3)


cdef _transformed_weights(const floating[:, :, :, ::1] weight,
                          const WGeometry* g, buffer):
    """U (AA, K, F) of the weights."""
    U_arr = _array(buffer, "U", g.AA * g.K * g.F,
                   np.float32 if floating is float else np.float64)
    cdef floating[::1] U = U_arr
    cdef const floating[:, :, :, ::1] w = _pieces(np.asarray(weight), g)
    with nogil:
        _weights(g, &w[0, 0, 0, 0], &U[0])
    return U_arr


def conv2d_forward(
    const floating[:, :, :, ::1] x,       # IN  (N, C, H, W)
    const floating[:, :, :, ::1] weight,  # IN  (F, C, KH, KW), KH, KW <= 9
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
    buffer=None,                          # buffer(key, shape, dtype): work
                                          #     arrays lent for the layer's life
    double[:, :, ::1] stats=None,         # OUT (N, F, 2): each output plane's
                                          #     sum and squared deviations, or None
):
    """Convolution (stride 1), bias and activation of a batch; with
    ``argmax``, max pooled in the same pass (see ``conv_im2col``). Returns
    the transformed weights (for the backward pass)."""
    if x.shape[0] == 0:
        return None
    cdef:
        WGeometry g = _wgeometry(x.shape, weight.shape, m, pad_h, pad_w)
        Py_ssize_t F = g.F, K = g.K, P = <Py_ssize_t> g.OH * g.OW
        Py_ssize_t AA = g.AA, G = g.G, T = g.T, Fp = g.Fp
        bint has_bias = bias is not None
        bint keep = cache is not None
        bint pool = argmax is not None
        bint has_stats = stats is not None
        int POH = out.shape[2], POW = out.shape[3]
        Py_ssize_t off_V = (g.Cp // PCN_WL) * g.Hp * <Py_ssize_t> g.Wp * PCN_WL
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
    U_arr = _transformed_weights(weight, &g, buffer)
    cdef floating[::1] U_view = U_arr
    U = &U_view[0]
    # One thread's scratch: [blocked sample | V | M | output when pooling].
    scratch_arr, n_used = _scratch(n_threads, g.n_groups,
                                   off_y + (F * P if pool else 0), dtype,
                                   buffer, "forward", g.C == g.Cp and F == Fp)
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
                _product(False, ld, F, K, V + xi * g.xsV, K, U + xi * K * F, F,
                         False, Mb + xi * g.xsM, Fp)
            for s in range(gs):
                yn = base + off_y if pool else &out[n0 + s, 0, 0, 0]
                _output(&g, Mb, yn, s * T)
                _conv_tail(yn, F, P, &bias[0] if has_bias else NULL, activation,
                           &stats[n0 + s, 0, 0] if has_stats else NULL,
                           &out[n0 + s, 0, 0, 0] if pool else NULL,
                           &argmax[n0 + s, 0, 0, 0] if pool else NULL, g.OH,
                           g.OW, pool_h, pool_w, POH, POW)
    return U_arr


def conv2d_backward(
    const floating[:, :, :, ::1] dy,      # IN  (N, F, OH, OW); with argmax,
                                          #     d loss / d pooled
    const floating[:, :, :, ::1] y,       # IN  activated (or pooled) output,
                                          #     or None with no activation
    const floating[:, :, :, ::1] x,       # IN  (N, C, H, W)
    const floating[:, :, :, ::1] weight,  # IN  (F, C, KH, KW)
    const floating[::1] cache,            # IN  V from the forward pass, or None
    const floating[::1] U_in,             # IN  transformed weights, or None
    floating[:, :, :, ::1] dx,            # OUT (N, C, H, W), or None to skip
    floating[:, :, :, ::1] dweight,       # OUT (F, C, KH, KW)
    floating[::1] dbias,                  # OUT (F,)
    int m, int pad_h, int pad_w,
    int activation,
    int n_threads,
    const int[:, :, :, ::1] argmax=None,  # IN  the pooled forward pass's, or None
    buffer=None,                          # as for conv2d_forward
):
    """Gradients of :func:`conv2d_forward`: the input gradient (unless
    ``dx`` is None), and the weight and bias gradients summed over the
    samples in a fixed order."""
    cdef:
        WGeometry g = _wgeometry(x.shape, weight.shape, m, pad_h, pad_w)
        Py_ssize_t F = g.F, K = g.K, P = <Py_ssize_t> g.OH * g.OW
        Py_ssize_t AA = g.AA, G = g.G, T = g.T, Fp = g.Fp
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
        const floating* UT
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
    cdef floating[:, ::1] dU_chunks = _array(buffer, "dU-chunks",
                                             (n_chunks, AA * K * F), dtype)
    cdef double[:, ::1] db_chunks = np.zeros((n_chunks, F), dtype=np.float64)
    cdef const floating[::1] U_view
    cdef const floating[:, :, ::1] UT_view
    cdef bint own = _own(<floating> 0)
    U = UT = NULL
    if want_dx:
        U_view = _transformed_weights(weight, &g, buffer) if U_in is None else U_in
        U = &U_view[0]
        if own:
            # U's transpose for dM @ U^T, in an array the layer lends
            # (rebuilt every step, never reallocated).
            UT_arr = _array(buffer, "UT", (AA, F, K), dtype)
            np.copyto(UT_arr, np.asarray(U_view).reshape(AA, K, F).transpose(0, 2, 1))
            UT_view = UT_arr
            UT = &UT_view[0, 0, 0]
    # One thread's scratch: [blocked sample (the input, then the input
    # gradient) | V | activation gradient of a sample | blocked output
    # gradient | dM | dV].
    off_V = (g.Cp // PCN_WL) * g.Hp * <Py_ssize_t> g.Wp * PCN_WL
    off_dz = off_V + (0 if keep else AA * g.xsV)
    off_zb = off_dz + (F * P if act or pool else 0)
    off_dM = off_zb + T * g.m * g.m * Fp
    off_dV = off_dM + AA * g.xsM
    size = off_dV + (AA * g.xsV if want_dx else 0)
    scratch_arr, n_used = _scratch(n_threads, n_chunks, size, dtype, buffer,
                                   "backward", g.C == g.Cp and F == Fp)
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
                    _product(True, K, F, ld, V + xi * g.xsV, K, dM + xi * g.xsM,
                             Fp, grp != ci * per_chunk, dUc + xi * K * F, F)
                if want_dx:
                    for xi in range(AA):
                        if own:
                            # dM @ U^T as a product by U's transpose UT.
                            _product(False, ld, K, F, dM + xi * g.xsM, Fp,
                                     UT + xi * F * K, K, False,
                                     dV + xi * g.xsV, K)
                        else:
                            gemm(False, True, ld, K, F, <floating> 1,
                                 dM + xi * g.xsM, Fp, U + xi * K * F, F,
                                 <floating> 0, dV + xi * g.xsV, K)
                    for s in range(gs):
                        _grad_input(&g, dV, base, &dx[n0 + s, 0, 0, 0], s * T)

    dU_arr = _array(buffer, "dU", AA * K * F, dtype)
    cdef floating[::1] dU = dU_arr
    cdef bint whole_kernel = g.P == 1 and g.C == g.Cp and g.KH == 3 and g.KW == 3
    cdef floating[:, :, :, ::1] dw = (dweight if whole_kernel else
                                      np.empty((F, K, 3, 3), dtype=dtype))
    with nogil:
        _reduce_chunks(&dU[0], &dU_chunks[0, 0], n_chunks, AA * K * F, n_used)
        _grad_weights(&g, &dU[0], &dw[0, 0, 0, 0])
    if not whole_kernel:
        # Back from pieces to the kernel: (F, PH, PW, Cp, 3, 3) -> (F, C,
        # KH, KW), dropping the lanes past C and the rows and columns past
        # the kernel.
        whole = np.asarray(dw).reshape(F, g.PH, g.PW, g.Cp, 3, 3)[:, :, :, :g.C]
        whole = whole.transpose(0, 3, 1, 4, 2, 5).reshape(
            F, g.C, 3 * g.PH, 3 * g.PW)
        np.asarray(dweight)[...] = whole[:, :, :g.KH, :g.KW]
    for f in range(F):
        acc = 0
        for ci in range(n_chunks):
            acc = acc + db_chunks[ci, f]
        dbias[f] = <floating> acc
