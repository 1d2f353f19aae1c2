# The convolution compiled for the avx2 instruction set (see conv_im2col.pxi).
include "conv_im2col.pxi"
