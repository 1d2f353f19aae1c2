# The batchnorm kernels compiled for the avx2 instruction set (see batchnorm.pxi).
include "batchnorm.pxi"
