# The convolution compiled for the generic instruction set (see conv_im2col.pxi).
include "conv_im2col.pxi"
