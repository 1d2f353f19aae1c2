"""The registry of convolution implementations.

Each implementation says what it supports — dtypes, the instruction sets it
needs, which geometries — and gives a forward and a backward function with
one signature::

    saved = forward(x, weight, bias, geometry, activation, n_threads, out,
                    pool=None, argmax=None, buffer=None, stats=None)
    backward(dy, x, weight, geometry, activation, n_threads, y, saved, dx,
             dweight, dbias, argmax=None)

``forward`` writes the activated output (with ``pool``, a max-pooling
window, the pooled output and each window's argmax) into ``out``; in
training ``buffer(key, shape, dtype)`` lends it arrays that live as long as
the layer, and what it returns is handed to ``backward`` (the im2col
implementation keeps each sample's unfolding there). With ``stats``, a
float64 (N, F, 2) array, it also writes each output plane's sum and sum of
squared deviations from the plane's mean (before pooling), for the batch
norm that follows (``_plane_stats`` of ``common.pxd``). ``backward`` fills
``dweight`` and ``dbias`` and, unless it is None, ``dx``. Arrays are
C-contiguous and of one float dtype; shapes were checked by the caller.

``select(name, geometry, dtype, batch)`` picks one: ``"auto"`` the first
registered one (in order of preference) that supports the layer and whose
``auto`` rule chooses it for that batch size, never a reference; another
name that implementation, or a ValueError saying why it cannot run the
layer. The ``auto`` rules are a table measured once and written down
(below, with the figures in ``benchmarks/PERFORMANCE.md``), never a timing
at run time: the same layer always runs the same arithmetic on a machine,
so the same ``random_state`` gives the same weights run after run. The
environment variable ``PYCONVNET_CONV`` replaces ``"auto"`` for every layer
(tests and benchmarks force an implementation this way, or with the
``implementation`` argument of ``ops.conv2d``).
"""
import os
from dataclasses import dataclass, field

import numpy as np

from . import conv_module, current_isa, naive
from .._activations import code as activation_code

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
    #: (geometry, dtype, batch size) -> bool: whether "auto" picks it for a
    #: layer it supports (the measured table)
    auto: object = field(default=lambda geometry, dtype, batch: True)

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


# "auto" tells batch sizes apart up to this one (the largest threshold of
# its table): a layer keeps one choice per (dtype, min(batch, AUTO_BATCH)).
AUTO_BATCH = 32


def select(name, geometry, dtype, batch=AUTO_BATCH):
    """The implementation that runs a layer of ``geometry`` in ``dtype`` on
    a batch of ``batch`` samples."""
    name = requested(name)
    if name == "auto":
        for implementation in _REGISTRY.values():
            if (not implementation.reference
                    and implementation.supports(geometry, dtype) is None
                    and implementation.auto(geometry, np.dtype(dtype),
                                            min(batch, AUTO_BATCH))):
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
                    pool=None, argmax=None, buffer=None, stats=None):
    cols = None
    if buffer is not None:
        shape = (x.shape[0], geometry.cols_size)
        if shape[0] * shape[1] * x.itemsize <= COLS_CACHE_BYTES:
            cols = buffer("cols", shape, x.dtype)
    (sh, sw), (ph, pw) = geometry.stride, geometry.padding
    act = activation_code(activation)
    if pool is None:
        conv_module().conv2d_forward(x, weight, bias, out, cols, sh, sw, ph, pw,
                                   act, n_threads, stats=stats)
    else:
        conv_module().conv2d_forward(x, weight, bias, out, cols, sh, sw, ph, pw,
                                   act, n_threads, argmax, pool[0], pool[1],
                                   stats=stats)
    return cols


def _im2col_backward(dy, x, weight, geometry, activation, n_threads, y, saved,
                     dx, dweight, dbias, argmax=None):
    (sh, sw), (ph, pw) = geometry.stride, geometry.padding
    conv_module().conv2d_backward(dy, y, x, weight, saved, dx, dweight, dbias, sh,
                                sw, ph, pw, activation_code(activation), n_threads,
                                argmax)



# --------------------------------------------------------------------------
# Winograd F(2x2, 3x3) and F(4x4, 3x3) (conv_winograd.pxi, built per
# instruction set): 3x3 kernels at stride 1
# --------------------------------------------------------------------------
# Kernels up to 9x9 (3 x 3 pieces of 3x3 at most); larger ones would need
# more pieces than a direct product costs.
WINOGRAD_MAX_KERNEL = 9


def _winograd_geometry(geometry):
    return (tuple(geometry.stride) == (1, 1)
            and max(geometry.kernel) <= WINOGRAD_MAX_KERNEL)


# The table "auto" follows (its measurements: benchmarks/PERFORMANCE.md).
# The transforms work on winograd_lanes() channels at a time: with fewer
# input channels (a first layer on grey or RGB images) they cost more than
# the multiplies they save, and im2col runs. In float32 F(4x4) where its
# tiles fit the output (7x7 and larger), F(2x2) on smaller maps, for 3x3
# kernels; a larger kernel (cut into 3x3 pieces) from 16 channels on 7x7
# maps and larger, with F(4x4), when the channels fill at least 3/4 of the
# lanes they take. Small batches go to im2col: the weights' transform and
# the products' few rows cost more than the multiplies saved. In float64,
# F(2x2) for 3x3 kernels from 16 channels.
def winograd_lanes():
    """Channels the Winograd transforms take at a time in the build that
    runs."""
    return conv_module("conv_winograd").LANES


def _auto_winograd4(geometry, dtype, batch):
    channels, (oh, ow) = geometry.in_shape[0], geometry.out_shape[1:]
    lanes = winograd_lanes()
    if dtype != np.float32 or min(oh, ow) < 7:
        return False
    if tuple(geometry.kernel) == (3, 3):
        return channels >= 8 and batch >= 4
    fill = channels / (-(-channels // lanes) * lanes)
    return channels >= 16 and fill >= 0.75 and batch >= AUTO_BATCH


def _auto_winograd2(geometry, dtype, batch):
    channels = geometry.in_shape[0]
    return (tuple(geometry.kernel) == (3, 3) and batch >= 4
            and channels >= (8 if dtype == np.float32 else 16))


def _winograd(m):
    def forward(x, weight, bias, geometry, activation, n_threads, out,
                pool=None, argmax=None, buffer=None, stats=None):
        module = conv_module("conv_winograd")
        cache = None
        if buffer is not None:
            oh, ow = geometry.out_shape[1:]
            size = module.transformed_size(x.shape[0], x.shape[1], oh, ow,
                                           geometry.kernel, m)
            if size * x.itemsize <= COLS_CACHE_BYTES:
                cache = buffer("winograd", (size,), x.dtype)
        ph, pw = geometry.padding
        act = activation_code(activation)
        if pool is None:
            U = module.conv2d_forward(x, weight, bias, out, cache, m, ph, pw,
                                      act, n_threads, buffer=buffer, stats=stats)
        else:
            U = module.conv2d_forward(x, weight, bias, out, cache, m, ph, pw,
                                      act, n_threads, argmax, pool[0], pool[1],
                                      buffer=buffer, stats=stats)
        return None if buffer is None else (cache, U, buffer)

    def backward(dy, x, weight, geometry, activation, n_threads, y, saved, dx,
                 dweight, dbias, argmax=None):
        cache, U, buffer = saved if saved is not None else (None, None, None)
        ph, pw = geometry.padding
        conv_module("conv_winograd").conv2d_backward(
            dy, y, x, weight, cache, U, dx, dweight, dbias, m, ph, pw,
            activation_code(activation), n_threads, argmax, buffer=buffer)

    return forward, backward


register(ConvImplementation(
    "winograd4", *_winograd(4), supports_geometry=_winograd_geometry,
    auto=_auto_winograd4,
    description="Winograd F(4x4, 3x3) at stride 1 (4x fewer multiplies for "
                "3x3 kernels; larger ones cut into 3x3 pieces): transforms "
                "vectorised over channels, products over groups of samples "
                "(conv_winograd.pxi)"))

register(ConvImplementation(
    "winograd2", *_winograd(2), supports_geometry=_winograd_geometry,
    auto=_auto_winograd2,
    description="Winograd F(2x2, 3x3) at stride 1, 2.25x fewer multiplies "
                "for 3x3 kernels (conv_winograd.pxi)"))

register(ConvImplementation(
    "im2col", _im2col_forward, _im2col_backward,
    description="im2col unfolding + BLAS GEMM per sample, bias, activation "
                "and max pooling fused (conv_im2col.pxi)"))

register(ConvImplementation(
    "naive", naive.forward, naive.backward, reference=True,
    description="NumPy in float64 from the definitions (naive.py)"))
