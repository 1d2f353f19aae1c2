# The matrix products of the convolutions: sgemm.h's AVX-512 kernels for
# float32 where the including module is built for AVX-512 (PCN_OWN_SGEMM is
# a compile-time constant of each build), BLAS otherwise.
from cython cimport floating

from pyconvnet._kernels.blas cimport gemm


cdef extern from "sgemm.h":
    enum:
        PCN_OWN_SGEMM
    void pcn_sgemm(int m, int n, int k, const float* a, ptrdiff_t rsa,
                   ptrdiff_t csa, const float* b, ptrdiff_t ldb, float* c,
                   ptrdiff_t ldc, int accumulate) noexcept nogil
    void pcn_sgemm_nt(int m, int n, int k, const float* a, ptrdiff_t lda,
                      const float* b, ptrdiff_t ldb, float* c, ptrdiff_t ldc,
                      int accumulate) noexcept nogil


cdef inline bint _own(floating x) noexcept nogil:
    """Whether the products run on sgemm.h's kernels (float32 in a build
    for AVX-512) rather than BLAS."""
    return floating is float and PCN_OWN_SGEMM


cdef inline void _product(bint trans_a, Py_ssize_t m, Py_ssize_t n,
                          Py_ssize_t k, const floating* a, Py_ssize_t lda,
                          const floating* b, Py_ssize_t ldb, bint accumulate,
                          floating* c, Py_ssize_t ldc) noexcept nogil:
    """C (m, n) = op(A) (m, k) @ B (k, n), plus C when ``accumulate``."""
    if _own(<floating> 0):
        pcn_sgemm(m, n, k, <const float*> a, 1 if trans_a else lda,
                  lda if trans_a else 1, <const float*> b, ldb, <float*> c,
                  ldc, accumulate)
    else:
        gemm(trans_a, False, m, n, k, <floating> 1, a, lda, b, ldb,
             <floating> (1 if accumulate else 0), c, ldc)


cdef inline void _product_nt(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                             const floating* a, Py_ssize_t lda,
                             const floating* b, Py_ssize_t ldb,
                             bint accumulate, floating* c,
                             Py_ssize_t ldc) noexcept nogil:
    """C (m, n) = A (m, k) @ B (n, k)^T, plus C when ``accumulate``: rows
    of A and B are dotted (sgemm.h's kernel for float32 in an AVX-512 build,
    BLAS otherwise)."""
    if _own(<floating> 0):
        pcn_sgemm_nt(m, n, k, <const float*> a, lda, <const float*> b, ldb,
                     <float*> c, ldc, accumulate)
    else:
        gemm(False, True, m, n, k, <floating> 1, a, lda, b, ldb,
             <floating> (1 if accumulate else 0), c, ldc)
