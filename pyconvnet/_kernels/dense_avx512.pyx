# The dense products compiled for the avx512 instruction set (see dense.pxi).
include "dense.pxi"
