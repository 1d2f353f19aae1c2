# The body of unfold_generic, unfold_avx2 and unfold_avx512: the unfolding
# loops of common.h compiled with one instruction set's flags (setup.py),
# handed to the convolution as a table of function pointers (unfold.h).
from pyconvnet._kernels.unfold cimport pcn_fill_unfolding, pcn_unfolding

cdef pcn_unfolding _table
pcn_fill_unfolding(&_table)


def table_address():
    """The address of this module's table; valid while the module is loaded
    (imported modules stay loaded)."""
    return <size_t> &_table
