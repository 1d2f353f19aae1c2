# The dense products compiled for the avx2 instruction set (see dense.pxi).
include "dense.pxi"
