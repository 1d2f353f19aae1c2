# The Winograd convolution compiled for the avx512 instruction set (see conv_winograd.pxi).
include "conv_winograd.pxi"
