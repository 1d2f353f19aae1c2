"""The functional API: 2-D convolution and pooling, forward and backward.

Every public function validates its input, fixes dtype and memory layout,
allocates the outputs and calls a compiled kernel; the kernels never validate.
Shapes follow the NCHW convention:

- ``x``: (n_samples, n_channels, height, width)
- ``weight``: (n_filters, n_channels, kernel_height, kernel_width)
- convolution output: (n_samples, n_filters, out_height, out_width) with
  ``out_height = (height + 2 * pad_h - kernel_height) // stride_h + 1``
- pooling output: (n_samples, n_channels, out_height, out_width) with
  ``out_height = (height - size_h) // stride_h + 1`` (floor mode: a ragged
  edge is dropped)

dtype: float32 stays float32 and float64 stays float64; any other real numeric
input (integers, booleans, float16) is converted to float64; if the inputs mix
float32 with anything else, the computation runs in float64.

Once validated, every function calls ``_dispatch``, the unchecked calls
into the kernels that the network's layers use on every batch too.
"""
import numbers

import numpy as np

from . import _dispatch, _geometry
from ._kernels import registry
from ._threads import blas_single_threaded, effective_n_threads

__all__ = ["conv2d", "conv2d_grad", "pool2d", "pool2d_grad", "batch_norm",
           "batch_norm_grad", "implementations", "POOL_KINDS"]

POOL_KINDS = ("max", "l2", "avg")


# Sizes, shapes and limits live in ``_geometry``.
INT_MAX = _geometry.INT_MAX
_pair = _geometry.pair


# --------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------
def _check_numeric(a, name):
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold real numbers, got an array of dtype {a.dtype}"
        )
    return a


#: The precisions the kernels compute in.
FLOAT_DTYPES = (np.float32, np.float64)


def result_dtype(dtypes, default=np.float64):
    """The one precision rule of pyconvnet: inputs that are all float32
    compute in float32, inputs that are all float32 or float64 (at least one
    float64) in float64, and any other input (integers, booleans, float16)
    in ``default``: float64 in ``ops``, as NumPy would; float32 in the
    estimators (``BaseConvNet``), which train at single precision unless
    given float64 data."""
    dtypes = [np.dtype(d) for d in dtypes]
    if all(d == np.float32 for d in dtypes):
        return np.float32
    if all(d in FLOAT_DTYPES for d in dtypes):
        return np.float64
    return np.dtype(default).type



def _check_ndim(a, name, ndim, shape_doc):
    if a.ndim != ndim:
        raise ValueError(
            f"{name} must be a {ndim}-D array of shape {shape_doc}, "
            f"got shape {a.shape}"
        )


def _check_nonempty(a, name, shape_doc, first_axis_may_be_empty=True):
    dims = a.shape[1:] if first_axis_may_be_empty else a.shape
    if any(d == 0 for d in dims):
        raise ValueError(
            f"{name} of shape {shape_doc} must have non-zero "
            f"{'dimensions after the first' if first_axis_may_be_empty else 'dimensions'}"
            f", got shape {a.shape}"
        )


def _prepare(arrays, names, ndims, shape_docs):
    """Check kinds and ndim, then cast all to one float dtype, C-contiguous."""
    checked = [_check_numeric(a, n) for a, n in zip(arrays, names)]
    for a, n, d, doc in zip(checked, names, ndims, shape_docs):
        _check_ndim(a, n, d, doc)
    dtype = result_dtype([a.dtype for a in checked])
    return [np.ascontiguousarray(a, dtype=dtype) for a in checked]


def _validate_conv(x, weight, stride, padding, n_threads, n_buffers):
    stride = _pair(stride, "stride", 1)
    padding = _pair(padding, "padding", 0)
    x_doc = "(n_samples, n_channels, height, width)"
    w_doc = "(n_filters, n_channels, kernel_height, kernel_width)"
    _check_nonempty(x, "x", x_doc)
    _check_nonempty(weight, "weight", w_doc, first_axis_may_be_empty=False)
    if x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"x has {x.shape[1]} channels but weight expects {weight.shape[1]} "
            f"(x shape {x.shape}, weight shape {weight.shape}: "
            f"x.shape[1] must equal weight.shape[1])"
        )
    for axis, label in ((2, "height"), (3, "width")):
        k = weight.shape[axis]
        p = padding[axis - 2]
        if k > x.shape[axis] + 2 * p:
            raise ValueError(
                f"kernel {label} {k} is larger than the padded input {label} "
                f"{x.shape[axis]} + 2*{p}; weight shape {weight.shape}, "
                f"x shape {x.shape}"
            )
    geometry = _geometry.ConvGeometry.of_arrays(x.shape, weight.shape, stride,
                                                padding)
    geometry.check(x.itemsize, n_buffers * _geometry.threads_for(n_threads, x.shape[0]))
    return stride, padding


def _validate_pool(x, size, stride, kind):
    if not isinstance(kind, str) or kind not in POOL_KINDS:
        raise ValueError(f"kind must be one of {POOL_KINDS}, got {kind!r}")
    size = _pair(size, "size", 1)
    stride = size if stride is None else _pair(stride, "stride", 1)
    _check_nonempty(x, "x", "(n_samples, n_channels, height, width)")
    if x.shape[2] * x.shape[3] > INT_MAX:
        raise ValueError(
            f"x: height * width = {x.shape[2] * x.shape[3]:,} exceeds "
            f"{INT_MAX:,}, the largest plane the pooling kernels index"
        )
    for axis, label in ((2, "height"), (3, "width")):
        if size[axis - 2] > x.shape[axis]:
            raise ValueError(
                f"pooling window {label} {size[axis - 2]} is larger than the "
                f"input {label} {x.shape[axis]} (x shape {x.shape})"
            )
    return size, stride


def _check_implementation(name):
    if name is not None and not isinstance(name, str):
        raise TypeError(f"implementation must be a string or None, got {name!r}")
    registry.requested(name)


def implementations():
    """The registered convolution implementations, in the order "auto"
    prefers them (a reference, such as "naive", is never chosen by "auto")."""
    return registry.names()


def _check_dy(dy, expected, what):
    if dy.shape != tuple(expected):
        raise ValueError(
            f"dy must have the shape of the {what} output {tuple(expected)}, "
            f"got {dy.shape}"
        )


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------
def conv2d(x, weight, bias=None, *, stride=1, padding=0, n_threads=None,
           implementation=None):
    """2-D convolution (cross-correlation) with shared weights.

    ``y[n, f, i, j] = bias[f] + sum over c, k, l of
    weight[f, c, k, l] * xpad[n, c, i*stride_h + k, j*stride_w + l]``,
    where ``xpad`` is ``x`` with ``padding`` zeros on each side.

    Parameters
    ----------
    x : array-like of shape (n_samples, n_channels, height, width)
    weight : array-like of shape (n_filters, n_channels, kernel_height, kernel_width)
        One kernel per output feature map, shared by all its positions.
    bias : array-like of shape (n_filters,), default=None
        One bias per feature map; None means no bias.
    stride : int or (int, int), default=1
        Step of the sliding window, >= 1.
    padding : int or (int, int), default=0
        Zeros added on each side of height and width, >= 0.
    n_threads : int, default=None
        OpenMP threads; None follows ``OMP_NUM_THREADS`` / threadpoolctl.
    implementation : str, default=None
        Which registered implementation computes it (:func:`implementations`):
        None or "auto" picks the fastest that supports the call (or the one
        named by the environment variable ``PYCONVNET_CONV``); "naive" is the
        NumPy reference.

    Returns
    -------
    y : ndarray of shape (n_samples, n_filters, out_height, out_width)
        ``out_height = (height + 2*pad_h - kernel_height) // stride_h + 1``.
    """
    arrays = [x, weight] + ([] if bias is None else [bias])
    names = ["x", "weight", "bias"]
    docs = [
        "(n_samples, n_channels, height, width)",
        "(n_filters, n_channels, kernel_height, kernel_width)",
        "(n_filters,)",
    ]
    arrays = _prepare(arrays, names, [4, 4, 1], docs)
    x, weight = arrays[:2]
    bias = arrays[2] if len(arrays) == 3 else None
    n_threads = effective_n_threads(n_threads)
    stride, padding = _validate_conv(x, weight, stride, padding, n_threads, 1)
    if bias is not None and bias.shape[0] != weight.shape[0]:
        raise ValueError(
            f"bias must have shape (n_filters,) = ({weight.shape[0]},), "
            f"got {bias.shape}"
        )
    _check_implementation(implementation)
    with blas_single_threaded():
        return _dispatch.conv_forward(x, weight, bias, stride, padding, n_threads,
                             implementation=implementation)[0]


def conv2d_grad(dy, x, weight, *, stride=1, padding=0, input_grad=True,
                n_threads=None, implementation=None):
    """Gradients of :func:`conv2d` with respect to its input, weight and bias.

    Parameters
    ----------
    dy : array-like of shape (n_samples, n_filters, out_height, out_width)
        Gradient of the loss with respect to the convolution's output.
    x : array-like of shape (n_samples, n_channels, height, width)
        The forward input.
    weight : array-like of shape (n_filters, n_channels, kernel_height, kernel_width)
    stride, padding : int or (int, int)
        As in the forward call.
    input_grad : bool, default=True
        Whether to compute ``dx``; a first layer needs none.
    n_threads : int, default=None
    implementation : str, default=None
        As in :func:`conv2d`.

    Returns
    -------
    dx : ndarray of shape (n_samples, n_channels, height, width) or None
    dweight : ndarray of shape (n_filters, n_channels, kernel_height, kernel_width)
        Summed over the samples.
    dbias : ndarray of shape (n_filters,)
        Summed over the samples and positions.
    """
    dy, x, weight = _prepare(
        [dy, x, weight],
        ["dy", "x", "weight"],
        [4, 4, 4],
        [
            "(n_samples, n_filters, out_height, out_width)",
            "(n_samples, n_channels, height, width)",
            "(n_filters, n_channels, kernel_height, kernel_width)",
        ],
    )
    n_threads = effective_n_threads(n_threads)
    stride, padding = _validate_conv(x, weight, stride, padding, n_threads, 2)
    _check_dy(dy, _geometry.conv_output_shape(x.shape, weight.shape, stride, padding),
              "convolution")
    _check_implementation(implementation)
    with blas_single_threaded():
        return _dispatch.conv_backward(dy, x, weight, stride, padding, bool(input_grad),
                              n_threads, implementation=implementation)


def pool2d(x, size=2, *, stride=None, kind="max", n_threads=None):
    """2-D pooling: condense each window of each feature map to one value.

    Parameters
    ----------
    x : array-like of shape (n_samples, n_channels, height, width)
    size : int or (int, int), default=2
        Window height and width, >= 1.
    stride : int or (int, int), default=None
        Step between windows; None means ``size`` (non-overlapping windows).
    kind : {"max", "l2", "avg"}, default="max"
        ``"max"``: the largest value; ``"l2"``: the square root of the sum of
        squares; ``"avg"``: the mean.
    n_threads : int, default=None

    Returns
    -------
    y : ndarray of shape (n_samples, n_channels, out_height, out_width)
        ``out_height = (height - size_h) // stride_h + 1``.
    """
    (x,) = _prepare([x], ["x"], [4], ["(n_samples, n_channels, height, width)"])
    size, stride = _validate_pool(x, size, stride, kind)
    n_threads = effective_n_threads(n_threads)
    return _dispatch.pool_forward(x, kind, size, stride, n_threads)[0]


def pool2d_grad(dy, x, size=2, *, stride=None, kind="max", n_threads=None):
    """Gradient of :func:`pool2d` with respect to its input.

    Max pooling sends each output's gradient to the first maximum of its
    window in row-major order; L2 pooling sends ``dy * x / y`` and 0 where the
    window is all zeros; average pooling spreads ``dy`` evenly.

    Parameters
    ----------
    dy : array-like of shape (n_samples, n_channels, out_height, out_width)
    x : array-like of shape (n_samples, n_channels, height, width)
        The forward input.
    size, stride, kind, n_threads
        As in :func:`pool2d`.

    Returns
    -------
    dx : ndarray of shape (n_samples, n_channels, height, width)
    """
    dy, x = _prepare(
        [dy, x],
        ["dy", "x"],
        [4, 4],
        [
            "(n_samples, n_channels, out_height, out_width)",
            "(n_samples, n_channels, height, width)",
        ],
    )
    size, stride = _validate_pool(x, size, stride, kind)
    _check_dy(dy, _geometry.pool_output_shape(x.shape, size, stride), "pooling")
    n_threads = effective_n_threads(n_threads)
    y, cache = _dispatch.pool_forward(x, kind, size, stride, n_threads)
    return _dispatch.pool_backward(dy, x, y, cache, kind, size, stride, n_threads)



def _validate_batch_norm(x, gamma, beta, eps, n_threads, sample_weight, dy=None):
    """Shared checks of the batch-norm ops; returns the prepared arrays, the
    weights and the thread count."""
    doc_x = "(n_samples, n_channels, height, width)"
    arrays = [x, gamma, beta] + ([] if dy is None else [dy])
    names = ["x", "gamma", "beta", "dy"]
    arrays = _prepare(arrays, names, [4, 1, 1, 4],
                      [doc_x, "(n_channels,)", "(n_channels,)", doc_x])
    x, gamma, beta = arrays[:3]
    _check_nonempty(x, "x", doc_x)
    for a, name in ((gamma, "gamma"), (beta, "beta")):
        if a.shape != (x.shape[1],):
            raise ValueError(f"{name} must have shape (n_channels,) = "
                             f"({x.shape[1]},), got {a.shape}")
    if dy is not None:
        _check_dy(arrays[3], x.shape, "batch-norm")
    if (isinstance(eps, bool) or not isinstance(eps, numbers.Real)
            or not np.isfinite(eps) or eps <= 0):
        raise ValueError(f"eps must be a finite real number > 0, got {eps!r}")
    if sample_weight is not None:
        sample_weight = _check_numeric(sample_weight, "sample_weight")
        if sample_weight.shape != (x.shape[0],):
            raise ValueError(f"sample_weight must have shape (n_samples,) = "
                             f"({x.shape[0]},), got {sample_weight.shape}")
        sample_weight = sample_weight.astype(np.float64)
        if (not np.isfinite(sample_weight).all() or (sample_weight < 0).any()
                or (x.shape[0] and sample_weight.sum() <= 0)):
            raise ValueError("sample_weight must be finite, >= 0, and not sum to 0")
    # What is averaged: the samples of positive weight, at every position.
    n_weighted = (x.shape[0] if sample_weight is None
                  else int(np.count_nonzero(sample_weight)))
    if n_weighted * x.shape[2] * x.shape[3] == 1:
        # One value per channel normalises to exactly 0 whatever it is, and
        # its gradient vanishes (PyTorch refuses it in training too).
        raise ValueError(
            "batch norm needs more than one value per channel (samples of "
            f"positive weight * height * width > 1), got x of shape {x.shape}"
            + ("" if sample_weight is None else
               f" with {n_weighted} sample of positive weight"))
    return arrays, sample_weight, effective_n_threads(n_threads)


def batch_norm(x, gamma, beta, *, eps=1e-5, sample_weight=None, n_threads=None):
    """Batch normalisation of feature maps with the batch's statistics.

    ``y[n, c] = gamma[c] * (x[n, c] - mean[c]) / sqrt(var[c] + eps) + beta[c]``
    where ``mean[c]`` and ``var[c]`` (biased) are taken over the samples and
    positions of channel ``c``, each sample counting ``sample_weight[n]``
    times (a weight of 2 is the sample twice, 0 leaves it out).

    Parameters
    ----------
    x : array-like of shape (n_samples, n_channels, height, width)
    gamma, beta : array-like of shape (n_channels,)
        The learned scale and shift.
    eps : float > 0, default=1e-5
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative, not all zero; None means all ones.
    n_threads : int, default=None

    Returns
    -------
    y : ndarray of the shape of x
    mean, var : ndarray of shape (n_channels,), float64
        The batch's statistics (``var`` biased).
    """
    (x, gamma, beta), weights, n_threads = _validate_batch_norm(
        x, gamma, beta, eps, n_threads, sample_weight)
    y, mean, var, _ = _dispatch.bn_forward_train(x, gamma, beta, eps, n_threads,
                                        weights=weights)
    return y, mean, var


def batch_norm_grad(dy, x, gamma, beta, *, eps=1e-5, sample_weight=None,
                    n_threads=None):
    """Gradients of :func:`batch_norm` (same arguments, and ``dy`` of the
    shape of x) with respect to x, gamma and beta.

    Returns
    -------
    dx : ndarray of the shape of x
    dgamma, dbeta : ndarray of shape (n_channels,)
    """
    (x, gamma, beta, dy), weights, n_threads = _validate_batch_norm(
        x, gamma, beta, eps, n_threads, sample_weight, dy)
    y, mean, _, invstd = _dispatch.bn_forward_train(x, gamma, beta, eps, n_threads,
                                           weights=weights)
    return _dispatch.bn_backward(dy, x, y, gamma, mean, invstd, n_threads,
                        weights=weights)
