# The unfolding loops compiled for the avx2 instruction set (see unfold.pxi).
include "unfold.pxi"
