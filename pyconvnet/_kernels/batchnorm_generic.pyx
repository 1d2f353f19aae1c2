# The batchnorm kernels compiled for the generic instruction set (see batchnorm.pxi).
include "batchnorm.pxi"
