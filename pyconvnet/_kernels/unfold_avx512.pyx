# The unfolding loops compiled for the avx512 instruction set (see unfold.pxi).
include "unfold.pxi"
