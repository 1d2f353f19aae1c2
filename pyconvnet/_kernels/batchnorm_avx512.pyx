# The batchnorm kernels compiled for the avx512 instruction set (see batchnorm.pxi).
include "batchnorm.pxi"
