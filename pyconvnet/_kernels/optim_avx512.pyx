# The optim kernels compiled for the avx512 instruction set (see optim.pxi).
include "optim.pxi"
