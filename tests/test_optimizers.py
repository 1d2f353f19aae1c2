"""The compiled optimizer steps against their NumPy definitions."""
import numpy as np
import pytest

from pyconvnet._optimizers import SGD, Adam


def _arrays(dtype, n=1001, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n).astype(dtype),
            rng.standard_normal(n).astype(dtype))


# Steps of more than one block (32768 values) run in parallel.
SIZES = [(1001, 1), (3 * 32768 + 5, 2)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nesterov", [True, False])
@pytest.mark.parametrize("n, n_threads", SIZES)
def test_sgd_matches_its_definition(dtype, nesterov, n, n_threads):
    params, _ = _arrays(dtype, n)
    opt = SGD(params, learning_rate_init=0.05, momentum=0.9, nesterov=nesterov)
    p, v = params.astype(np.float64), np.zeros(params.size)
    for step in range(5):
        _, grads = _arrays(dtype, n, seed=step + 1)
        opt.update(params, grads, n_threads)
        g = grads.astype(np.float64)
        v = 0.9 * v - 0.05 * g
        p = p + (0.9 * v - 0.05 * g if nesterov else v)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(params, p, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(opt.velocity, v, rtol=rtol, atol=rtol)
    assert params.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, n_threads", SIZES)
def test_adam_matches_its_definition(dtype, n, n_threads):
    params, _ = _arrays(dtype, n)
    opt = Adam(params, learning_rate_init=0.01)
    p = params.astype(np.float64)
    m, v = np.zeros(p.size), np.zeros(p.size)
    for t in range(1, 6):
        _, grads = _arrays(dtype, n, seed=t)
        opt.update(params, grads, n_threads)
        g = grads.astype(np.float64)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        lr = 0.01 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        p = p - lr * m / (np.sqrt(v) + 1e-8)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(params, p, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(opt.m, m, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("solver", [SGD, Adam])
def test_steps_are_identical_for_any_thread_count(solver):
    n = 5 * 32768 + 17
    results = []
    for n_threads in (1, 2, 3):
        params, _ = _arrays(np.float32, n)
        opt = solver(params)
        for step in range(3):
            opt.update(params, _arrays(np.float32, n, seed=step + 1)[1], n_threads)
        results.append(params)
    for other in results[1:]:
        np.testing.assert_array_equal(results[0], other)
