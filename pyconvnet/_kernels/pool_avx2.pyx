# The pool kernels compiled for the avx2 instruction set (see pool.pxi).
include "pool.pxi"
