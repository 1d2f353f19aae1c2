# Row-major GEMM over scipy's BLAS, callable without the GIL.
#
# BLAS is column-major; a row-major matrix is its column-major transpose, so
# C = op(A) op(B) in row-major is C^T = op(B)^T op(A)^T in column-major: the
# same call with A and B (and their sizes) swapped. The transpose flags pass
# through unchanged.
#
# scipy's signatures take non-const pointers; inputs are only read, so casting
# the const away is safe.
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm


cdef inline void gemm(bint trans_a, bint trans_b, int m, int n, int k,
                      floating alpha, const floating* a, int lda,
                      const floating* b, int ldb, floating beta,
                      floating* c, int ldc) noexcept nogil:
    """C (m, n) = alpha * op(A) (m, k) @ op(B) (k, n) + beta * C, row-major.

    lda, ldb and ldc are the row strides (in elements) of A, B and C as stored.
    """
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*> b, &ldb,
              <float*> a, &lda, &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*> b, &ldb,
              <double*> a, &lda, &beta, c, &ldc)
