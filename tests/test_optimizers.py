"""The compiled optimizer steps against their NumPy definitions."""
import numpy as np
import pytest

from pyconvnet._optimizers import SGD, Adam


def _arrays(dtype, n=1001, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n).astype(dtype),
            rng.standard_normal(n).astype(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nesterov", [True, False])
def test_sgd_matches_its_definition(dtype, nesterov):
    params, _ = _arrays(dtype)
    opt = SGD(params, learning_rate_init=0.05, momentum=0.9, nesterov=nesterov)
    p, v = params.astype(np.float64), np.zeros(params.size)
    for step in range(5):
        _, grads = _arrays(dtype, seed=step + 1)
        opt.update(params, grads)
        g = grads.astype(np.float64)
        v = 0.9 * v - 0.05 * g
        p = p + (0.9 * v - 0.05 * g if nesterov else v)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(params, p, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(opt.velocity, v, rtol=rtol, atol=rtol)
    assert params.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_matches_its_definition(dtype):
    params, _ = _arrays(dtype)
    opt = Adam(params, learning_rate_init=0.01)
    p = params.astype(np.float64)
    m, v = np.zeros(p.size), np.zeros(p.size)
    for t in range(1, 6):
        _, grads = _arrays(dtype, seed=t)
        opt.update(params, grads)
        g = grads.astype(np.float64)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        lr = 0.01 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        p = p - lr * m / (np.sqrt(v) + 1e-8)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(params, p, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(opt.m, m, rtol=rtol, atol=rtol)
