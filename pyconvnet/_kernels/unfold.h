/* The unfolding loops of common.h (im2col, col2im and the padded copy they
   go through at stride 1) as a table of function pointers.

   The convolution calls its unfolding through such a table, so that the
   loops can be compiled once per instruction set (unfold_generic,
   unfold_avx2, unfold_avx512: the same source, setup.py's flags) and the
   best one the CPU supports picked at import (pyconvnet._kernels), while the
   module that calls them stays compiled for the baseline. A wheel built for
   baseline x86-64 thus runs the wide-vector loops on CPUs that have them,
   and never an instruction a CPU lacks. Each table is filled from the
   copies of the loops in the translation unit that includes this header,
   compiled with that unit's flags. The loops only move and add values, in
   the same order whatever the instruction set: every table gives the same
   bits. */
#ifndef PYCONVNET_UNFOLD_H
#define PYCONVNET_UNFOLD_H
#include "common.h"

#define PCN_UNFOLDING_MEMBERS(T, S)                                          \
    void (*pad_##S)(const T*, T*, int, int, int, int, int);                   \
    void (*im2col_##S)(const T*, T*, int, int, int, int, int, int, int, int,  \
                       int, int, int);                                        \
    void (*im2col_padded_##S)(const T*, T*, int, int, int, int, int, int,     \
                              int, int, int);                                 \
    void (*col2im_##S)(const T*, T*, int, int, int, int, int, int, int, int,  \
                       int, int, int);                                        \
    void (*col2im_padded_##S)(const T*, T*, T*, int, int, int, int, int, int, \
                              int, int, int);

typedef struct {
    PCN_UNFOLDING_MEMBERS(float, f)
    PCN_UNFOLDING_MEMBERS(double, d)
} pcn_unfolding;

static void pcn_fill_unfolding(pcn_unfolding* t) {
    t->pad_f = pcn_pad_f;
    t->im2col_f = pcn_im2col_f;
    t->im2col_padded_f = pcn_im2col_padded_f;
    t->col2im_f = pcn_col2im_f;
    t->col2im_padded_f = pcn_col2im_padded_f;
    t->pad_d = pcn_pad_d;
    t->im2col_d = pcn_im2col_d;
    t->im2col_padded_d = pcn_im2col_padded_d;
    t->col2im_d = pcn_col2im_d;
    t->col2im_padded_d = pcn_col2im_padded_d;
}
#endif
