# The pool kernels compiled for the avx512 instruction set (see pool.pxi).
include "pool.pxi"
