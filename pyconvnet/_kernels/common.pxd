# What every kernel shares: the C loops of common.h (with the activation
# enum), fused-type wrappers that pick their float or double version, the
# one rule for how many threads a loop starts, and the fixed-order reduction
# of per-chunk partial sums that keeps results independent of the thread
# count.
from cython cimport floating
from cython.parallel cimport prange


cdef extern from "common.h":
    # The activation codes (pcn_activation), for every kernel and, through
    # ``runtime.ACTIVATION_CODES``, for Python.
    enum:
        PCN_IDENTITY
        PCN_RELU
        PCN_SIGMOID
        PCN_TANH
    void pcn_bias_act_f(float* y, float b, ptrdiff_t n, int act) noexcept nogil
    void pcn_bias_act_d(double* y, double b, ptrdiff_t n, int act) noexcept nogil
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
    void pcn_im2col_f(const float* x, float* cols, int C, int H, int W, int KH,
                      int KW, int sh, int sw, int ph, int pw, int OH,
                      int OW) noexcept nogil
    void pcn_im2col_d(const double* x, double* cols, int C, int H, int W,
                      int KH, int KW, int sh, int sw, int ph, int pw, int OH,
                      int OW) noexcept nogil
    void pcn_pad_f(const float* x, float* xp, int C, int H, int W, int ph,
                   int pw) noexcept nogil
    void pcn_pad_d(const double* x, double* xp, int C, int H, int W, int ph,
                   int pw) noexcept nogil
    void pcn_im2col_padded_f(const float* xp, float* cols, int C, int H, int W,
                             int KH, int KW, int ph, int pw, int OH,
                             int OW) noexcept nogil
    void pcn_im2col_padded_d(const double* xp, double* cols, int C, int H,
                             int W, int KH, int KW, int ph, int pw, int OH,
                             int OW) noexcept nogil
    void pcn_col2im_padded_f(const float* cols, float* dxp, float* dx, int C,
                             int H, int W, int KH, int KW, int ph, int pw,
                             int OH, int OW) noexcept nogil
    void pcn_col2im_padded_d(const double* cols, double* dxp, double* dx,
                             int C, int H, int W, int KH, int KW, int ph,
                             int pw, int OH, int OW) noexcept nogil
    void pcn_col2im_f(const float* cols, float* dx, int C, int H, int W, int KH,
                      int KW, int sh, int sw, int ph, int pw, int OH,
                      int OW) noexcept nogil
    void pcn_col2im_d(const double* cols, double* dx, int C, int H, int W,
                      int KH, int KW, int sh, int sw, int ph, int pw, int OH,
                      int OW) noexcept nogil
    void pcn_max_pool_plane_f(const float* x, float* y, int* a, int H, int W,
                              int KH, int KW, int SH, int SW, int OH,
                              int OW) noexcept nogil
    void pcn_max_pool_plane_d(const double* x, double* y, int* a, int H,
                              int W, int KH, int KW, int SH, int SW, int OH,
                              int OW) noexcept nogil
    void pcn_unpool_act_f(float* dz, const float* g, const float* y,
                          const int* a, ptrdiff_t n, int act) noexcept nogil
    void pcn_unpool_act_d(double* dz, const double* g, const double* y,
                          const int* a, ptrdiff_t n, int act) noexcept nogil
    void pcn_transpose_f(float* dst, const float* src, ptrdiff_t rows,
                         ptrdiff_t cols) noexcept nogil
    void pcn_transpose_d(double* dst, const double* src, ptrdiff_t rows,
                         ptrdiff_t cols) noexcept nogil
    void pcn_sum_chunks_f(float* dst, const float* src, ptrdiff_t n_chunks,
                          ptrdiff_t ld, ptrdiff_t n) noexcept nogil
    void pcn_sum_chunks_d(double* dst, const double* src, ptrdiff_t n_chunks,
                          ptrdiff_t ld, ptrdiff_t n) noexcept nogil


cdef inline void _bias_act(floating* y, floating b, Py_ssize_t n,
                           int act) noexcept nogil:
    if floating is float:
        pcn_bias_act_f(y, b, n, act)
    else:
        pcn_bias_act_d(y, b, n, act)


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


cdef inline void _sum_chunks(floating* dst, const floating* src,
                             Py_ssize_t n_chunks, Py_ssize_t ld,
                             Py_ssize_t n) noexcept nogil:
    if floating is float:
        pcn_sum_chunks_f(dst, src, n_chunks, ld, n)
    else:
        pcn_sum_chunks_d(dst, src, n_chunks, ld, n)


cdef inline void _max_pool_plane(const floating* x, floating* y, int* a, int H,
                                 int W, int KH, int KW, int SH, int SW, int OH,
                                 int OW) noexcept nogil:
    if floating is float:
        pcn_max_pool_plane_f(x, y, a, H, W, KH, KW, SH, SW, OH, OW)
    else:
        pcn_max_pool_plane_d(x, y, a, H, W, KH, KW, SH, SW, OH, OW)


cdef inline void _unpool_act(floating* dz, const floating* g, const floating* y,
                             const int* a, Py_ssize_t n, int act) noexcept nogil:
    if floating is float:
        pcn_unpool_act_f(dz, g, y, a, n, act)
    else:
        pcn_unpool_act_d(dz, g, y, a, n, act)


cdef inline void _plane_stats(const floating* y, Py_ssize_t n,
                              double* stats) noexcept nogil:
    """stats[0] = the sum of a plane's n values, stats[1] = the sum of their
    squared deviations from the plane's own mean: what batch norm combines
    over the planes of a channel (Chan et al.'s pairwise update), taken by
    a convolution while its output plane is still in cache."""
    cdef double s = _sum(y, n)
    stats[0] = s
    stats[1] = _sqdev(y, n, s / n) if n else 0


cdef inline tuple _scratch_rows(int n_threads, Py_ssize_t n_items,
                                Py_ssize_t size, allocate):
    """Per-thread scratch for a kernel's parallel loop: ``allocate(shape)``
    of (threads used, size) — called with the GIL held, before the loop, so
    that a failed allocation is a MemoryError — and the number of threads to
    start, never more than work items (``_n_threads``). Every convolution
    kernel takes its scratch here."""
    cdef int n_used = _n_threads(n_threads, n_items)
    return allocate((n_used, max(size, 1))), n_used


cdef inline void _conv_tail(floating* y, Py_ssize_t F, Py_ssize_t P,
                            const floating* bias, int act, double* stats,
                            floating* pooled, int* argmax, int OH, int OW,
                            int pool_h, int pool_w, int POH,
                            int POW) noexcept nogil:
    """What every convolution kernel does to one sample's output y (F planes
    of P = OH * OW values) once its product is taken, while y is in cache:
    add the bias (NULL: none) and apply the activation; with ``stats`` (the
    sample's (F, 2) row, or NULL) take each plane's sum and squared
    deviations for the batch norm that follows; with ``pooled`` (the
    sample's (F, POH, POW) pooled output, or NULL) max pool each plane into
    it, the window's index into ``argmax``. One piece for every
    implementation, so that they fuse the same things in the same order."""
    cdef Py_ssize_t f
    if bias != NULL or act != PCN_IDENTITY:
        for f in range(F):
            _bias_act(y + f * P, bias[f] if bias != NULL else 0, P, act)
    if stats != NULL:
        for f in range(F):
            _plane_stats(y + f * P, P, stats + 2 * f)
    if pooled != NULL:
        for f in range(F):
            _max_pool_plane(y + f * P, pooled + f * POH * POW,
                            argmax + f * POH * POW, OH, OW, pool_h, pool_w,
                            pool_h, pool_w, POH, POW)


cdef inline void _transpose(floating* dst, const floating* src, Py_ssize_t rows,
                            Py_ssize_t cols) noexcept nogil:
    if floating is float:
        pcn_transpose_f(dst, src, rows, cols)
    else:
        pcn_transpose_d(dst, src, rows, cols)


cdef inline int _n_threads(int n_threads, Py_ssize_t n_items) noexcept nogil:
    """Threads to start for n_items work items: no more than items, at least
    one (shared by every kernel's parallel loops)."""
    return <int> max(1, min(<Py_ssize_t> n_threads, n_items))


# At most this many chunks (of samples, or of groups of them) share a weight
# gradient's reduction, in every convolution kernel: enough for both cores to
# stay busy on a batch of 10 (and for dynamic scheduling to balance a loaded
# machine), few enough that adding the chunk buffers costs well under 1% of
# the products.
cdef enum:
    MAX_GRAD_CHUNKS = 16


# Partial sums are added up in parallel, each thread taking slices of
# REDUCE_BLOCK values (a multiple of any vector width, small enough for
# Nielsen's 20,000 weights to give both threads work).
cdef enum:
    REDUCE_BLOCK = 1024


cdef inline void _reduce_chunks(floating* dst, const floating* chunks,
                                Py_ssize_t n_chunks, Py_ssize_t n,
                                int n_threads) noexcept nogil:
    """dst (n,) = the sum of the n_chunks rows of chunks (n_chunks, n).

    Each value's sum is taken over the chunks in chunk order whatever the
    number of threads: threads split the values, never one value's sum, so
    with a chunking that depends only on the work (never on the thread
    count) the result is bit-identical for any ``n_threads``. Parallel,
    Nielsen's second layer's backward pass at batch 10 took about 5% less
    time than with a serial reduction."""
    cdef Py_ssize_t blk, k, n_blocks = (n + REDUCE_BLOCK - 1) // REDUCE_BLOCK
    for blk in prange(n_blocks, schedule='static',
                      num_threads=_n_threads(n_threads, n_blocks)):
        k = blk * REDUCE_BLOCK
        _sum_chunks(dst + k, chunks + k, n_chunks, n,
                    min(<Py_ssize_t> REDUCE_BLOCK, n - k))
