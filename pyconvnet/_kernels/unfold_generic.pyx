# The unfolding loops compiled for the generic instruction set (see unfold.pxi).
include "unfold.pxi"
