# The pool kernels compiled for the generic instruction set (see pool.pxi).
include "pool.pxi"
