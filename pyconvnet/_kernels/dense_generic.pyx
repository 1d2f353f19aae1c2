# The dense products compiled for the generic instruction set (see dense.pxi).
include "dense.pxi"
