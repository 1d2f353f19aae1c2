/* C loops shared by the compiled kernels (conv_im2col, pool, batchnorm):
   elementwise passes, sums, im2col/col2im, max pooling and its gradient.

   Plain loops over restrict pointers that the compiler vectorises (-O3);
   written as Cython loops inside an OpenMP region they compiled to scalar
   code with a branch per element. Python builds extensions with -fwrapv,
   under which loops with a running bound vectorise poorly: the loops here
   count their trips (benchmarks/PERFORMANCE.md has the figures). Sums are taken in a fixed
   order (see pcn_sum_f), so a result never depends on the thread that
   computes it.

   Activation codes: the enum pcn_activation below, the one list of them
   (Python reads it as pyconvnet._kernels.runtime.ACTIVATION_CODES). */
#ifndef PYCONVNET_KERNELS_H
#define PYCONVNET_KERNELS_H
#include <math.h>
#include <stddef.h>
#include <string.h>
/* The activations the kernels fuse into their passes. */
enum pcn_activation { PCN_IDENTITY = 0, PCN_RELU = 1, PCN_SIGMOID = 2, PCN_TANH = 3 };

#if defined(_MSC_VER)
#define PCN_RESTRICT __restrict
#define PCN_INLINE __inline
#else
#define PCN_RESTRICT __restrict__
#define PCN_INLINE inline
#endif

/* Sums of n terms returned in double, in a fixed order, so a result never
   depends on the thread that computes it.

   double data: eight independent partial sums (one vector register of
   doubles) added pairwise at the end.

   float data: sixteen partial sums in float over blocks of PCN_FBLOCK values,
   each block's partial sums then added pairwise in double to a double total.
   Converting every value to double halves the vector width and costs a
   conversion per value (benchmarks/PERFORMANCE.md). A float partial sum adds at most
   PCN_FBLOCK / 16 terms, so the rounding stays within a few float ulps of
   the block's magnitude. Deviations from a mean m are taken from m rounded to
   float: over a channel the deviations sum to zero, which leaves the
   variance's error second order in that rounding. */
#define PCN_FBLOCK 256
#define PCN_SUM8(NAME, ARGS, TERM)                                          \
static PCN_INLINE double NAME ARGS {                                        \
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                 \
    ptrdiff_t k = 0; int j;                                                 \
    for (; k + 8 <= n; k += 8)                                              \
        for (j = 0; j < 8; j++) s[j] += TERM(k + j);                        \
    for (j = 0; k < n; k++, j++) s[j] += TERM(k);                           \
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])); \
}
#define PCN_FSUM16(NAME, ARGS, PREP, TERM)                                  \
static PCN_INLINE double NAME ARGS {                                        \
    double total = 0, b[8];                                                 \
    float s[16];                                                            \
    ptrdiff_t k = 0, blk, len, i; int j;                                    \
    PREP                                                                    \
    for (blk = 0; blk < n; blk += PCN_FBLOCK) {                             \
        len = n - blk < PCN_FBLOCK ? n - blk : PCN_FBLOCK;                  \
        for (j = 0; j < 16; j++) s[j] = 0;                                  \
        for (i = 0; i < len / 16; i++, k += 16)                             \
            for (j = 0; j < 16; j++) s[j] += TERM(k + j);                   \
        for (j = 0; j < len % 16; j++, k++) s[j] += TERM(k);                \
        for (j = 0; j < 8; j++) b[j] = (double) s[j] + (double) s[j + 8];   \
        total += ((b[0] + b[1]) + (b[2] + b[3])) + ((b[4] + b[5]) + (b[6] + b[7])); \
    }                                                                       \
    return total;                                                           \
}

/* sum_k a[k] */
#define PCN_T_SUM_D(i) a[i]
#define PCN_T_SUM_F(i) a[i]
PCN_SUM8(pcn_sum_d, (const double* PCN_RESTRICT a, ptrdiff_t n), PCN_T_SUM_D)
PCN_FSUM16(pcn_sum_f, (const float* PCN_RESTRICT a, ptrdiff_t n), , PCN_T_SUM_F)

/* dz = dy * act'(z), written in terms of the activated output y. */
#define PCN_ACT_GRAD(NAME, T)                                             \
static PCN_INLINE void NAME(const T* PCN_RESTRICT dy, const T* PCN_RESTRICT y,     \
                 T* PCN_RESTRICT dz, ptrdiff_t n, int act) {             \
    ptrdiff_t k;                                                          \
    if (act == PCN_RELU) {                                                       \
        /* Both loads unconditional, so the select vectorises. */        \
        for (k = 0; k < n; k++) { T d = dy[k]; dz[k] = y[k] > 0 ? d : 0; } \
    } else if (act == PCN_SIGMOID) {                                                \
        for (k = 0; k < n; k++) dz[k] = dy[k] * y[k] * (1 - y[k]);       \
    } else if (act == PCN_TANH) {                                                \
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
    if (act == PCN_RELU) {                                                         \
        for (k = 0; k < n; k++) { T v = x[k] * s + b; y[k] = v < 0 ? 0 : v; } \
    } else if (act == PCN_SIGMOID) {                                                  \
        for (k = 0; k < n; k++) y[k] = 1 / (1 + EXP(-(x[k] * s + b)));     \
    } else if (act == PCN_TANH) {                                                  \
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

/* sum_k (a[k] - m)^2 and sum_k d[k] * (a[k] - m), fixed order (see above). */
#define PCN_T_SQ_D(i) ((a[i] - m) * (a[i] - m))
#define PCN_T_DOT_D(i) (d[i] * (a[i] - m))
#define PCN_T_SQ_F(i) ((a[i] - mf) * (a[i] - mf))
#define PCN_T_DOT_F(i) (d[i] * (a[i] - mf))
PCN_SUM8(pcn_sqdev_d, (const double* PCN_RESTRICT a, ptrdiff_t n, double m),
         PCN_T_SQ_D)
PCN_SUM8(pcn_dotdev_d, (const double* PCN_RESTRICT d,
                        const double* PCN_RESTRICT a, ptrdiff_t n, double m),
         PCN_T_DOT_D)
PCN_FSUM16(pcn_sqdev_f, (const float* PCN_RESTRICT a, ptrdiff_t n, double m),
           const float mf = (float) m;, PCN_T_SQ_F)
PCN_FSUM16(pcn_dotdev_f, (const float* PCN_RESTRICT d,
                          const float* PCN_RESTRICT a, ptrdiff_t n, double m),
           const float mf = (float) m;, PCN_T_DOT_F)

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

/* dst (cols, rows) = the transpose of src (rows, cols). */
#define PCN_TRANSPOSE(NAME, T)                                               \
static PCN_INLINE void NAME(T* PCN_RESTRICT dst, const T* PCN_RESTRICT src,  \
                            ptrdiff_t rows, ptrdiff_t cols) {                \
    ptrdiff_t r, c;                                                          \
    for (r = 0; r < rows; r++)                                               \
        for (c = 0; c < cols; c++) dst[c * rows + r] = src[r * cols + c];    \
}
PCN_TRANSPOSE(pcn_transpose_f, float)
PCN_TRANSPOSE(pcn_transpose_d, double)

/* The output columns ow whose input column ow*sw - pw + j lies in [0, W):
   [*lo, *hi). In 64 bits: with a stride or padding near the int limit the
   intermediate sums would overflow an int. */
static PCN_INLINE void pcn_valid_range(int j, int pw, int sw, int W, int OW,
                                       int* lo, int* hi) {
    long long first = (long long) pw - j, last = (long long) W - 1 + pw - j;
    long long l = first <= 0 ? 0 : (first + sw - 1) / sw;
    long long h = last < 0 ? 0 : (last / sw + 1 < OW ? last / sw + 1 : OW);
    if (l > OW) l = OW;
    if (h < l) h = l;
    *lo = (int) l;
    *hi = (int) h;
}

/* im2col and col2im of one sample x (C, H, W) and its unfolding cols
   (C*KH*KW, OH*OW). Row (c, i, j) of cols holds, for each output position,
   the pixel it sees at kernel offset (i, j) of channel c; padding reads as
   0 and is dropped on the way back (col2im adds into a zeroed dx).

   Rows are short (an output row of 8 to 32 values) and many, so the
   per-row work is what costs: the columns that read padding are worked out
   once per kernel column j. A short stride-1 row (under 16 values: Nielsen's
   second layer has rows of 8) moves in blocks of 8 values, fixed-size loops
   with explicit trip counts that the compiler turns into vector moves even
   under Python's -fwrapv; a longer one goes to memcpy, whose run-time
   dispatch uses the widest vectors the machine has (a block loop compiled
   for baseline x86-64 cannot). col2im adds, so
   it always uses the blocks. */
#define PCN_IM2COL(IM2COL, COL2IM, T)                                        \
static PCN_INLINE void IM2COL(const T* PCN_RESTRICT x, T* PCN_RESTRICT cols, \
                   int C, int H, int W, int KH, int KW,                      \
                   int sh, int sw, int ph, int pw, int OH, int OW) {         \
    int c, i, j, oh, ow, lo, hi, q, b, n;                                     \
    T* out = cols;                                                            \
    for (c = 0; c < C; c++)                                                   \
    for (i = 0; i < KH; i++)                                                  \
    for (j = 0; j < KW; j++) {                                                \
        pcn_valid_range(j, pw, sw, W, OW, &lo, &hi);                          \
        n = hi - lo;                                                          \
        for (oh = 0; oh < OH; oh++, out += OW) {                              \
            long long ih = (long long) oh * sh - ph + i;                      \
            const T* src;                                                     \
            T* dst = out + lo;                                                \
            if (ih < 0 || ih >= H || n == 0) {                                \
                for (ow = 0; ow < OW; ow++) out[ow] = 0;                      \
                continue;                                                     \
            }                                                                 \
            for (ow = 0; ow < lo; ow++) out[ow] = 0;                          \
            for (ow = hi; ow < OW; ow++) out[ow] = 0;                         \
            src = x + ((ptrdiff_t) c * H + ih) * W                            \
                  + ((long long) lo * sw - pw + j);                           \
            if (sw != 1) {                                                    \
                for (ow = 0; ow < n; ow++) dst[ow] = src[(ptrdiff_t) ow * sw]; \
                continue;                                                     \
            }                                                                 \
            if (n >= 16) {                                                    \
                memcpy(dst, src, (size_t) n * sizeof(T));                     \
                continue;                                                     \
            }                                                                 \
            for (q = 0; q < n / 8; q++)                                       \
                for (b = 0; b < 8; b++) dst[8 * q + b] = src[8 * q + b];      \
            for (b = 8 * (n / 8); b < n; b++) dst[b] = src[b];                \
        }                                                                     \
    }                                                                         \
}                                                                             \
static PCN_INLINE void COL2IM(const T* PCN_RESTRICT cols, T* PCN_RESTRICT dx, \
                   int C, int H, int W, int KH, int KW,                      \
                   int sh, int sw, int ph, int pw, int OH, int OW) {         \
    int c, i, j, oh, ow, lo, hi, q, b, n;                                     \
    const T* in = cols;                                                       \
    for (c = 0; c < C; c++)                                                   \
    for (i = 0; i < KH; i++)                                                  \
    for (j = 0; j < KW; j++) {                                                \
        pcn_valid_range(j, pw, sw, W, OW, &lo, &hi);                          \
        n = hi - lo;                                                          \
        for (oh = 0; oh < OH; oh++, in += OW) {                               \
            long long ih = (long long) oh * sh - ph + i;                      \
            const T* src = in + lo;                                           \
            T* dst;                                                           \
            if (ih < 0 || ih >= H || n == 0) continue;                        \
            dst = dx + ((ptrdiff_t) c * H + ih) * W                           \
                  + ((long long) lo * sw - pw + j);                           \
            if (sw != 1) {                                                    \
                for (ow = 0; ow < n; ow++) dst[(ptrdiff_t) ow * sw] += src[ow]; \
                continue;                                                     \
            }                                                                 \
            for (q = 0; q < n / 8; q++)                                       \
                for (b = 0; b < 8; b++) dst[8 * q + b] += src[8 * q + b];     \
            for (b = 8 * (n / 8); b < n; b++) dst[b] += src[b];               \
        }                                                                     \
    }                                                                         \
}
PCN_IM2COL(pcn_im2col_f, pcn_col2im_f, float)
PCN_IM2COL(pcn_im2col_d, pcn_col2im_d, double)

/* im2col at stride 1 through a zero-padded copy of the sample.

   pcn_pad copies x (C, H, W) into xp (C, H + 2ph, W + 2pw) with zeros
   around it; xp must have 8 values of slack after its end. Then every row
   segment of cols is a plain copy of OW values from xp, without bounds, and
   is moved in whole blocks of 8 values: a block that runs past the segment
   writes into the segments after it, which are written later (in address
   order), and reads at most 7 values past the padded row, which the next
   row or the slack holds. A segment whose blocks would run past the end of
   cols is copied exactly, so a sample's cols never spill into the next
   sample's. Short rows (8 to 32 values) are the common case in these
   networks, and this drops their per-row bounds logic, scalar remainders and
   memcpy calls (benchmarks/PERFORMANCE.md has the figures). */
#define PCN_IM2COL_PADDED(PAD, IM2COL, T)                                    \
static PCN_INLINE void PAD(const T* PCN_RESTRICT x, T* PCN_RESTRICT xp,      \
                           int C, int H, int W, int ph, int pw) {            \
    ptrdiff_t c, r, k;                                                        \
    ptrdiff_t Hp = H + 2 * (ptrdiff_t) ph, Wq = W + 2 * (ptrdiff_t) pw;       \
    for (c = 0; c < C; c++)                                                   \
    for (r = 0; r < Hp; r++) {                                                \
        T* d = xp + (c * Hp + r) * Wq;                                        \
        ptrdiff_t ih = r - ph;                                                \
        if (ih < 0 || ih >= H) {                                              \
            for (k = 0; k < Wq; k++) d[k] = 0;                                \
            continue;                                                         \
        }                                                                     \
        for (k = 0; k < pw; k++) d[k] = 0;                                    \
        memcpy(d + pw, x + (c * H + ih) * W, (size_t) W * sizeof(T));        \
        for (k = pw + W; k < Wq; k++) d[k] = 0;                               \
    }                                                                         \
    for (k = 0; k < 8; k++) xp[C * Hp * Wq + k] = 0;                          \
}                                                                             \
static PCN_INLINE void IM2COL(const T* PCN_RESTRICT xp, T* PCN_RESTRICT cols, \
                              int C, int H, int W, int KH, int KW, int ph,   \
                              int pw, int OH, int OW) {                      \
    ptrdiff_t Hp = H + 2 * (ptrdiff_t) ph, Wq = W + 2 * (ptrdiff_t) pw;       \
    ptrdiff_t nb = (OW + 7) / 8;                                              \
    ptrdiff_t c, i, j, oh, q, b;                                              \
    T* out = cols;                                                            \
    const T* end = cols + (ptrdiff_t) C * KH * KW * OH * OW;                  \
    for (c = 0; c < C; c++)                                                   \
    for (i = 0; i < KH; i++)                                                  \
    for (j = 0; j < KW; j++) {                                                \
        const T* src = xp + (c * Hp + i) * Wq + j;                            \
        for (oh = 0; oh < OH; oh++, out += OW, src += Wq) {                   \
            if (end - out >= 8 * nb) {                                        \
                for (q = 0; q < nb; q++)                                      \
                    for (b = 0; b < 8; b++) out[8 * q + b] = src[8 * q + b];  \
            } else {                                                          \
                for (b = 0; b < OW; b++) out[b] = src[b];                     \
            }                                                                 \
        }                                                                     \
    }                                                                         \
}
PCN_IM2COL_PADDED(pcn_pad_f, pcn_im2col_padded_f, float)
PCN_IM2COL_PADDED(pcn_pad_d, pcn_im2col_padded_d, double)

/* col2im at stride 1 through a padded accumulator: cols is added into dxp
   (C, H + 2ph, W + 2pw), zeroed here, without bounds (padding positions
   collect what pcn_col2im drops), then the interior is copied to dx (C, H,
   W). Same additions in the same order as pcn_col2im, so the same result.
   Adds cannot overshoot a row as pcn_im2col_padded's copies do (they would
   add the next row's values), so a row's remainder after its blocks of 8 is
   scalar. Faster than pcn_col2im on short rows (benchmarks/PERFORMANCE.md).
   */
#define PCN_COL2IM_PADDED(NAME, T)                                           \
static PCN_INLINE void NAME(const T* PCN_RESTRICT cols, T* PCN_RESTRICT dxp, \
                            T* PCN_RESTRICT dx, int C, int H, int W, int KH, \
                            int KW, int ph, int pw, int OH, int OW) {        \
    ptrdiff_t Hp = H + 2 * (ptrdiff_t) ph, Wq = W + 2 * (ptrdiff_t) pw;       \
    ptrdiff_t nb = OW / 8, c, i, j, oh, q, b;                                 \
    const T* in = cols;                                                       \
    memset(dxp, 0, (size_t) (C * Hp * Wq) * sizeof(T));                       \
    for (c = 0; c < C; c++)                                                   \
    for (i = 0; i < KH; i++)                                                  \
    for (j = 0; j < KW; j++) {                                                \
        T* dst = dxp + (c * Hp + i) * Wq + j;                                 \
        for (oh = 0; oh < OH; oh++, in += OW, dst += Wq) {                    \
            for (q = 0; q < nb; q++)                                          \
                for (b = 0; b < 8; b++) dst[8 * q + b] += in[8 * q + b];      \
            for (b = 8 * nb; b < OW; b++) dst[b] += in[b];                    \
        }                                                                     \
    }                                                                         \
    for (c = 0; c < C; c++)                                                   \
        for (i = 0; i < H; i++)                                               \
            memcpy(dx + (c * H + i) * W, dxp + (c * Hp + i + ph) * Wq + pw,   \
                   (size_t) W * sizeof(T));                                   \
}
PCN_COL2IM_PADDED(pcn_col2im_padded_f, float)
PCN_COL2IM_PADDED(pcn_col2im_padded_d, double)

/* 2x2 max pooling at stride 2 of one NaN-free plane (H, W) into y and the
   index of each window's first maximum (row-major order) into a. Branch-free:
   the indices come from arithmetic on the comparisons (a branch here is
   mispredicted half the time), and the loops have explicit trip counts, so
   the compiler vectorises them even under Python's -fwrapv. */
#define PCN_MAXPOOL2(NAME, T)                                                \
static PCN_INLINE void NAME(const T* PCN_RESTRICT x, T* PCN_RESTRICT y,     \
                            int* PCN_RESTRICT a, int W, int OH, int OW) {    \
    int oh, ow;                                                               \
    for (oh = 0; oh < OH; oh++) {                                             \
        const T* r0 = x + (ptrdiff_t) 2 * oh * W;                             \
        const T* r1 = r0 + W;                                                 \
        T* yr = y + (ptrdiff_t) oh * OW;                                      \
        int* ar = a + (ptrdiff_t) oh * OW;                                    \
        int base = 2 * oh * W;                                                \
        for (ow = 0; ow < OW; ow++) {                                         \
            T p = r0[2 * ow], q = r0[2 * ow + 1];                             \
            T s = r1[2 * ow], t = r1[2 * ow + 1];                             \
            int up = q > p, down = t > s;                                     \
            T top = up ? q : p, bottom = down ? t : s;                        \
            int lower = bottom > top;                                         \
            int itop = base + 2 * ow + up;                                    \
            int ibottom = base + W + 2 * ow + down;                           \
            yr[ow] = lower ? bottom : top;                                    \
            ar[ow] = itop + lower * (ibottom - itop);                         \
        }                                                                     \
    }                                                                         \
}
PCN_MAXPOOL2(pcn_max_pool_2x2_f, float)
PCN_MAXPOOL2(pcn_max_pool_2x2_d, double)

/* Whether n values hold a NaN: a vectorised count, no early exit. */
#define PCN_HAS_NAN(NAME, T)                                                 \
static PCN_INLINE int NAME(const T* PCN_RESTRICT p, ptrdiff_t n) {           \
    ptrdiff_t k; int count = 0;                                               \
    for (k = 0; k < n; k++) count += p[k] != p[k];                            \
    return count != 0;                                                        \
}
PCN_HAS_NAN(pcn_has_nan_f, float)
PCN_HAS_NAN(pcn_has_nan_d, double)

/* Max pooling of one plane x (H, W) into y (OH, OW), each output's window
   (KH, KW) at stride (SH, SW); a[q] receives the index in the plane of the
   window's first maximum in row-major order (strict >). NaN propagates: a
   window holding a NaN pools to its first NaN, which receives the gradient
   (as PyTorch's and NumPy's max). The common 2x2 window at stride 2 of a
   NaN-free plane takes the branch-free loop above. */
#define PCN_MAXPOOL_PLANE(NAME, T, POOL2, HASNAN)                            \
static PCN_INLINE void NAME(const T* PCN_RESTRICT x, T* PCN_RESTRICT y,     \
                            int* PCN_RESTRICT a, int H, int W, int KH,      \
                            int KW, int SH, int SW, int OH, int OW) {       \
    int oh, ow, i, j, idx, best_idx;                                          \
    T best, v;                                                                \
    if (KH == 2 && KW == 2 && SH == 2 && SW == 2                              \
            && !HASNAN(x, (ptrdiff_t) H * W)) {                               \
        POOL2(x, y, a, W, OH, OW);                                            \
        return;                                                               \
    }                                                                         \
    for (oh = 0; oh < OH; oh++)                                               \
    for (ow = 0; ow < OW; ow++) {                                             \
        best_idx = oh * SH * W + ow * SW;                                     \
        best = x[best_idx];                                                   \
        for (i = 0; i < KH; i++)                                              \
        for (j = 0; j < KW; j++) {                                            \
            idx = (oh * SH + i) * W + ow * SW + j;                            \
            v = x[idx];                                                       \
            if (v > best || (v != v && best == best)) {                       \
                best = v;                                                     \
                best_idx = idx;                                               \
            }                                                                 \
        }                                                                     \
        y[oh * OW + ow] = best;                                               \
        a[oh * OW + ow] = best_idx;                                           \
    }                                                                         \
}
PCN_MAXPOOL_PLANE(pcn_max_pool_plane_f, float, pcn_max_pool_2x2_f, pcn_has_nan_f)
PCN_MAXPOOL_PLANE(pcn_max_pool_plane_d, double, pcn_max_pool_2x2_d, pcn_has_nan_d)

/* Max pooling's backward pass onto one zeroed plane dz: each of the n pooled
   outputs sends its gradient g[q] to its window's maximum a[q], then through
   the activation that preceded the pooling, whose derivative is taken from
   the pooled (activated) value y[q]:

       dz[a[q]] = act'(dz[a[q]] + g[q])

   With act 0 (identity) this is the plain scatter-add, right for overlapping
   windows too. With an activation the windows must not overlap (each a[q]
   distinct): then every element gets exactly what pooling's scatter into a
   zeroed plane followed by pcn_act_grad gives it, bit for bit (the
   activation's derivative at a window's maximum is its derivative at the
   pooled value; elsewhere the gradient is 0 either way). */
#define PCN_UNPOOL_ACT(NAME, T)                                              \
static PCN_INLINE void NAME(T* dz, const T* PCN_RESTRICT g,                  \
                            const T* PCN_RESTRICT y,                         \
                            const int* PCN_RESTRICT a, ptrdiff_t n, int act) { \
    ptrdiff_t q;                                                              \
    if (act == PCN_RELU) {                                                           \
        for (q = 0; q < n; q++) { T d = dz[a[q]] + g[q]; dz[a[q]] = y[q] > 0 ? d : 0; } \
    } else if (act == PCN_SIGMOID) {                                                    \
        for (q = 0; q < n; q++) dz[a[q]] = (dz[a[q]] + g[q]) * y[q] * (1 - y[q]); \
    } else if (act == PCN_TANH) {                                                    \
        for (q = 0; q < n; q++) dz[a[q]] = (dz[a[q]] + g[q]) * (1 - y[q] * y[q]); \
    } else {                                                                  \
        for (q = 0; q < n; q++) dz[a[q]] += g[q];                             \
    }                                                                         \
}
PCN_UNPOOL_ACT(pcn_unpool_act_f, float)
PCN_UNPOOL_ACT(pcn_unpool_act_d, double)

#endif
