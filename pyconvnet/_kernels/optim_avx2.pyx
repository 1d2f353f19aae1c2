# The optim kernels compiled for the avx2 instruction set (see optim.pxi).
include "optim.pxi"
