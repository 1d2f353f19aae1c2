# cython: language_level=3
"""Matrix products of the fully connected layers, spread over threads.

The estimator holds BLAS to one thread while it trains (the convolution
kernels call BLAS from their own threads), so a dense layer's product ran on
one core: 12% of a Fashion-MNIST step with a 3136 x 256 layer. Here the
product ``out = op(a) @ op(b)`` is cut into fixed tiles of the output, TILE_M
rows by TILE_N columns, each computed by one single-threaded BLAS call over
the whole inner dimension, and the tiles are shared among the OpenMP threads.
The tiling depends only on the shapes, never on the thread count, and no sum
is ever split between tiles: every output value is computed by the same call
whatever ``n_threads`` is, so results are bit-identical for any thread count.

``a`` and ``b`` may be row-major arrays or transposes of row-major arrays
(``x.T``, ``w.T``): the transpose is passed to BLAS as a flag, never copied.

Nothing here validates: ``pyconvnet.ops`` checks shapes and layouts first.
"""
from cython cimport floating
from cython.parallel cimport prange

from pyconvnet._blas cimport gemm

# Output tiles: TILE_N columns keep BLAS's inner kernel on full-width panels;
# TILE_M rows make a training batch (up to 256 samples) one row of tiles, so
# its tiles split the columns and each reads the whole batch once.
cdef enum:
    TILE_M = 256
    TILE_N = 64


cdef inline bint _layout(Py_ssize_t s0, Py_ssize_t s1, Py_ssize_t itemsize,
                         int* ld) noexcept:
    """Whether a matrix with strides (s0, s1) is the transpose of a
    row-major one, and its leading dimension."""
    if s1 == itemsize:
        ld[0] = <int> (s0 // itemsize)
        return False
    ld[0] = <int> (s1 // itemsize)
    return True


def is_blas_layout(array):
    """Whether a 2-D array can be handed to :func:`matmul` as it is: one of
    its strides is the item size and the other a positive multiple of it
    that fits an int."""
    s0, s1 = array.strides
    item = array.itemsize
    if s1 == item:
        other = s0
    elif s0 == item:
        other = s1
    else:
        return False
    return other > 0 and other % item == 0 and other // item < 2**31


def matmul(const floating[:, :] a, const floating[:, :] b,
           floating[:, ::1] out, int n_threads):
    """out (M, N) = a (M, K) @ b (K, N), tile by tile (see the module
    docstring). Shapes and layouts are trusted: see ``is_blas_layout``."""
    cdef:
        Py_ssize_t M = out.shape[0], N = out.shape[1], K = a.shape[1]
        Py_ssize_t item = sizeof(floating)
        Py_ssize_t tiles_m = (M + TILE_M - 1) // TILE_M
        Py_ssize_t tiles_n = (N + TILE_N - 1) // TILE_N
        Py_ssize_t t, i, j
        int lda, ldb
        bint ta = _layout(a.strides[0], a.strides[1], item, &lda)
        bint tb = _layout(b.strides[0], b.strides[1], item, &ldb)
        int n_used = max(1, min(n_threads, tiles_m * tiles_n))
    if M == 0 or N == 0:
        return
    if K == 0:
        out[...] = 0
        return
    for t in prange(tiles_m * tiles_n, nogil=True, num_threads=n_used,
                    schedule='dynamic'):
        i = (t // tiles_n) * TILE_M
        j = (t % tiles_n) * TILE_N
        # Row i of op(a) and column j of op(b): where they start in memory
        # depends on whether the matrix is stored transposed.
        gemm(ta, tb, <int> min(<Py_ssize_t> TILE_M, M - i),
             <int> min(<Py_ssize_t> TILE_N, N - j), <int> K, <floating> 1,
             &a[i, 0], lda, &b[0, j], ldb, <floating> 0, &out[i, j], <int> N)
