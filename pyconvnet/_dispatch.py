"""The unchecked calls into the compiled kernels: what the layers use, and
what ``ops`` calls once it has validated its arguments.

Arrays are C-contiguous, of one float dtype, and of shapes ``ops``'s public
checks would accept; nothing is validated here (the kernels never see a
shape they were not built for because their callers, ``ops`` and the layers
built from a checked spec, only pass such shapes). Each function chooses
the kernel build (``_kernels.conv_module``: the instruction set) and, for
convolutions, the registered implementation (``_kernels.registry``).
"""
import numpy as np

from . import _geometry
from ._kernels import conv_module, registry
from ._activations import code as activation_code

INT_MAX = _geometry.INT_MAX

__all__ = ["conv_choice_key", "conv_implementation", "conv_forward", "matmul", "conv_backward", "pool_forward", "pool_backward", "bn_forward_train", "bn_forward_scale", "bn_backward"]


def conv_choice_key(implementation, dtype, batch):
    """What the choice of a convolution's implementation depends on, for a
    layer to keep its choice by: the dtype, the batch size (up to
    ``registry.AUTO_BATCH``), the request (``implementation``, or
    ``PYCONVNET_CONV``) and the instruction set. Its third item is the
    request, for ``conv_implementation``."""
    return (dtype, min(batch, registry.AUTO_BATCH), registry.requested(implementation),
            registry.current_isa())


def conv_implementation(implementation, geometry, dtype, batch):
    """The registered implementation that runs ``geometry`` in ``dtype`` on
    ``batch`` samples: ``implementation`` itself when it is one (a layer's
    cached choice), else the one its name (None: "auto") selects."""
    if isinstance(implementation, registry.ConvImplementation):
        return implementation
    return registry.select(implementation, geometry, dtype, batch)


def conv_forward(x, weight, bias, stride, padding, n_threads, activation=None,
                  out=None, pool=None, argmax=None, buffer=None,
                  implementation=None, geometry=None, stats=None):
    """Convolution, then bias and ``activation`` (None, "relu", "sigmoid" or
    "tanh") fused into the same pass, by the registered ``implementation``
    (None: ``"auto"``, see ``_kernels.registry``). Returns ``(y, argmax,
    saved)``: ``saved`` is what the backward pass needs besides x and y
    (training passes ``buffer``, the layer's lender of arrays that outlive a
    batch, so that an implementation can keep work such as the im2col
    unfolding).

    ``pool``, a window (h, w), max pools the activated output at a stride of
    the window in the same pass: ``y`` is then the pooled output and
    ``argmax`` the index in its plane of each window's maximum (the full
    output is not kept); ``out`` and ``argmax`` may be given. ``geometry``,
    when given, is the one of these arrays (a layer's, worked out once).
    ``stats``, a float64 (N, F, 2) array, receives each output plane's sum
    and sum of squared deviations from its own mean (for a batch norm that
    follows: see ``bn_forward_train``)."""
    if geometry is None:
        geometry = _geometry.ConvGeometry.of_arrays(x.shape, weight.shape, stride,
                                                    padding)
    chosen = conv_implementation(implementation, geometry, x.dtype, x.shape[0])
    shape = (x.shape[0],) + geometry.out_shape
    if pool is not None:
        shape = _geometry.pool_output_shape(shape, pool, pool)
        if argmax is None:
            argmax = np.empty(shape, dtype=np.intc)
    if out is None:
        out = np.empty(shape, dtype=x.dtype)
    if x.shape[0] == 0:
        return out, argmax, None
    saved = chosen.forward(x, weight, bias, geometry, activation, n_threads, out,
                           pool, argmax, buffer, stats)
    return out, argmax, saved


def matmul(a, b, out, n_threads):
    """out = a @ b for the dense layers, over ``n_threads`` threads with
    results that do not depend on the thread count (see ``_kernels/dense.pxi``). ``a``
    and ``b`` may be C-contiguous arrays or transposes of one (``x.T``,
    ``w.T``); any other layout, or mixed dtypes, goes to NumPy."""
    operands = []
    for m in (a, b):
        if m.flags.c_contiguous:
            operands += [m, False]
        elif m.T.flags.c_contiguous:
            operands += [m.T, True]
        else:
            return np.matmul(a, b, out=out)
    if (a.dtype == b.dtype == out.dtype and a.dtype in (np.float32, np.float64)
            and out.flags.c_contiguous and max(a.shape + b.shape) <= INT_MAX):
        conv_module("dense").matmul(*operands, out, n_threads)
        return out
    return np.matmul(a, b, out=out)


def conv_backward(dy, x, weight, stride, padding, input_grad, n_threads,
                   activation=None, y=None, saved=None, dx=None, dweight=None,
                   dbias=None, argmax=None, implementation=None, geometry=None):
    """Gradients of :func:`conv_forward` by the same ``implementation``;
    ``y`` is its (activated) output, needed when ``activation`` is not None;
    ``saved`` what it returned; ``dx``, ``dweight`` and ``dbias`` optional
    output arrays. After a pooled forward pass, ``dy`` is the gradient of the
    pooled output, ``y`` the pooled output and ``argmax`` the forward pass's
    argmax. An empty batch gives zero weight and bias gradients."""
    if input_grad and dx is None:
        dx = np.empty_like(x)
    elif not input_grad:
        dx = None
    if dweight is None:
        dweight = np.empty_like(weight)
    if dbias is None:
        dbias = np.empty(weight.shape[0], dtype=x.dtype)
    if x.shape[0] == 0:
        dweight[...] = 0
        dbias[...] = 0
        return dx, dweight, dbias
    if geometry is None:
        geometry = _geometry.ConvGeometry.of_arrays(x.shape, weight.shape, stride,
                                                    padding)
    chosen = conv_implementation(implementation, geometry, x.dtype, x.shape[0])
    chosen.backward(dy, x, weight, geometry, activation, n_threads, y, saved,
                    dx, dweight, dbias, argmax)
    return dx, dweight, dbias


def pool_forward(x, kind, size, stride, n_threads, out=None, argmax=None):
    """Pool x; returns (y, cache), cache being what the backward pass needs
    (the argmax indices for max pooling). ``out`` and ``argmax`` are optional
    output arrays."""
    y = out
    if y is None:
        y = np.empty(_geometry.pool_output_shape(x.shape, size, stride), dtype=x.dtype)
    cache = None
    if kind == "max":
        cache = np.empty(y.shape, dtype=np.intc) if argmax is None else argmax
    if x.shape[0] == 0:
        return y, cache
    kernels = conv_module("pool")
    if kind == "max":
        kernels.max_pool_forward(x, y, cache, size[0], size[1], stride[0],
                                 stride[1], n_threads)
    else:
        kernels.sum_pool_forward(x, y, size[0], size[1], stride[0], stride[1],
                                 kind == "l2", n_threads)
    return y, cache


def pool_backward(dy, x, y, cache, kind, size, stride, n_threads, dx=None):
    if dx is None:
        dx = np.empty(x.shape, dtype=x.dtype)
    if x.shape[0] == 0:
        return dx
    kernels = conv_module("pool")
    if kind == "max":
        kernels.max_pool_backward(dy, cache, dx, n_threads)
    elif kind == "l2":
        kernels.l2_pool_backward(dy, x, y, dx, size[0], size[1], stride[0],
                                 stride[1], n_threads)
    else:
        kernels.avg_pool_backward(dy, dx, size[0], size[1], stride[0],
                                  stride[1], n_threads)
    return dx


def _planes(a):
    """(N, C, H, W) -> (N, C, H * W), a view."""
    return a.reshape(a.shape[0], a.shape[1], a.shape[2] * a.shape[3])


def _unit_weights(x, weights):
    if weights is None:
        return np.ones(x.shape[0])
    return np.ascontiguousarray(weights, dtype=np.float64)


def bn_forward_train(x, gamma, beta, eps, n_threads, activation=None, out=None,
                      weights=None, pool=None, argmax=None, stats=None):
    """Batch norm with the batch's statistics (weighted by the samples'
    ``weights``, float64 (N,) summing to > 0; None is unit weights), then
    ``activation``; returns (y, mean, var, invstd), the statistics as
    float64 (C,) arrays. With ``pool``, a window (h, w), y is the max
    pooling of that output at a stride of the window, computed in the same
    pass, and ``argmax`` (given, or made) each window's index in its
    plane. ``stats`` (N, C, 2): each plane's sum and sum of squared
    deviations from its own mean, taken by the convolution that made x; the
    statistics then come from them (combined in float64 by Chan et al.'s
    pairwise update), and x is read once instead of three times."""
    n, c, h, w = x.shape
    extra = ()
    if pool is not None:
        shape = _geometry.pool_output_shape(x.shape, pool, pool)
        if argmax is None:
            argmax = np.empty(shape, dtype=np.intc)
        extra = (_planes(argmax), h, w, pool[0], pool[1])
    if out is None:
        out = np.empty(x.shape if pool is None else argmax.shape, dtype=x.dtype)
    mean, var, invstd = np.zeros(c), np.zeros(c), np.zeros(c)
    conv_module("batchnorm").forward_train(
        _planes(x), _unit_weights(x, weights), gamma, beta, _planes(out), mean,
        var, invstd, float(eps), activation_code(activation), n_threads, *extra,
        stats=stats)
    return out, mean, var, invstd


def bn_forward_scale(x, scale, shift, n_threads, activation=None, out=None):
    """y = activation(x * scale[c] + shift[c]): batch norm at prediction."""
    if out is None:
        out = np.empty_like(x)
    conv_module("batchnorm").forward_scale(_planes(x), scale, shift,
                                           _planes(out),
                                           activation_code(activation), n_threads)
    return out


def bn_backward(dy, x, y, gamma, mean, invstd, n_threads, activation=None,
                 dx=None, dgamma=None, dbeta=None, weights=None, argmax=None):
    """Gradients of :func:`bn_forward_train`; ``y`` is its output and
    ``weights`` the sample weights it was given; after a pooled forward
    pass, ``dy`` and ``y`` are the pooled gradient and output and
    ``argmax`` the forward pass's."""
    if dx is None:
        dx = np.empty_like(x)
    if dgamma is None:
        dgamma = np.empty_like(gamma)
    if dbeta is None:
        dbeta = np.empty_like(gamma)
    conv_module("batchnorm").backward(
        _planes(dy), _planes(x), _unit_weights(x, weights), _planes(y), gamma,
        mean, invstd, _planes(dx), dgamma, dbeta, activation_code(activation),
        n_threads, None if argmax is None else _planes(argmax))
    return dx, dgamma, dbeta
