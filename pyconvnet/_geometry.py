"""Sizes: the one place that parses an "int or (h, w) pair", works out
convolution and pooling shapes, fits a layer to its input, and knows the
limits the compiled kernels have (C ints, the machine's memory) and the
threads a kernel starts.

Used by ``ops`` (checking a call), the network plan (fitting each layer to
its input before anything is allocated), the layers, the estimator's
hyperparameter checks, ONNX export and persistence.

Shapes follow the NCHW convention; a convolution's output is
``(size + 2 * pad - kernel) // stride + 1`` per axis, a pooling's
``(size - window) // stride + 1`` (floor mode: a ragged edge is dropped).
"""
import numbers
import operator
import os
from dataclasses import dataclass

import numpy as np

# The kernels index in C ints (and BLAS takes int sizes), so every size they
# compute must fit one: strides and paddings, the padded image, and the
# products C*H*W, K*P, F*P and H*W (K = C*KH*KW rows and P = OH*OW columns of
# a sample's im2col matrix).
INT_MAX = 2**31 - 1


def pair(value, name, minimum=1, maximum=INT_MAX):
    """An int or a pair of ints, each in [minimum, maximum], as (h, w).

    Booleans, floats and other sequences are a TypeError; values out of
    range a ValueError naming ``name``."""
    if isinstance(value, (numbers.Integral, np.integer)) and not isinstance(
        value, (bool, np.bool_)
    ):
        result = (int(value), int(value))
    elif isinstance(value, (tuple, list, np.ndarray)) and len(value) == 2:
        try:
            result = tuple(operator.index(v) for v in value
                           if not isinstance(v, (bool, np.bool_)))
        except TypeError:
            result = ()
        if len(result) != 2:
            raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    else:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(result) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    if max(result) > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value!r}")
    return result


def threads_for(n_threads, n_items):
    """The threads a kernel starts for ``n_items`` work items: no more than
    items, at least one (the Python twin of ``_n_threads`` in
    ``_kernels/common.pxd``)."""
    return max(1, min(int(n_threads), int(n_items)))


# --------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------
def physical_memory():
    """Bytes of RAM on this machine (None if the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_workspace(n_bytes, what):
    """Refuse a working buffer larger than the machine's memory: allocating
    it would fail or, with overcommit, end the process when it is touched."""
    total = physical_memory()
    if total is not None and n_bytes > total:
        raise ValueError(
            f"{what} needs {n_bytes / 2**30:,.1f} GiB of working memory, more "
            f"than this machine's {total / 2**30:,.1f} GiB; use a smaller "
            "kernel, input or batch, or a stride"
        )


# --------------------------------------------------------------------------
# Convolution
# --------------------------------------------------------------------------
def conv_out_size(size, kernel, stride, pad):
    return (size + 2 * pad - kernel) // stride + 1


@dataclass(frozen=True)
class ConvGeometry:
    """One convolution's sizes: input (C, H, W), ``n_filters`` kernels of
    (C, kh, kw), stride and zero padding per axis."""

    in_shape: tuple
    n_filters: int
    kernel: tuple
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)

    @classmethod
    def of_arrays(cls, x_shape, w_shape, stride, padding):
        """The geometry of ``x`` (N, C, H, W) under ``weight`` (F, C, KH, KW)."""
        return cls(tuple(int(s) for s in x_shape[1:]), int(w_shape[0]),
                   (int(w_shape[2]), int(w_shape[3])), tuple(stride),
                   tuple(padding))

    @classmethod
    def fit(cls, in_shape, n_filters, kernel, stride, padding_mode):
        """A layer of ``n_filters`` ``kernel``s at ``stride`` fitted to its
        input (C, H, W): with "same" padding ``(k - 1) // 2`` zeros on each
        side, with "valid" none. A kernel larger than its input is shrunk:
        under "same" to the smallest odd size that still covers the whole
        input (the padding stays symmetric, the image keeps its size at
        stride 1, and every position still sees every pixel), under "valid"
        to the input."""
        in_shape = tuple(int(s) for s in in_shape)
        if padding_mode == "same":
            kernel = tuple(k if k <= s else s + 1 - s % 2
                           for k, s in zip(kernel, in_shape[1:]))
            padding = ((kernel[0] - 1) // 2, (kernel[1] - 1) // 2)
        else:
            kernel = tuple(min(k, s) for k, s in zip(kernel, in_shape[1:]))
            padding = (0, 0)
        return cls(in_shape, int(n_filters), kernel, tuple(stride), padding)

    @property
    def weight_shape(self):
        return (self.n_filters, self.in_shape[0]) + tuple(self.kernel)

    @property
    def out_shape(self):
        """(F, OH, OW) of one sample."""
        return (self.n_filters,
                conv_out_size(self.in_shape[1], self.kernel[0], self.stride[0],
                              self.padding[0]),
                conv_out_size(self.in_shape[2], self.kernel[1], self.stride[1],
                              self.padding[1]))

    @property
    def cols_size(self):
        """Values of one sample's im2col matrix, K * P."""
        _, oh, ow = self.out_shape
        return self.in_shape[0] * self.kernel[0] * self.kernel[1] * oh * ow

    def check(self, itemsize=4, n_buffers=1, what="the convolution"):
        """Check that the sizes fit the kernels' C ints and that
        ``n_buffers`` im2col workspaces (K * P values each) fit memory."""
        c, h, w = self.in_shape
        f = self.n_filters
        kh, kw = self.kernel
        for label, size, pad in (("height", h, self.padding[0]),
                                 ("width", w, self.padding[1])):
            if size + 2 * pad > INT_MAX:
                raise ValueError(
                    f"{what}: the padded input {label} {size} + 2*{pad} exceeds "
                    f"{INT_MAX}; use a smaller padding"
                )
        _, oh, ow = self.out_shape
        k, p = c * kh * kw, oh * ow
        for label, value in (("n_channels * height * width", c * h * w),
                             ("the weights (n_filters * n_channels * kernel_height"
                              " * kernel_width)", f * k),
                             ("n_channels * kernel_height * kernel_width", k),
                             ("out_height * out_width", p),
                             ("n_filters * out_height * out_width", f * p),
                             ("the im2col matrix (kernel size x output size)", k * p)):
            if value > INT_MAX:
                raise ValueError(
                    f"{what}: {label} = {value:,} exceeds {INT_MAX:,}, the largest "
                    "size the compiled kernels index; use a smaller input, kernel "
                    "or padding, or a larger stride"
                )
        check_workspace(n_buffers * k * p * itemsize, what)


def conv_output_shape(x_shape, w_shape, stride, padding):
    """(N, F, OH, OW) of a convolution of x (N, C, H, W) by (F, C, KH, KW)."""
    geometry = ConvGeometry.of_arrays(x_shape, w_shape, stride, padding)
    return (x_shape[0],) + geometry.out_shape


def cols_shape(x_shape, w_shape, stride, padding):
    """(N, K*P): a batch's im2col unfolding, one sample a row."""
    geometry = ConvGeometry.of_arrays(x_shape, w_shape, stride, padding)
    return (x_shape[0], geometry.cols_size)


# --------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------
def pool_output_shape(x_shape, size, stride):
    """(N, C, OH, OW) of pooling x (N, C, H, W) over ``size`` windows."""
    return (x_shape[0], x_shape[1],
            (x_shape[2] - size[0]) // stride[0] + 1,
            (x_shape[3] - size[1]) // stride[1] + 1)


def fit_pool(in_shape, size):
    """A pooling window fitted to its input (C, H, W): shrunk to the input
    where larger; None when that leaves a 1x1 window (nothing to pool)."""
    size = (min(size[0], in_shape[1]), min(size[1], in_shape[2]))
    return None if size == (1, 1) else size


# --------------------------------------------------------------------------
# Dense layers
# --------------------------------------------------------------------------
def check_dense(n_in, n_out, what="the dense layer"):
    """Check that a dense layer's weight matrix (n_in x n_out) fits the
    products' C ints."""
    if n_in * n_out > INT_MAX:
        raise ValueError(
            f"{what}: the weights (n_inputs * n_outputs = {n_in:,} * {n_out:,} "
            f"= {n_in * n_out:,}) exceed {INT_MAX:,}, the largest size the "
            "compiled kernels index; use fewer units, or more pooling before it"
        )
