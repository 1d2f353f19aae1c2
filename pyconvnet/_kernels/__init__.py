"""The compiled kernels, and the choice of which build of them runs.

Layout:

- ``common.h`` / ``common.pxd``: what every kernel shares (the activation
  enum, restrict, the fixed-order sums and chunk reduction, the thread-count
  rule, float/double wrappers);
- ``conv_im2col_generic``, ``conv_im2col_avx2``, ``conv_im2col_avx512``: the
  convolution as im2col + BLAS, forward and backward, with bias, activation
  and max pooling fused in: one source (``conv_im2col.pxi``) compiled once
  per instruction set;
- ``conv_winograd_*``: 3x3 convolutions at stride 1 by Winograd's minimal
  filtering (``conv_winograd.pxi`` over the transforms of ``winograd.h``),
  built the same way;
- ``dense_*``, ``pool_*``, ``batchnorm_*``, ``optim_*``: the dense layers'
  tiled products, pooling, batch norm, the optimizer steps, built per
  instruction set too (built once, for the baseline, batch norm's passes ran
  4 floats to a vector);
- ``runtime``: OpenMP threads, the CPU's instruction sets, the activation
  codes for Python.

Instruction sets: at import the best build the CPU runs is chosen
(``PYCONVNET_ISA=generic|avx2|avx512`` asks for one; a request this CPU or
this build cannot honour falls back to the default, with a warning).
``set_isa`` switches at run time (tests compare every build). The builds
differ in vector width only (setup.py compiles them with
``-ffp-contract=off``, so no multiply-add is fused in one build and not in
another, and every sum is taken in the order the source fixes), and give
the same bits — except the float32 products of the Winograd convolution in
the AVX-512 build, which run on ``sgemm.h``'s own kernels instead of BLAS
(fused multiply-adds, another order: a few ulps apart). Each build gives
the same bits for any thread count.

A whole module is built per instruction set, not a table of its loops:
called through function pointers, the unfolding loops ran slower than
inlined into the convolution (benchmarks/PERFORMANCE.md).
"""
import importlib
import importlib.util
import os
import warnings

from . import runtime
from .modules import ISA_MODULES, ISAS

# Builds run only when asked for (PYCONVNET_ISA, set_isa). None: the best
# build the CPU runs is the default (benchmarks/PERFORMANCE.md says why).
OPT_IN = ()
_state = {"isa": None, "modules": {}}


def available_isas():
    """The instruction-set builds this CPU can run and this install holds,
    best last."""
    # Found, not imported: import loads only the build that runs.
    return tuple(isa for isa in runtime.cpu_instruction_sets()
                 if all(importlib.util.find_spec(f"{__name__}.{base}_{isa}")
                        is not None for base in ISA_MODULES))


def default_isa():
    """The build that runs unless another is asked for: the best available
    that is not opt-in (``OPT_IN``)."""
    chosen = [isa for isa in available_isas() if isa not in OPT_IN]
    return chosen[-1] if chosen else "generic"


def set_isa(isa=None):
    """Run the kernels built for ``isa`` ("generic", "avx2", "avx512"), or
    with None the default one (``default_isa``). Returns the instruction set
    now used. Not to be called while a kernel runs."""
    available = available_isas()
    if isa is None:
        isa = default_isa()
    elif isa not in ISAS:
        raise ValueError(f"isa must be one of {ISAS} or None, got {isa!r}")
    elif isa not in available:
        raise ValueError(f"this CPU or this build cannot run the {isa!r} "
                         f"kernels; available: {available}")
    _state["modules"] = {base: importlib.import_module(f"{__name__}.{base}_{isa}")
                         for base in ISA_MODULES}
    _state["isa"] = isa
    return isa


def current_isa():
    """The instruction set the kernels run with."""
    return _state["isa"]


def conv_module(base="conv_im2col"):
    """The module of kernels ``base`` (one of ``ISA_MODULES``, convolutions
    or not) built for the current instruction set."""
    return _state["modules"][base]


def _isa_from_environment():
    wanted = os.environ.get("PYCONVNET_ISA", "").strip() or None
    try:
        return set_isa(wanted)
    except ValueError as exc:
        warnings.warn(f"PYCONVNET_ISA={wanted!r} ignored: {exc}", RuntimeWarning)
        return set_isa(None)


_isa_from_environment()
