"""Slow, obviously correct NumPy twins of the compiled kernels.

Everything is computed in float64 with explicit loops over output positions,
straight from the definitions; speed is irrelevant here.
"""
import numpy as np

from pyconvnet import _geometry


def pair(v):
    # The package's one parser of "an int or an (h, w) pair".
    return _geometry.pair(v, "size", minimum=0)


def conv2d(x, w, b=None, stride=1, padding=0):
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    sh, sw = pair(stride)
    ph, pw = pair(padding)
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw))
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (wd + 2 * pw - kw) // sw + 1
    y = np.zeros((n, f, oh, ow))
    for i in range(oh):
        for j in range(ow):
            window = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
            # b + sum over (c, l, m) of w[f, c, l, m] * a[c, i*s + l, j*s + m]
            y[:, :, i, j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3]))
    if b is not None:
        y += np.asarray(b, dtype=np.float64)[None, :, None, None]
    return y


def conv2d_grad(dy, x, w, stride=1, padding=0):
    dy = np.asarray(dy, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    sh, sw = pair(stride)
    ph, pw = pair(padding)
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw))
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for i in range(dy.shape[2]):
        for j in range(dy.shape[3]):
            window = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
            g = dy[:, :, i, j]  # (n, f)
            dw += np.tensordot(g, window, axes=([0], [0]))
            dxp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw] += np.tensordot(
                g, w, axes=([1], [0])
            )
    db = dy.sum(axis=(0, 2, 3))
    return dxp[:, :, ph:ph + h, pw:pw + wd], dw, db


def pool2d(x, size=2, stride=None, kind="max"):
    x = np.asarray(x, dtype=np.float64)
    kh, kw = pair(size)
    sh, sw = (kh, kw) if stride is None else pair(stride)
    n, c, h, w = x.shape
    oh = (h - kh) // sh + 1
    ow = (w - kw) // sw + 1
    y = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            win = x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
            if kind == "max":
                y[:, :, i, j] = win.max(axis=(2, 3))
            elif kind == "l2":
                y[:, :, i, j] = np.sqrt((win ** 2).sum(axis=(2, 3)))
            else:
                y[:, :, i, j] = win.mean(axis=(2, 3))
    return y


def pool2d_grad(dy, x, size=2, stride=None, kind="max"):
    dy = np.asarray(dy, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    kh, kw = pair(size)
    sh, sw = (kh, kw) if stride is None else pair(stride)
    dx = np.zeros_like(x)
    n, c = x.shape[:2]
    for a in range(n):
        for b in range(c):
            for i in range(dy.shape[2]):
                for j in range(dy.shape[3]):
                    win = x[a, b, i * sh:i * sh + kh, j * sw:j * sw + kw]
                    g = dy[a, b, i, j]
                    target = dx[a, b, i * sh:i * sh + kh, j * sw:j * sw + kw]
                    if kind == "max":
                        # first maximum in row-major order
                        k = int(np.argmax(win))
                        target[k // kw, k % kw] += g
                    elif kind == "l2":
                        norm = np.sqrt((win ** 2).sum())
                        if norm > 0:
                            target += g * win / norm
                    else:
                        target += g / (kh * kw)
    return dx


def batch_norm(x, gamma, beta, eps=1e-5):
    """Batch norm over (samples, positions) per channel, channel by channel,
    in float64: returns (y, mean, biased var)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.empty_like(x)
    n_channels = x.shape[1]
    mean, var = np.empty(n_channels), np.empty(n_channels)
    for c in range(n_channels):
        values = x[:, c].ravel()
        mean[c] = values.sum() / values.size
        var[c] = ((values - mean[c]) ** 2).sum() / values.size
        y[:, c] = gamma[c] * (x[:, c] - mean[c]) / np.sqrt(var[c] + eps) + beta[c]
    return y, mean, var


def batch_norm_grad(dy, x, gamma, eps=1e-5):
    """Gradients of batch_norm by the chain rule through the statistics,
    written term by term (not the simplified closed form the kernel uses)."""
    x = np.asarray(x, dtype=np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    dx = np.empty_like(x)
    n_channels = x.shape[1]
    dgamma, dbeta = np.empty(n_channels), np.empty(n_channels)
    for c in range(n_channels):
        xc, g = x[:, c], dy[:, c]
        m = xc.size
        mu = xc.mean()
        var = ((xc - mu) ** 2).mean()
        std = np.sqrt(var + eps)
        xhat = (xc - mu) / std
        dbeta[c] = g.sum()
        dgamma[c] = (g * xhat).sum()
        dxhat = g * gamma[c]
        dvar = (dxhat * (xc - mu)).sum() * -0.5 * std ** -3
        dmu = -(dxhat / std).sum() + dvar * (-2 * (xc - mu)).mean()
        dx[:, c] = dxhat / std + dvar * 2 * (xc - mu) / m + dmu / m
    return dx, dgamma, dbeta


def numerical_grad(f, x, eps=1e-6):
    """Central differences of the scalar function f at x (float64)."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    flat = x.reshape(-1)
    g = grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        hi = f(x)
        flat[i] = old - eps
        lo = f(x)
        flat[i] = old
        g[i] = (hi - lo) / (2 * eps)
    return grad
