/* Elementwise C loops shared by the compiled kernels (_conv, _batchnorm).

   Plain loops over restrict pointers that the compiler vectorises (-O3);
   written as Cython loops inside an OpenMP region they compiled to scalar
   code with a branch per element. Sums are taken in double, in eight
   independent partial sums added pairwise at the end: a fixed order, so a
   result never depends on the thread that computes it.

   Activation codes: 0 identity, 1 ReLU, 2 sigmoid, 3 tanh. */
#ifndef PYCONVNET_KERNELS_H
#define PYCONVNET_KERNELS_H
#include <math.h>
#include <stddef.h>
#if defined(_MSC_VER)
#define PCN_RESTRICT __restrict
#define PCN_INLINE __inline
#else
#define PCN_RESTRICT __restrict__
#define PCN_INLINE inline
#endif

/* Sum of n values in double, in a fixed order: eight independent partial
   sums (one vector register of doubles) added pairwise at the end. */
#define PCN_SUM8(NAME, T)                                                 \
static PCN_INLINE double NAME(const T* PCN_RESTRICT a, ptrdiff_t n) {              \
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};                               \
    ptrdiff_t k = 0; int j;                                               \
    for (; k + 8 <= n; k += 8)                                            \
        for (j = 0; j < 8; j++) s[j] += (double) a[k + j];               \
    for (j = 0; k < n; k++, j++) s[j] += (double) a[k];                   \
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])); \
}
PCN_SUM8(pcn_sum_f, float)
PCN_SUM8(pcn_sum_d, double)

/* dz = dy * act'(z), written in terms of the activated output y. */
#define PCN_ACT_GRAD(NAME, T)                                             \
static PCN_INLINE void NAME(const T* PCN_RESTRICT dy, const T* PCN_RESTRICT y,     \
                 T* PCN_RESTRICT dz, ptrdiff_t n, int act) {             \
    ptrdiff_t k;                                                          \
    if (act == 1) {                                                       \
        /* Both loads unconditional, so the select vectorises. */        \
        for (k = 0; k < n; k++) { T d = dy[k]; dz[k] = y[k] > 0 ? d : 0; } \
    } else if (act == 2) {                                                \
        for (k = 0; k < n; k++) dz[k] = dy[k] * y[k] * (1 - y[k]);       \
    } else if (act == 3) {                                                \
        for (k = 0; k < n; k++) dz[k] = dy[k] * (1 - y[k] * y[k]);       \
    } else {                                                              \
        for (k = 0; k < n; k++) dz[k] = dy[k];                            \
    }                                                                     \
}
PCN_ACT_GRAD(pcn_act_grad_f, float)
PCN_ACT_GRAD(pcn_act_grad_d, double)

/* y (n,) = act(x * s + b); y may be x. One loop per activation so that each
   is branch-free. ReLU written as a select keeps NaN (as PyTorch does). */
#define PCN_SCALE_BIAS_ACT(NAME, T, EXP, TANH)                              \
static PCN_INLINE void NAME(T* y, const T* x, T s, T b, ptrdiff_t n, int act) {       \
    ptrdiff_t k;                                                            \
    if (act == 1) {                                                         \
        for (k = 0; k < n; k++) { T v = x[k] * s + b; y[k] = v < 0 ? 0 : v; } \
    } else if (act == 2) {                                                  \
        for (k = 0; k < n; k++) y[k] = 1 / (1 + EXP(-(x[k] * s + b)));     \
    } else if (act == 3) {                                                  \
        for (k = 0; k < n; k++) y[k] = TANH(x[k] * s + b);                  \
    } else {                                                                \
        for (k = 0; k < n; k++) y[k] = x[k] * s + b;                        \
    }                                                                       \
}
PCN_SCALE_BIAS_ACT(pcn_scale_bias_act_f, float, expf, tanhf)
PCN_SCALE_BIAS_ACT(pcn_scale_bias_act_d, double, exp, tanh)

/* y = act(y + b), in place (x * 1 is exact, so this is the same loop). */
static PCN_INLINE void pcn_bias_act_f(float* y, float b, ptrdiff_t n, int act) {
    pcn_scale_bias_act_f(y, y, 1.0f, b, n, act);
}
static PCN_INLINE void pcn_bias_act_d(double* y, double b, ptrdiff_t n, int act) {
    pcn_scale_bias_act_d(y, y, 1.0, b, n, act);
}

/* sum_k (a[k] - m)^2 and sum_k d[k] * (a[k] - m), in double, fixed order. */
#define PCN_DEV_SUMS(SQ, DOT, T)                                            \
static PCN_INLINE double SQ(const T* PCN_RESTRICT a, ptrdiff_t n, double m) {        \
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                 \
    ptrdiff_t k = 0; int j;                                                 \
    for (; k + 8 <= n; k += 8)                                              \
        for (j = 0; j < 8; j++) {                                           \
            double v = (double) a[k + j] - m; s[j] += v * v; }              \
    for (j = 0; k < n; k++, j++) { double v = (double) a[k] - m; s[j] += v * v; } \
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])); \
}                                                                           \
static PCN_INLINE double DOT(const T* PCN_RESTRICT d, const T* PCN_RESTRICT a,       \
                  ptrdiff_t n, double m) {                                  \
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                 \
    ptrdiff_t k = 0; int j;                                                 \
    for (; k + 8 <= n; k += 8)                                              \
        for (j = 0; j < 8; j++)                                             \
            s[j] += (double) d[k + j] * ((double) a[k + j] - m);            \
    for (j = 0; k < n; k++, j++) s[j] += (double) d[k] * ((double) a[k] - m); \
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])); \
}
PCN_DEV_SUMS(pcn_sqdev_f, pcn_dotdev_f, float)
PCN_DEV_SUMS(pcn_sqdev_d, pcn_dotdev_d, double)

/* Batch norm's input gradient, in place over dz (the gradient at the
   normalised-and-scaled output, activation already applied):
   dx = g * dz + c2 * (x - m) + c3. */
#define PCN_BN_DX(NAME, T)                                                  \
static PCN_INLINE void NAME(T* PCN_RESTRICT dz, const T* PCN_RESTRICT x, ptrdiff_t n, \
                 T g, T c2, T m, T c3) {                                    \
    ptrdiff_t k;                                                            \
    for (k = 0; k < n; k++) dz[k] = g * dz[k] + c2 * (x[k] - m) + c3;       \
}
PCN_BN_DX(pcn_bn_dx_f, float)
PCN_BN_DX(pcn_bn_dx_d, double)

/* dst (n,) = sum over chunks c of src[c * ld : c * ld + n], added in chunk
   order (a fixed order, whichever thread computes which part of dst). */
#define PCN_SUM_CHUNKS(NAME, T)                                              \
static PCN_INLINE void NAME(T* PCN_RESTRICT dst, const T* PCN_RESTRICT src,  \
                            ptrdiff_t n_chunks, ptrdiff_t ld, ptrdiff_t n) { \
    ptrdiff_t c, k;                                                          \
    for (k = 0; k < n; k++) dst[k] = src[k];                                 \
    for (c = 1; c < n_chunks; c++)                                           \
        for (k = 0; k < n; k++) dst[k] += src[c * ld + k];                   \
}
PCN_SUM_CHUNKS(pcn_sum_chunks_f, float)
PCN_SUM_CHUNKS(pcn_sum_chunks_d, double)

#endif
