"""The naive convolution: NumPy, float64, straight from the definitions.

A registered implementation (``naive``) that ``"auto"`` never chooses: the
reference every other implementation is compared with in the tests, and a
way to run a whole network without the compiled convolution. It takes the
same arguments and fills the same outputs as the compiled ones, including
the fused bias, activation and non-overlapping max pooling (each window's
first maximum in row-major order; a window holding a NaN pools to its first
NaN, as the compiled kernel does).
"""
import numpy as np

from .. import _activations


def _activate(z, activation):
    return _activations.get(activation).forward(z)


def _activation_grad(dy, y, activation):
    return _activations.get(activation).backward(dy, y)


def _padded(x, padding):
    ph, pw = padding
    return np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def _windows(geometry):
    """(i, j, rows, cols): for each kernel offset, the input positions the
    output grid reads in the padded input."""
    _, oh, ow = geometry.out_shape
    (sh, sw), (kh, kw) = geometry.stride, geometry.kernel
    for i in range(kh):
        for j in range(kw):
            yield i, j, slice(i, i + sh * (oh - 1) + 1, sh), slice(j, j + sw * (ow - 1) + 1, sw)


def _max_pool(z, pool):
    """Non-overlapping max pooling of z (N, F, H, W): values and the index
    in the plane of each window's first maximum (first NaN)."""
    n, f, h, w = z.shape
    ph, pw = pool
    oh, ow = h // ph, w // pw
    win = z[:, :, :oh * ph, :ow * pw].reshape(n, f, oh, ph, ow, pw)
    win = win.transpose(0, 1, 2, 4, 3, 5).reshape(n, f, oh, ow, ph * pw)
    nan = np.isnan(win)
    pick = np.where(nan.any(axis=-1), np.argmax(nan, axis=-1), np.argmax(win, axis=-1))
    values = np.take_along_axis(win, pick[..., None], axis=-1)[..., 0]
    rows = np.arange(oh)[:, None] * ph + pick // pw
    cols = np.arange(ow)[None, :] * pw + pick % pw
    return values, (rows * w + cols).astype(np.intc)


def forward(x, weight, bias, geometry, activation, n_threads, out, pool=None,
            argmax=None, buffer=None, stats=None):
    xp = _padded(x, geometry.padding)
    w = weight.astype(np.float64)
    _, oh, ow = geometry.out_shape
    z = np.zeros((x.shape[0], geometry.n_filters, oh, ow))
    for i, j, rows, cols in _windows(geometry):
        z += np.einsum("nchw,fc->nfhw", xp[:, :, rows, cols], w[:, :, i, j])
    if bias is not None:
        z += bias.astype(np.float64)[None, :, None, None]
    # Round to the working precision before the activation, as the compiled
    # kernels (which compute the product in it) do.
    y = _activate(z.astype(x.dtype).astype(np.float64), activation)
    if stats is not None:
        planes = y.astype(x.dtype).astype(np.float64).reshape(y.shape[:2] + (-1,))
        stats[..., 0] = planes.sum(axis=-1)
        stats[..., 1] = ((planes - planes.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1)
    if pool is None:
        out[...] = y
    else:
        out[...], argmax[...] = _max_pool(y.astype(x.dtype), pool)
    return None


def backward(dy, x, weight, geometry, activation, n_threads, y, saved, dx,
             dweight, dbias, argmax=None):
    n = x.shape[0]
    _, oh, ow = geometry.out_shape
    dy = dy.astype(np.float64)
    if argmax is not None:
        # Back through the pooling: each window's gradient to its maximum.
        dz = np.zeros((n, geometry.n_filters, oh * ow))
        g = _activation_grad(dy, y.astype(np.float64), activation)
        flat = g.reshape(n, geometry.n_filters, -1)
        np.put_along_axis(dz, argmax.reshape(flat.shape).astype(np.intp), flat,
                          axis=-1)
        dz = dz.reshape(n, geometry.n_filters, oh, ow)
    else:
        dz = _activation_grad(dy, None if y is None else y.astype(np.float64),
                              activation)
    xp = _padded(x, geometry.padding)
    dxp = np.zeros_like(xp)
    w = weight.astype(np.float64)
    for i, j, rows, cols in _windows(geometry):
        dweight[:, :, i, j] = np.einsum("nfhw,nchw->fc", dz, xp[:, :, rows, cols])
        if dx is not None:
            dxp[:, :, rows, cols] += np.einsum("nfhw,fc->nchw", dz, w[:, :, i, j])
    dbias[...] = dz.sum(axis=(0, 2, 3))
    if dx is not None:
        ph, pw = geometry.padding
        dx[...] = dxp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]]
