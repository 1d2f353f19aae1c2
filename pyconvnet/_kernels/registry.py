"""The registry of convolution implementations.

Each implementation says what it supports — dtypes, the instruction sets it
needs, which geometries — and gives a forward and a backward function with
one signature::

    saved = forward(x, weight, bias, geometry, activation, n_threads, out,
                    pool=None, argmax=None, buffer=None)
    backward(dy, x, weight, geometry, activation, n_threads, y, saved, dx,
             dweight, dbias, argmax=None)

``forward`` writes the activated output (with ``pool``, a max-pooling
window, the pooled output and each window's argmax) into ``out``; in
training ``buffer(key, shape, dtype)`` lends it arrays that live as long as
the layer, and what it returns is handed to ``backward`` (the im2col
implementation keeps each sample's unfolding there). ``backward`` fills
``dweight`` and ``dbias`` and, unless it is None, ``dx``. Arrays are
C-contiguous and of one float dtype; shapes were checked by the caller.

``select(name, geometry, dtype)`` picks one: ``"auto"`` the first registered
one (in order of preference) that supports the layer, never a reference;
another name that implementation, or a ValueError saying why it cannot run
the layer. The environment variable ``PYCONVNET_CONV`` replaces ``"auto"``
for every layer (tests and benchmarks force an implementation this way, or
with the ``implementation`` argument of ``ops.conv2d``).
"""
import os
from dataclasses import dataclass, field

import numpy as np

from . import conv_module, current_isa, naive
from .runtime import ACTIVATIONS

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


@dataclass(frozen=True)
class ConvImplementation:
    name: str
    forward: object
    backward: object
    dtypes: tuple = FLOATS
    #: instruction sets any of which it needs ("generic": none)
    isas: tuple = ("generic", "avx2", "avx512")
    #: geometry -> bool
    supports_geometry: object = field(default=lambda geometry: True)
    #: a reference: runnable by name, never chosen by "auto"
    reference: bool = False
    description: str = ""

    def supports(self, geometry, dtype):
        """Why this implementation cannot run the layer, or None if it can."""
        if np.dtype(dtype) not in self.dtypes:
            return f"it computes in {[d.name for d in self.dtypes]}, not {np.dtype(dtype).name}"
        if current_isa() not in self.isas:
            return f"it needs one of the instruction sets {self.isas}"
        if not self.supports_geometry(geometry):
            return f"it does not support the geometry {geometry}"
        return None


_REGISTRY = {}


def register(implementation):
    """Add an implementation; the order of registration is the order of
    preference of ``"auto"``."""
    if implementation.name in _REGISTRY or implementation.name == "auto":
        raise ValueError(f"an implementation named {implementation.name!r} "
                         "is already registered")
    _REGISTRY[implementation.name] = implementation
    return implementation


def names():
    """The registered implementations, in order of preference."""
    return tuple(_REGISTRY)


def get(name):
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown convolution implementation {name!r}; "
                         f"registered: {names()} (or 'auto')") from None


def requested(name=None):
    """The implementation asked for: ``name``, else ``PYCONVNET_CONV``,
    else "auto"."""
    if name is None or name == "auto":
        name = os.environ.get("PYCONVNET_CONV", "").strip() or "auto"
    if name != "auto":
        get(name)
    return name


def select(name, geometry, dtype):
    """The implementation that runs a layer of ``geometry`` in ``dtype``."""
    name = requested(name)
    if name == "auto":
        for implementation in _REGISTRY.values():
            if not implementation.reference and implementation.supports(geometry, dtype) is None:
                return implementation
        raise ValueError(f"no convolution implementation supports {geometry} "
                         f"in {np.dtype(dtype).name}")
    implementation = get(name)
    why = implementation.supports(geometry, dtype)
    if why is not None:
        raise ValueError(f"the {name!r} convolution cannot run this layer: {why}")
    return implementation


# --------------------------------------------------------------------------
# im2col + BLAS (conv_im2col.pxi, built per instruction set)
# --------------------------------------------------------------------------
# Largest im2col unfolding a training forward pass keeps for the backward
# pass (per layer); a larger layer unfolds its input again instead.
COLS_CACHE_BYTES = 64 * 2**20


def _im2col_forward(x, weight, bias, geometry, activation, n_threads, out,
                    pool=None, argmax=None, buffer=None):
    cols = None
    if buffer is not None:
        shape = (x.shape[0], geometry.cols_size)
        if shape[0] * shape[1] * x.itemsize <= COLS_CACHE_BYTES:
            cols = buffer("cols", shape, x.dtype)
    (sh, sw), (ph, pw) = geometry.stride, geometry.padding
    act = ACTIVATIONS[activation]
    if pool is None:
        conv_module().conv2d_forward(x, weight, bias, out, cols, sh, sw, ph, pw,
                                   act, n_threads)
    else:
        conv_module().conv2d_forward(x, weight, bias, out, cols, sh, sw, ph, pw,
                                   act, n_threads, argmax, pool[0], pool[1])
    return cols


def _im2col_backward(dy, x, weight, geometry, activation, n_threads, y, saved,
                     dx, dweight, dbias, argmax=None):
    (sh, sw), (ph, pw) = geometry.stride, geometry.padding
    conv_module().conv2d_backward(dy, y, x, weight, saved, dx, dweight, dbias, sh,
                                sw, ph, pw, ACTIVATIONS[activation], n_threads,
                                argmax)


register(ConvImplementation(
    "im2col", _im2col_forward, _im2col_backward,
    description="im2col unfolding + BLAS GEMM per sample, bias, activation "
                "and max pooling fused (conv_im2col.pxi)"))

register(ConvImplementation(
    "naive", naive.forward, naive.backward, reference=True,
    description="NumPy in float64 from the definitions (naive.py)"))
