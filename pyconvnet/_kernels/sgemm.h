/* A float32 matrix product with AVX-512 register tiles, for the products of
   the Winograd convolution (conv_winograd.pxi):

       C (m x n) = A (m x k) @ B (k x n)   [+ C when ``accumulate``]

   A's element (i, p) is a[i * rsa + p * csa] (a row-major A, or a
   transposed one: the weight gradient's V^T), B and C are row-major with
   row strides ldb and ldc, and n is a multiple of 8.

   Why not BLAS: the OpenBLAS that NumPy and SciPy ship runs its AVX2
   (Haswell) kernels on AMD's Zen CPUs, AVX-512 ones included; on Zen 5,
   whose AVX-512 units are full width, that is half the machine's peak
   (benchmarks/PERFORMANCE.md), and a library cannot choose OpenBLAS's kernels
   once NumPy has loaded it. The products here are small (a few hundred rows
   by 32-128 columns), so no packing: a 6 x 64 block of C lives in 24 of the
   32 vector registers while a loop over p broadcasts A's values and loads
   B's row; the column block of B (k x 64) stays in cache across the row
   blocks.

   Each value of C is one chain of fused multiply-adds over p in order,
   whatever the block it falls in: results do not depend on the thread
   count. They differ from BLAS's in rounding (another order and fused
   multiply-adds), so the AVX-512 build of the convolution gives results a
   few float32 ulps from the other builds'.

   Built only where the compiler targets AVX-512 (PCN_OWN_SGEMM is 1);
   elsewhere the caller uses BLAS. */
#ifndef PYCONVNET_SGEMM_H
#define PYCONVNET_SGEMM_H
#include <stddef.h>

#if defined(__AVX512F__)
#define PCN_OWN_SGEMM 1
#include <immintrin.h>

/* The accumulators must live in registers: unrolled before the compiler
   decides where arrays live (without it, GCC kept them on the stack and
   stored all 24 on every step of the loop over p, at a third of the
   speed). */
#define PCN_UNROLL _Pragma("GCC unroll 8")

#define PCN_SGEMM_MICRO(NAME, MR, NV)                                         \
static inline void NAME(int k, const float* a, ptrdiff_t rsa, ptrdiff_t csa, \
                        const float* b, ptrdiff_t ldb, float* c,             \
                        ptrdiff_t ldc, __mmask16 last, int accumulate) {     \
    __m512 acc[MR][NV], bv[NV], av;                                         \
    __mmask16 mask;                                                          \
    int i, v, p;                                                            \
    PCN_UNROLL for (i = 0; i < MR; i++)                                     \
        PCN_UNROLL for (v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps(); \
    for (p = 0; p < k; p++) {                                               \
        const float* brow = b + p * ldb;                                    \
        PCN_UNROLL for (v = 0; v < NV - 1; v++)                             \
            bv[v] = _mm512_loadu_ps(brow + 16 * v);                         \
        bv[NV - 1] = _mm512_maskz_loadu_ps(last, brow + 16 * (NV - 1));     \
        PCN_UNROLL for (i = 0; i < MR; i++) {                               \
            av = _mm512_set1_ps(a[i * rsa + p * csa]);                      \
            PCN_UNROLL for (v = 0; v < NV; v++)                             \
                acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);          \
        }                                                                   \
    }                                                                       \
    PCN_UNROLL for (i = 0; i < MR; i++)                                     \
        PCN_UNROLL for (v = 0; v < NV; v++) {                               \
            float* out = c + i * ldc + 16 * v;                              \
            mask = v == NV - 1 ? last : (__mmask16) 0xFFFF;                 \
            if (accumulate)                                                 \
                acc[i][v] = _mm512_add_ps(acc[i][v],                        \
                                          _mm512_maskz_loadu_ps(mask, out)); \
            _mm512_mask_storeu_ps(out, mask, acc[i][v]);                    \
        }                                                                   \
}
PCN_SGEMM_MICRO(pcn_sgemm_6x1, 6, 1)
PCN_SGEMM_MICRO(pcn_sgemm_6x2, 6, 2)
PCN_SGEMM_MICRO(pcn_sgemm_6x3, 6, 3)
PCN_SGEMM_MICRO(pcn_sgemm_6x4, 6, 4)
PCN_SGEMM_MICRO(pcn_sgemm_1x1, 1, 1)
PCN_SGEMM_MICRO(pcn_sgemm_1x2, 1, 2)
PCN_SGEMM_MICRO(pcn_sgemm_1x3, 1, 3)
PCN_SGEMM_MICRO(pcn_sgemm_1x4, 1, 4)

/* One row block of MR rows at one column block of nv vectors. */
#define PCN_SGEMM_ROWS(NAME, MR)                                              \
static inline void NAME(int nv, int k, const float* a, ptrdiff_t rsa,        \
                        ptrdiff_t csa, const float* b, ptrdiff_t ldb,        \
                        float* c, ptrdiff_t ldc, __mmask16 last,             \
                        int accumulate) {                                    \
    switch (nv) {                                                            \
    case 1: pcn_sgemm_##MR##x1(k, a, rsa, csa, b, ldb, c, ldc, last, accumulate); break; \
    case 2: pcn_sgemm_##MR##x2(k, a, rsa, csa, b, ldb, c, ldc, last, accumulate); break; \
    case 3: pcn_sgemm_##MR##x3(k, a, rsa, csa, b, ldb, c, ldc, last, accumulate); break; \
    default: pcn_sgemm_##MR##x4(k, a, rsa, csa, b, ldb, c, ldc, last, accumulate); \
    }                                                                        \
}
PCN_SGEMM_ROWS(pcn_sgemm_rows6, 6)
PCN_SGEMM_ROWS(pcn_sgemm_rows1, 1)

static void pcn_sgemm(int m, int n, int k, const float* a, ptrdiff_t rsa,
                      ptrdiff_t csa, const float* b, ptrdiff_t ldb, float* c,
                      ptrdiff_t ldc, int accumulate) {
    int i0, j0, width, nv;
    __mmask16 last;
    for (j0 = 0; j0 < n; j0 += 64) {
        width = n - j0 < 64 ? n - j0 : 64;
        nv = (width + 15) / 16;
        last = width % 16 ? (__mmask16) ((1u << (width % 16)) - 1) : (__mmask16) 0xFFFF;
        for (i0 = 0; i0 + 6 <= m; i0 += 6)
            pcn_sgemm_rows6(nv, k, a + i0 * rsa, rsa, csa, b + j0, ldb,
                            c + i0 * ldc + j0, ldc, last, accumulate);
        for (; i0 < m; i0++)
            pcn_sgemm_rows1(nv, k, a + i0 * rsa, rsa, csa, b + j0, ldb,
                            c + i0 * ldc + j0, ldc, last, accumulate);
    }
}

/* C (m x n) = A (m x k) @ B^T [+ C], A and B row-major with k contiguous
   (B is n x k): each value of C is a dot product of two rows. The weight
   gradient of a convolution, whose two operands are both laid out along
   the positions. A 4 x 4 block of C is 16 vector accumulators over 16
   values of k at a time (the tail masked), each reduced at the end: every
   value of C is the same sum in the same order whatever the block or the
   thread. */
static inline void pcn_sdot_block(int mr, int nr, int k, const float* a,
                                  ptrdiff_t lda, const float* b,
                                  ptrdiff_t ldb, float* c, ptrdiff_t ldc,
                                  int accumulate) {
    __m512 acc[4][4], av[4], bv;
    __mmask16 mask;
    int i, j, p;
    PCN_UNROLL for (i = 0; i < 4; i++)
        PCN_UNROLL for (j = 0; j < 4; j++) acc[i][j] = _mm512_setzero_ps();
    for (p = 0; p < k; p += 16) {
        mask = k - p >= 16 ? (__mmask16) 0xFFFF
                           : (__mmask16) ((1u << (k - p)) - 1);
        PCN_UNROLL for (i = 0; i < 4; i++)
            av[i] = i < mr ? _mm512_maskz_loadu_ps(mask, a + i * lda + p)
                           : _mm512_setzero_ps();
        PCN_UNROLL for (j = 0; j < 4; j++) {
            bv = j < nr ? _mm512_maskz_loadu_ps(mask, b + j * ldb + p)
                        : _mm512_setzero_ps();
            PCN_UNROLL for (i = 0; i < 4; i++)
                acc[i][j] = _mm512_fmadd_ps(av[i], bv, acc[i][j]);
        }
    }
    for (i = 0; i < mr; i++)
        for (j = 0; j < nr; j++) {
            float v = _mm512_reduce_add_ps(acc[i][j]);
            c[i * ldc + j] = accumulate ? c[i * ldc + j] + v : v;
        }
}

static void pcn_sgemm_nt(int m, int n, int k, const float* a, ptrdiff_t lda,
                         const float* b, ptrdiff_t ldb, float* c, ptrdiff_t ldc,
                         int accumulate) {
    int i, j;
    for (i = 0; i < m; i += 4)
        for (j = 0; j < n; j += 4)
            pcn_sdot_block(m - i < 4 ? m - i : 4, n - j < 4 ? n - j : 4, k,
                           a + i * lda, lda, b + j * ldb, ldb, c + i * ldc + j,
                           ldc, accumulate);
}
#else
#define PCN_OWN_SGEMM 0
/* Never called where PCN_OWN_SGEMM is 0 (the caller uses BLAS). */
static inline void pcn_sgemm_nt(int m, int n, int k, const float* a,
                                ptrdiff_t lda, const float* b, ptrdiff_t ldb,
                                float* c, ptrdiff_t ldc, int accumulate) {
    (void) m; (void) n; (void) k; (void) a; (void) lda; (void) b; (void) ldb;
    (void) c; (void) ldc; (void) accumulate;
}
static inline void pcn_sgemm(int m, int n, int k, const float* a, ptrdiff_t rsa,
                             ptrdiff_t csa, const float* b, ptrdiff_t ldb,
                             float* c, ptrdiff_t ldc, int accumulate) {
    (void) m; (void) n; (void) k; (void) a; (void) rsa; (void) csa; (void) b;
    (void) ldb; (void) c; (void) ldc; (void) accumulate;
}
#endif
#endif
