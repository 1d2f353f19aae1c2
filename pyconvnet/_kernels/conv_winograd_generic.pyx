# The Winograd convolution compiled for the generic instruction set (see conv_winograd.pxi).
include "conv_winograd.pxi"
