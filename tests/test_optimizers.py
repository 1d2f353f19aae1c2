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


def test_adamw_decays_the_weights_after_adams_step(digits):
    """solver="adamw": no L2 term in the loss; after each Adam step the
    weights (not biases, nor batch norm's parameters) shrink by
    1 - step * alpha. With alpha=0 it is Adam, bit for bit."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from pyconvnet import ConvNetClassifier

    X, y = digits
    X, y = X[:128], y[:128]
    params = dict(conv_layers=((4, 3),), hidden_layer_sizes=(8,), batch_norm=True,
                  batch_size=64, random_state=0, learning_rate="cosine",
                  learning_rate_init=0.01)

    def fit(**kw):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return ConvNetClassifier(**params, **kw).fit(X, y)

    adam = fit(solver="adam", alpha=0.0, max_iter=2)
    np.testing.assert_array_equal(fit(solver="adamw", alpha=0.0, max_iter=2)
                                  .network_.flat_params, adam.network_.flat_params)
    # One batch: Adam's step, then the decay at the schedule's step size.
    start = ConvNetClassifier(**params, solver="adamw", alpha=0.3, max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start.partial_fit(X[:64], y[:64], classes=np.unique(y))
    optimizer = start._optimizer
    assert type(optimizer).__name__ == "AdamW" and optimizer.weight_decay == 0.3
    decayed = start.network_.decayed_slices()
    kinds = [layer.kind for layer in start.network_.layers if layer.params]
    assert len(decayed) == kinds.count("conv") + kinds.count("dense")
    # Replay the batch with plain Adam from the same start and decay by hand.
    replay = ConvNetClassifier(**params, solver="adam", alpha=0.0, max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        replay.partial_fit(X[:64], y[:64], classes=np.unique(y))
    expected = replay.network_.flat_params.copy()
    factor = 1 - replay._optimizer.base_rate * 0.3
    for part in decayed:
        expected[part] *= factor
    np.testing.assert_array_equal(start.network_.flat_params, expected)
    changed = start.network_.flat_params != replay.network_.flat_params
    mask = np.zeros_like(changed)
    for part in decayed:
        mask[part] = True
    assert changed[mask].mean() > 0.9 and not changed[~mask].any()
