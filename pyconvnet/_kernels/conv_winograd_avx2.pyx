# The Winograd convolution compiled for the avx2 instruction set (see conv_winograd.pxi).
include "conv_winograd.pxi"
