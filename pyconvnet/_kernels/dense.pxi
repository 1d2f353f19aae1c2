# The body of dense_generic, dense_avx2 and dense_avx512: one source compiled
# once per instruction set (setup.py's ISA_FLAGS).
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

``a`` and ``b`` are C-contiguous arrays used as they are or transposed
(``trans_a``, ``trans_b``): ``x.T`` and ``w.T`` are passed to BLAS as a flag,
never copied. In float32 the AVX-512 build computes the tiles with
``sgemm.h``'s kernels (``products.pxd``) where ``b`` is not transposed (the
forward pass and the weight gradient); the input gradient's ``dy @ w.T``
stays with BLAS.

Nothing here validates: ``pyconvnet.ops`` checks shapes and layouts first.
"""
from cython cimport floating
from cython.parallel cimport prange

from pyconvnet._kernels.blas cimport gemm
from pyconvnet._kernels.products cimport _product
from pyconvnet._kernels.common cimport _n_threads

# Output tiles: TILE_N columns keep BLAS's inner kernel on full-width panels;
# TILE_M rows make a training batch (up to 256 samples) one row of tiles, so
# its tiles split the columns and each reads the whole batch once.
cdef enum:
    TILE_M = 256
    TILE_N = 64


def matmul(const floating[:, ::1] a, bint trans_a,
           const floating[:, ::1] b, bint trans_b,
           floating[:, ::1] out, int n_threads):
    """out (M, N) = op(a) (M, K) @ op(b) (K, N), tile by tile (see the module
    docstring), op(a) being a.T when ``trans_a``. Shapes are trusted: call
    through ``pyconvnet.ops``."""
    cdef:
        Py_ssize_t M = out.shape[0], N = out.shape[1]
        Py_ssize_t K = a.shape[0] if trans_a else a.shape[1]
        int lda = <int> a.shape[1], ldb = <int> b.shape[1]
        Py_ssize_t tiles_m = (M + TILE_M - 1) // TILE_M
        Py_ssize_t tiles_n = (N + TILE_N - 1) // TILE_N
        Py_ssize_t t, i, j
        int n_used = _n_threads(n_threads, tiles_m * tiles_n)
    if M == 0 or N == 0:
        return
    if K == 0:
        out[...] = 0
        return
    for t in prange(tiles_m * tiles_n, nogil=True, num_threads=n_used,
                    schedule='dynamic'):
        i = (t // tiles_n) * TILE_M
        j = (t % tiles_n) * TILE_N
        # Where row i of op(a) and column j of op(b) start in memory depends
        # on whether the stored matrix is transposed.
        if trans_b:
            gemm(trans_a, trans_b, <int> min(<Py_ssize_t> TILE_M, M - i),
                 <int> min(<Py_ssize_t> TILE_N, N - j), <int> K, <floating> 1,
                 &a[0, i] if trans_a else &a[i, 0], lda, &b[j, 0], ldb,
                 <floating> 0, &out[i, j], <int> N)
        else:
            _product(trans_a, min(<Py_ssize_t> TILE_M, M - i),
                     min(<Py_ssize_t> TILE_N, N - j), K,
                     &a[0, i] if trans_a else &a[i, 0], lda, &b[0, j], ldb,
                     False, &out[i, j], N)
