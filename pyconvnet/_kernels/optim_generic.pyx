# The optim kernels compiled for the generic instruction set (see optim.pxi).
include "optim.pxi"
