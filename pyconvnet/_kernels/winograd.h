/* Winograd minimal filtering for 3x3 convolutions at stride 1:
   F(2x2, 3x3) and F(4x4, 3x3) (Lavin & Gray, "Fast Algorithms for
   Convolutional Neural Networks", 2016).

   The output is cut into m x m tiles (m = 2 or 4); each tile needs the
   a x a patch of input under it (a = m + 2). With the transforms

       U = G g G^T        (a x a, per filter f and channel c)
       V = B^T d B        (a x a, per channel c and tile t)
       Y = A^T M A        (m x m, per filter f and tile t)

   the tile's output is Y with M[xi] = sum_c U[xi, f, c] V[xi, c, t] for
   each of the a*a elements xi: a*a matrix products (F x C) @ (C x tiles)
   replace the convolution's 9 multiplies per output and input channel by
   a*a/m^2 (4 for m = 2, 2.25 for m = 4).

   The backward pass is this computation's exact adjoint:

       dM = A dY A^T                          (the output gradient's tiles)
       dU[xi] = sum_t dM[xi, f, t] V[xi, c, t]    (products over tiles)
       dg = G^T dU G                          (the weight gradient)
       dV[xi] = sum_f U[xi, f, c] dM[xi, f, t]    (products over filters)
       dd = B dV B^T, added into the input gradient (tiles overlap by 2)

   so the weight gradient costs the forward pass's multiplies and the
   transformed output gradient serves both gradients.

   Layout: see below (lanes are channels); the tiles of a group of samples
   are consecutive (``ld`` tiles), so the products are plain row-major
   GEMMs.

   The transforms are written out (not as matrix products): a product by a
   constant matrix would multiply by every zero of it, which IEEE
   arithmetic does not let the compiler drop. */
#ifndef PYCONVNET_WINOGRAD_H
#define PYCONVNET_WINOGRAD_H
#include "common.h"

/* Channels (or filters) transformed together: a vector of floats (16
   under AVX-512, 8 under AVX2). */
#if defined(__AVX512F__)
#define PCN_WL 16
#else
#define PCN_WL 8
#endif
/* Values between the xi-blocks of a transformed array beyond the block:
   one 64-byte line of floats. */
#define PCN_WSKEW 16

/* One-dimensional transforms: I(k) reads input k, O(k) writes output k. */
/* F(2, 3): B^T (4 -> 4), G (3 -> 4), A^T (4 -> 2) and the adjoints A
   (2 -> 4), B (4 -> 4), G^T (4 -> 3). */
#define PCN_W2_BT(T, I, O) { T a0 = I(0), a1 = I(1), a2 = I(2), a3 = I(3);   \
    O(0) = a0 - a2; O(1) = a1 + a2; O(2) = a2 - a1; O(3) = a1 - a3; }
#define PCN_W2_G(T, I, O) { T g0 = I(0), g1 = I(1), g2 = I(2);               \
    T e = (T) 0.5 * (g0 + g2), o = (T) 0.5 * g1;                            \
    O(0) = g0; O(1) = e + o; O(2) = e - o; O(3) = g2; }
#define PCN_W2_AT(T, I, O) { T a0 = I(0), a1 = I(1), a2 = I(2), a3 = I(3);   \
    O(0) = a0 + a1 + a2; O(1) = a1 - a2 - a3; }
#define PCN_W2_A(T, I, O) { T y0 = I(0), y1 = I(1);                          \
    O(0) = y0; O(1) = y0 + y1; O(2) = y0 - y1; O(3) = -y1; }
#define PCN_W2_B(T, I, O) { T v0 = I(0), v1 = I(1), v2 = I(2), v3 = I(3);    \
    O(0) = v0; O(1) = v1 - v2 + v3; O(2) = v1 + v2 - v0; O(3) = -v3; }
#define PCN_W2_GT(T, I, O) { T u0 = I(0), u1 = I(1), u2 = I(2), u3 = I(3);   \
    T s = (T) 0.5 * (u1 + u2);                                              \
    O(0) = u0 + s; O(1) = (T) 0.5 * (u1 - u2); O(2) = s + u3; }

/* F(4, 3), interpolation points 0, 1, -1, 2, -2 and infinity. */
#define PCN_W4_BT(T, I, O) { T d0 = I(0), d1 = I(1), d2 = I(2), d3 = I(3),   \
    d4 = I(4), d5 = I(5);                                                   \
    T p = d4 - (T) 4 * d2, q = d3 - (T) 4 * d1;                             \
    T r = d4 - d2, s = (T) 2 * (d3 - d1);                                   \
    O(0) = (T) 4 * d0 - (T) 5 * d2 + d4; O(1) = p + q; O(2) = p - q;        \
    O(3) = r + s; O(4) = r - s; O(5) = (T) 4 * d1 - (T) 5 * d3 + d5; }
#define PCN_W4_G(T, I, O) { T g0 = I(0), g1 = I(1), g2 = I(2);               \
    T e = g0 + g2, f = (T) (1.0 / 24) * g0 + (T) (1.0 / 6) * g2;            \
    O(0) = (T) 0.25 * g0; O(1) = (T) (-1.0 / 6) * (e + g1);                 \
    O(2) = (T) (-1.0 / 6) * (e - g1); O(3) = f + (T) (1.0 / 12) * g1;       \
    O(4) = f - (T) (1.0 / 12) * g1; O(5) = g2; }
#define PCN_W4_AT(T, I, O) { T m0 = I(0), m1 = I(1), m2 = I(2), m3 = I(3),   \
    m4 = I(4), m5 = I(5);                                                   \
    T s1 = m1 + m2, d1 = m1 - m2, s2 = m3 + m4, d2 = m3 - m4;               \
    O(0) = m0 + s1 + s2; O(1) = d1 + (T) 2 * d2; O(2) = s1 + (T) 4 * s2;    \
    O(3) = d1 + (T) 8 * d2 + m5; }
#define PCN_W4_A(T, I, O) { T y0 = I(0), y1 = I(1), y2 = I(2), y3 = I(3);    \
    T e1 = y0 + y2, o1 = y1 + y3, e2 = y0 + (T) 4 * y2,                     \
      o2 = (T) 2 * y1 + (T) 8 * y3;                                         \
    O(0) = y0; O(1) = e1 + o1; O(2) = e1 - o1; O(3) = e2 + o2;              \
    O(4) = e2 - o2; O(5) = y3; }
#define PCN_W4_B(T, I, O) { T v0 = I(0), v1 = I(1), v2 = I(2), v3 = I(3),    \
    v4 = I(4), v5 = I(5);                                                   \
    O(0) = (T) 4 * v0;                                                      \
    O(1) = (T) 4 * (v2 - v1 + v5) + (T) 2 * (v4 - v3);                      \
    O(2) = (T) -5 * v0 - (T) 4 * (v1 + v2) - (v3 + v4);                     \
    O(3) = (v1 - v2) + (T) 2 * (v3 - v4) - (T) 5 * v5;                      \
    O(4) = v0 + v1 + v2 + v3 + v4; O(5) = v5; }
#define PCN_W4_GT(T, I, O) { T u0 = I(0), u1 = I(1), u2 = I(2), u3 = I(3),   \
    u4 = I(4), u5 = I(5);                                                   \
    T s = u3 + u4;                                                          \
    O(0) = (T) 0.25 * u0 - (T) (1.0 / 6) * (u1 + u2) + (T) (1.0 / 24) * s;  \
    O(1) = (T) (1.0 / 6) * (u2 - u1) + (T) (1.0 / 12) * (u3 - u4);          \
    O(2) = (T) (1.0 / 6) * (s - u1 - u2) + u5; }

/* A two-dimensional transform dst = R src R^T of PCN_WL lanes, from
   src[NI][NI][PCN_WL] through tmp[NO][NI][PCN_WL] to dst[NO][NO][PCN_WL],
   with R the one-dimensional transform TR (NI -> NO). */
#define PCN_W_SRC_COL(k) src[k][j_][l_]
#define PCN_W_TMP_COL(k) tmp[k][j_][l_]
#define PCN_W_TMP_ROW(k) tmp[i_][k][l_]
#define PCN_W_DST_ROW(k) dst[i_][k][l_]
#define PCN_W2D(T, TR, NI, NO)                                               \
    for (j_ = 0; j_ < (NI); j_++)                                           \
        for (l_ = 0; l_ < PCN_WL; l_++) TR(T, PCN_W_SRC_COL, PCN_W_TMP_COL) \
    for (i_ = 0; i_ < (NO); i_++)                                           \
        for (l_ = 0; l_ < PCN_WL; l_++) TR(T, PCN_W_TMP_ROW, PCN_W_DST_ROW)

/* Lanes are channels (or filters): PCN_WL consecutive ones, so that every
   transform loads and stores whole vectors. A sample's input (and the
   output gradient) is first copied into a zero-padded *blocked* layout
   (C/PCN_WL, rows, cols, PCN_WL), which puts a pixel's PCN_WL channels
   next to each other; transformed data is [xi][tile][channel] with the
   channels padded to a multiple of PCN_WL (Cp), and the matrix products
   read only the first C of them. Transforming with tiles as lanes instead
   gathered every input at a stride of m and ran the transforms slower than
   the products they feed. */

/* xb (ceil(C/PCN_WL), Hp, Wp, PCN_WL) = x (C, H, W) at row ph, column pw,
   zero elsewhere (channels past C included). */
#define PCN_WINO_BLOCK(NAME, T)                                              \
static PCN_INLINE void NAME(const T* PCN_RESTRICT x, T* PCN_RESTRICT xb,     \
                            int C, int H, int W, int ph, int pw, int Hp,     \
                            int Wp) {                                        \
    int cb, c, h, w, l, n;                                                  \
    const int Cb = (C + PCN_WL - 1) / PCN_WL;                               \
    const ptrdiff_t plane = (ptrdiff_t) H * W;                              \
    T* row; const T* in;                                                    \
    memset(xb, 0, sizeof(T) * (size_t) Cb * Hp * Wp * PCN_WL);               \
    for (cb = 0; cb < Cb; cb++) {                                           \
        n = C - cb * PCN_WL < PCN_WL ? C - cb * PCN_WL : PCN_WL;            \
        for (h = 0; h < H; h++) {                                           \
            row = xb + (((ptrdiff_t) cb * Hp + h + ph) * Wp + pw) * PCN_WL; \
            in = x + (ptrdiff_t) cb * PCN_WL * plane + (ptrdiff_t) h * W;   \
            if (n == PCN_WL) {                                              \
                /* a whole block: lanes innermost, a gather per pixel */    \
                for (w = 0; w < W; w++)                                     \
                    for (l = 0; l < PCN_WL; l++)                            \
                        row[(ptrdiff_t) w * PCN_WL + l] = in[l * plane + w]; \
            } else {                                                        \
                for (c = 0; c < n; c++)                                     \
                    for (w = 0; w < W; w++)                                 \
                        row[(ptrdiff_t) w * PCN_WL + c] = in[c * plane + w]; \
            }                                                               \
        }                                                                   \
    }                                                                       \
}
PCN_WINO_BLOCK(pcn_wino_block_f, float)
PCN_WINO_BLOCK(pcn_wino_block_d, double)

/* dx (C, H, W) = the blocked dxb (ceil(C/PCN_WL), Hp, Wp, PCN_WL) from row
   ph, column pw. */
#define PCN_WINO_UNBLOCK(NAME, T)                                            \
static PCN_INLINE void NAME(const T* PCN_RESTRICT dxb, T* PCN_RESTRICT dx,   \
                            int C, int H, int W, int ph, int pw, int Hp,     \
                            int Wp) {                                        \
    int cb, c, h, w, l, n;                                                  \
    const int Cb = (C + PCN_WL - 1) / PCN_WL;                               \
    const ptrdiff_t plane = (ptrdiff_t) H * W;                              \
    const T* row; T* out;                                                   \
    for (cb = 0; cb < Cb; cb++) {                                           \
        n = C - cb * PCN_WL < PCN_WL ? C - cb * PCN_WL : PCN_WL;            \
        for (h = 0; h < H; h++) {                                           \
            row = dxb + (((ptrdiff_t) cb * Hp + h + ph) * Wp + pw) * PCN_WL; \
            out = dx + (ptrdiff_t) cb * PCN_WL * plane + (ptrdiff_t) h * W; \
            if (n == PCN_WL) {                                              \
                for (w = 0; w < W; w++)                                     \
                    for (l = 0; l < PCN_WL; l++)                            \
                        out[l * plane + w] = row[(ptrdiff_t) w * PCN_WL + l]; \
            } else {                                                        \
                for (c = 0; c < n; c++)                                     \
                    for (w = 0; w < W; w++)                                 \
                        out[c * plane + w] = row[(ptrdiff_t) w * PCN_WL + c]; \
            }                                                               \
        }                                                                   \
    }                                                                       \
}
PCN_WINO_UNBLOCK(pcn_wino_unblock_f, float)
PCN_WINO_UNBLOCK(pcn_wino_unblock_d, double)

/* The functions of one tile size M (a = M + 2) and one float type. A
   sample has TH x TW tiles, numbered row by row; its tiles are t0, t0 + 1,
   ... of its group. Transformed arrays are [xi][tile][channel or filter],
   one (tiles, Cp) or (tiles, Fp) matrix per xi.

   Transformed arrays' xi-blocks are ``xi_stride`` values apart: a few
   values more than a block, so that the a*a values a tile reads or writes
   do not all fall in one set of the L1 cache (a block of 256 tiles by 32
   channels is exactly 32 KiB).

   _weights:  U (a*a, C, F) = G w[f][c] G^T for every (f, c).
   _grad_weights: dw (F, C, 3, 3) = G^T dU[.][c][f] G.
   _input:    V[xi][t0 + t][c] = (B^T d B)[xi] for each tile's patch d of
              the blocked, padded sample xb (Cb, Hp, Wp, PCN_WL); V's rows
              are ``ldv`` values apart (a kernel larger than 3x3 is cut
              into 3x3 pieces, each with its own columns of V and its own
              origin in xb: the caller offsets both pointers).
   _output:   y (F, OH, OW) of one sample = A^T M A of its tiles, cut at
              the output's edge.
   _grad_output: dM[xi][t0 + t][f] = (A dY A^T)[xi] of one sample's output
              gradient dz (F, OH, OW), through its blocked, zero-padded copy
              zb (Fb, TH*M, TW*M, PCN_WL).
   _grad_input: adds to dxb (Cb, Hp, Wp, PCN_WL) the sum over tiles of
              B dV B^T, tile after tile in a fixed order (tiles overlap by
              2); dV's rows are ``ldv`` values apart. */
/* The two halves of a tile's transform, shared by the functions below:
   from a blocked plane (PCN_WL lanes per pixel, rows ``LDI`` pixels apart)
   into the transformed domain (one value per xi, ``XS`` apart), and back
   out of it into ``src``. */
#define PCN_W_INTO_DOMAIN(T, TR, NI, NO, BASE, LDI, OUT, XS)                 \
    for (i_ = 0; i_ < (NI); i_++) for (j_ = 0; j_ < (NI); j_++)             \
        for (l_ = 0; l_ < PCN_WL; l_++)                                     \
            src[i_][j_][l_] = (BASE)[(i_ * (LDI) + j_) * PCN_WL + l_];      \
    PCN_W2D(T, TR, NI, NO)                                                   \
    for (i_ = 0; i_ < (NO); i_++) for (j_ = 0; j_ < (NO); j_++)             \
        for (l_ = 0; l_ < PCN_WL; l_++)                                     \
            (OUT)[(i_ * (NO) + j_) * (XS) + l_] = dst[i_][j_][l_];
#define PCN_W_FROM_DOMAIN(IN, XS)                                            \
    for (i_ = 0; i_ < A; i_++) for (j_ = 0; j_ < A; j_++)                   \
        for (l_ = 0; l_ < PCN_WL; l_++)                                     \
            src[i_][j_][l_] = (IN)[(i_ * A + j_) * (XS) + l_];

#define PCN_WINO(M, SFX, T, BT_, G_, AT_, A_, B_, GT_)                        \
static void pcn_wino##M##_weights_##SFX(const T* PCN_RESTRICT w,              \
        T* PCN_RESTRICT U, int F, int C) {                                  \
    enum { A = M + 2 };                                                      \
    T src[3][3][PCN_WL], tmp[A][3][PCN_WL], dst[A][A][PCN_WL];               \
    const ptrdiff_t FC = (ptrdiff_t) F * C;                                 \
    int c, f, n, i_, j_, l_;                                                \
    for (c = 0; c < C; c++)                                                 \
        for (f = 0; f < F; f += PCN_WL) {                                   \
            n = F - f < PCN_WL ? F - f : PCN_WL;                            \
            for (i_ = 0; i_ < 3; i_++) for (j_ = 0; j_ < 3; j_++)           \
                for (l_ = 0; l_ < PCN_WL; l_++)                             \
                    src[i_][j_][l_] = l_ < n ?                              \
                        w[((ptrdiff_t) (f + l_) * C + c) * 9 + i_ * 3 + j_] : 0; \
            PCN_W2D(T, G_, 3, A)                                             \
            for (i_ = 0; i_ < A; i_++) for (j_ = 0; j_ < A; j_++)           \
                for (l_ = 0; l_ < n; l_++)                                  \
                    U[(i_ * A + j_) * FC + (ptrdiff_t) c * F + f + l_] = dst[i_][j_][l_]; \
        }                                                                   \
}                                                                           \
static void pcn_wino##M##_grad_weights_##SFX(const T* PCN_RESTRICT dU,        \
        T* PCN_RESTRICT dw, int F, int C) {                                 \
    enum { A = M + 2 };                                                      \
    T src[A][A][PCN_WL], tmp[3][A][PCN_WL], dst[3][3][PCN_WL];               \
    const ptrdiff_t FC = (ptrdiff_t) F * C;                                 \
    int c, f, n, i_, j_, l_;                                                \
    for (c = 0; c < C; c++)                                                 \
        for (f = 0; f < F; f += PCN_WL) {                                   \
            n = F - f < PCN_WL ? F - f : PCN_WL;                            \
            for (i_ = 0; i_ < A; i_++) for (j_ = 0; j_ < A; j_++)           \
                for (l_ = 0; l_ < PCN_WL; l_++)                             \
                    src[i_][j_][l_] = l_ < n ?                              \
                        dU[(i_ * A + j_) * FC + (ptrdiff_t) c * F + f + l_] : 0; \
            PCN_W2D(T, GT_, A, 3)                                            \
            for (l_ = 0; l_ < n; l_++)                                      \
                for (i_ = 0; i_ < 3; i_++) for (j_ = 0; j_ < 3; j_++)       \
                    dw[((ptrdiff_t) (f + l_) * C + c) * 9 + i_ * 3 + j_] = dst[i_][j_][l_]; \
        }                                                                   \
}                                                                           \
static void pcn_wino##M##_input_##SFX(const T* PCN_RESTRICT xb,               \
        T* PCN_RESTRICT V, int C, int Hp, int Wp, int TH, int TW,           \
        ptrdiff_t ldv, ptrdiff_t xi_stride, ptrdiff_t t0) {                 \
    enum { A = M + 2 };                                                      \
    T src[A][A][PCN_WL], tmp[A][A][PCN_WL], dst[A][A][PCN_WL];               \
    const int Cb = (C + PCN_WL - 1) / PCN_WL;                               \
    const T* base; T* out;                                                  \
    int cb, th, tw, i_, j_, l_;                                             \
    for (th = 0; th < TH; th++)                                             \
        for (tw = 0; tw < TW; tw++)                                         \
            for (cb = 0; cb < Cb; cb++) {                                   \
                base = xb + (((ptrdiff_t) cb * Hp + th * M) * Wp + tw * M)  \
                       * PCN_WL;                                            \
                out = V + (t0 + (ptrdiff_t) th * TW + tw) * ldv + cb * PCN_WL; \
                PCN_W_INTO_DOMAIN(T, BT_, A, A, base, Wp, out, xi_stride)   \
            }                                                               \
}                                                                           \
static void pcn_wino##M##_output_##SFX(const T* PCN_RESTRICT Mb,              \
        T* PCN_RESTRICT y, int F, int OH, int OW, int TH, int TW,           \
        ptrdiff_t xi_stride, ptrdiff_t t0) {                                \
    enum { A = M + 2 };                                                      \
    T src[A][A][PCN_WL], tmp[M][A][PCN_WL], dst[M][M][PCN_WL];               \
    const int Fb = (F + PCN_WL - 1) / PCN_WL;                               \
    const ptrdiff_t Fp = (ptrdiff_t) Fb * PCN_WL;                           \
    const ptrdiff_t plane = (ptrdiff_t) OH * OW;                            \
    const T* in; T* out;                                                    \
    int fb, th, tw, n, ni, nj, i_, j_, l_;                                  \
    for (th = 0; th < TH; th++) {                                           \
        ni = OH - th * M < M ? OH - th * M : M;                             \
        for (tw = 0; tw < TW; tw++) {                                       \
            nj = OW - tw * M < M ? OW - tw * M : M;                         \
            for (fb = 0; fb < Fb; fb++) {                                   \
                in = Mb + (t0 + (ptrdiff_t) th * TW + tw) * Fp + fb * PCN_WL; \
                PCN_W_FROM_DOMAIN(in, xi_stride)                             \
                PCN_W2D(T, AT_, A, M)                                        \
                n = F - fb * PCN_WL < PCN_WL ? F - fb * PCN_WL : PCN_WL;    \
                out = y + fb * PCN_WL * plane + (ptrdiff_t) th * M * OW + tw * M; \
                if (n == PCN_WL && ni == M && nj == M) {                    \
                    for (l_ = 0; l_ < PCN_WL; l_++)                         \
                        for (i_ = 0; i_ < M; i_++) for (j_ = 0; j_ < M; j_++) \
                            out[l_ * plane + i_ * OW + j_] = dst[i_][j_][l_]; \
                } else {                                                    \
                    for (l_ = 0; l_ < n; l_++)                              \
                        for (i_ = 0; i_ < ni; i_++) for (j_ = 0; j_ < nj; j_++) \
                            out[l_ * plane + i_ * OW + j_] = dst[i_][j_][l_]; \
                }                                                           \
            }                                                               \
        }                                                                   \
    }                                                                       \
}                                                                           \
static void pcn_wino##M##_grad_output_##SFX(const T* PCN_RESTRICT dz,         \
        T* PCN_RESTRICT zb, T* PCN_RESTRICT dM, int F, int OH, int OW,      \
        int TH, int TW, ptrdiff_t xi_stride, ptrdiff_t t0) {                \
    enum { A = M + 2 };                                                      \
    T src[M][M][PCN_WL], tmp[A][M][PCN_WL], dst[A][A][PCN_WL];               \
    const int Fb = (F + PCN_WL - 1) / PCN_WL, Hz = TH * M, Wz = TW * M;     \
    const ptrdiff_t Fp = (ptrdiff_t) Fb * PCN_WL;                           \
    const T* base; T* out;                                                  \
    int fb, th, tw, i_, j_, l_;                                             \
    pcn_wino_block_##SFX(dz, zb, F, OH, OW, 0, 0, Hz, Wz);                  \
    for (th = 0; th < TH; th++)                                             \
        for (tw = 0; tw < TW; tw++)                                         \
            for (fb = 0; fb < Fb; fb++) {                                   \
                base = zb + (((ptrdiff_t) fb * Hz + th * M) * Wz + tw * M)  \
                       * PCN_WL;                                            \
                out = dM + (t0 + (ptrdiff_t) th * TW + tw) * Fp + fb * PCN_WL; \
                PCN_W_INTO_DOMAIN(T, A_, M, A, base, Wz, out, xi_stride)    \
            }                                                               \
}                                                                           \
static void pcn_wino##M##_grad_input_##SFX(const T* PCN_RESTRICT dV,          \
        T* PCN_RESTRICT dxb, int C, int Hp, int Wp, int TH, int TW,         \
        ptrdiff_t ldv, ptrdiff_t xi_stride, ptrdiff_t t0) {                 \
    enum { A = M + 2 };                                                      \
    T src[A][A][PCN_WL], tmp[A][A][PCN_WL], dst[A][A][PCN_WL];               \
    const int Cb = (C + PCN_WL - 1) / PCN_WL;                               \
    const T* in; T* base;                                                   \
    int cb, th, tw, i_, j_, l_;                                             \
    for (th = 0; th < TH; th++)                                             \
        for (tw = 0; tw < TW; tw++)                                         \
            for (cb = 0; cb < Cb; cb++) {                                   \
                in = dV + (t0 + (ptrdiff_t) th * TW + tw) * ldv + cb * PCN_WL; \
                PCN_W_FROM_DOMAIN(in, xi_stride)                             \
                PCN_W2D(T, B_, A, A)                                         \
                base = dxb + (((ptrdiff_t) cb * Hp + th * M) * Wp + tw * M) \
                       * PCN_WL;                                            \
                for (i_ = 0; i_ < A; i_++) for (j_ = 0; j_ < A; j_++)       \
                    for (l_ = 0; l_ < PCN_WL; l_++)                         \
                        base[(i_ * Wp + j_) * PCN_WL + l_] += dst[i_][j_][l_]; \
            }                                                               \
}

PCN_WINO(2, f, float, PCN_W2_BT, PCN_W2_G, PCN_W2_AT, PCN_W2_A, PCN_W2_B, PCN_W2_GT)
PCN_WINO(2, d, double, PCN_W2_BT, PCN_W2_G, PCN_W2_AT, PCN_W2_A, PCN_W2_B, PCN_W2_GT)
PCN_WINO(4, f, float, PCN_W4_BT, PCN_W4_G, PCN_W4_AT, PCN_W4_A, PCN_W4_B, PCN_W4_GT)
PCN_WINO(4, d, double, PCN_W4_BT, PCN_W4_G, PCN_W4_AT, PCN_W4_A, PCN_W4_B, PCN_W4_GT)

#endif
