"""Batch normalisation: the compiled kernels against the naive reference, a
numerical gradient check, thread-count independence, bad input, the layer in
a network (running statistics, no weight decay), PyTorch's BatchNorm2d when
PyTorch is installed, and the estimator's batch_norm option end to end."""
import io
import pickle
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from pyconvnet import ConvNetClassifier, _dispatch, load, ops, save
from pyconvnet._layers import BatchNorm2D
from pyconvnet._spec import BatchNormSpec

import reference as ref

TOL = {np.float32: dict(rtol=2e-4, atol=2e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}

# x shapes: one sample, one position per channel (1x1 maps), odd sizes, and
# more channels than threads.
SHAPES = [(1, 3, 4, 5), (7, 2, 1, 1), (3, 5, 6, 7), (16, 9, 3, 3), (2, 1, 11, 13)]


def _data(shape, dtype, seed, loc=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    return (loc + scale * rng.standard_normal(shape)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_matches_reference(shape, dtype):
    x = _data(shape, dtype, 0, loc=3.0, scale=2.0)
    gamma, beta = _data(shape[1], dtype, 1, 1.0, 0.3), _data(shape[1], dtype, 2)
    y, mean, var = ops.batch_norm(x, gamma, beta)
    y_ref, mean_ref, var_ref = ref.batch_norm(x, gamma, beta)
    assert y.dtype == dtype and y.shape == x.shape
    # float32 channels are summed in float blocks (a few ulps), float64 ones
    # in double.
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-6 if dtype == np.float32 else 1e-10)
    np.testing.assert_allclose(var, var_ref, rtol=1e-6 if dtype == np.float32 else 1e-10)
    np.testing.assert_allclose(y, y_ref, **TOL[dtype])


def test_float32_with_a_large_mean_stays_accurate():
    """The variance is the two-pass one (deviations from the mean): a channel of values
    around 10,000 with spread 1 keeps its variance (E[x^2] - E[x]^2 in
    float32 would lose it entirely)."""
    x = _data((64, 2, 8, 8), np.float32, 3, loc=1e4, scale=1.0)
    _, _, var = ops.batch_norm(x, np.ones(2, np.float32), np.zeros(2, np.float32))
    _, _, var_ref = ref.batch_norm(x, np.ones(2), np.zeros(2))
    np.testing.assert_allclose(var, var_ref, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_backward_matches_reference(shape, dtype):
    x = _data(shape, dtype, 4, loc=-1.0, scale=3.0)
    gamma, beta = _data(shape[1], dtype, 5, 1.0, 0.3), _data(shape[1], dtype, 6)
    dy = _data(shape, dtype, 7)
    dx, dgamma, dbeta = ops.batch_norm_grad(dy, x, gamma, beta)
    dx_ref, dgamma_ref, dbeta_ref = ref.batch_norm_grad(dy, x, gamma)
    tol = TOL[dtype] if dtype == np.float64 else dict(rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(dx, dx_ref, **tol)
    np.testing.assert_allclose(dgamma, dgamma_ref, **tol)
    np.testing.assert_allclose(dbeta, dbeta_ref, **tol)


@pytest.mark.parametrize("shape", [(3, 2, 3, 4), (5, 3, 1, 1)])
def test_backward_numerical(shape):
    x = _data(shape, np.float64, 8, scale=2.0)
    gamma, beta = _data(shape[1], np.float64, 9, 1.0, 0.3), _data(shape[1], np.float64, 10)
    g = _data(shape, np.float64, 11)

    def loss(x_=x, gamma_=gamma, beta_=beta):
        return float((ops.batch_norm(x_, gamma_, beta_)[0] * g).sum())

    dx, dgamma, dbeta = ops.batch_norm_grad(g, x, gamma, beta)
    tol = dict(rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dx, ref.numerical_grad(lambda v: loss(x_=v), x), **tol)
    np.testing.assert_allclose(dgamma, ref.numerical_grad(lambda v: loss(gamma_=v), gamma), **tol)
    np.testing.assert_allclose(dbeta, ref.numerical_grad(lambda v: loss(beta_=v), beta), **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sample_weight_is_repetition(dtype):
    """A weight of k is the sample k times (0 leaves it out), in the
    statistics, the output and the gradients."""
    weights = np.array([2, 0, 1, 3, 1])
    x = _data((5, 3, 4, 3), dtype, 21, loc=1.0, scale=2.0)
    gamma, beta = _data(3, dtype, 22, 1.0, 0.3), _data(3, dtype, 23)
    dy = _data(x.shape, dtype, 24)
    repeated = np.repeat(x, weights, axis=0)
    y, mean, var = ops.batch_norm(x, gamma, beta, sample_weight=weights)
    y_rep, mean_rep, var_rep = ops.batch_norm(repeated, gamma, beta)
    tol = TOL[dtype]
    np.testing.assert_allclose(mean, mean_rep, rtol=1e-6)
    np.testing.assert_allclose(var, var_rep, rtol=1e-6)
    kept = weights > 0
    np.testing.assert_allclose(y[kept], y_rep[np.cumsum(weights)[kept] - 1], **tol)
    # The loss weights each sample's output gradient by its weight.
    dx, dgamma, dbeta = ops.batch_norm_grad(dy * weights[:, None, None, None].astype(dtype),
                                            x, gamma, beta, sample_weight=weights)
    dx_rep, dgamma_rep, dbeta_rep = ops.batch_norm_grad(np.repeat(dy, weights, axis=0),
                                                        repeated, gamma, beta)
    owner = np.repeat(np.arange(5), weights)
    summed = np.zeros_like(dx)
    np.add.at(summed, owner, dx_rep)
    tol = tol if dtype == np.float64 else dict(rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(dx, summed, **tol)
    np.testing.assert_allclose(dgamma, dgamma_rep, **tol)
    np.testing.assert_allclose(dbeta, dbeta_rep, **tol)
    # Unit weights are the plain statistics, bit for bit.
    for a, b in zip(ops.batch_norm(x, gamma, beta, sample_weight=np.ones(5)),
                    ops.batch_norm(x, gamma, beta)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "identity"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_activation(activation, dtype):
    """The activation fused into the kernels equals batch norm followed by
    the activation, forward and backward."""
    x = _data((6, 4, 5, 5), dtype, 12)
    gamma, beta = _data(4, dtype, 13, 1.0, 0.3), _data(4, dtype, 14)
    dy = _data(x.shape, dtype, 15)
    z, mean, _ = ops.batch_norm(x, gamma, beta)
    act = {"relu": lambda v: np.maximum(v, 0), "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
           "tanh": np.tanh, "identity": lambda v: v}[activation]
    y, _, _, invstd = _dispatch.bn_forward_train(x, gamma, beta, 1e-5, 2, activation)
    np.testing.assert_allclose(y, act(z), **TOL[dtype])
    d_act = {"relu": lambda: (y > 0), "sigmoid": lambda: y * (1 - y),
             "tanh": lambda: 1 - y * y, "identity": lambda: 1}[activation]()
    dz = (dy * d_act).astype(dtype)
    expected = ops.batch_norm_grad(dz, x, gamma, beta)
    got = _dispatch.bn_backward(dy, x, y, gamma, mean, invstd, 2, activation)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_identical_for_any_thread_count(dtype):
    x = _data((33, 7, 6, 6), dtype, 16, loc=0.5)
    gamma, beta = _data(7, dtype, 17, 1.0, 0.3), _data(7, dtype, 18)
    dy = _data(x.shape, dtype, 19)
    base = ops.batch_norm(x, gamma, beta, n_threads=1)
    base_grad = ops.batch_norm_grad(dy, x, gamma, beta, n_threads=1)
    for n_threads in (2, 3, 8):
        for a, b in zip(ops.batch_norm(x, gamma, beta, n_threads=n_threads), base):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(ops.batch_norm_grad(dy, x, gamma, beta, n_threads=n_threads),
                        base_grad):
            np.testing.assert_array_equal(a, b)


def test_empty_batch():
    x = np.zeros((0, 3, 4, 4), np.float32)
    y, mean, var = ops.batch_norm(x, np.ones(3, np.float32), np.zeros(3, np.float32))
    assert y.shape == x.shape
    dx, dgamma, dbeta = ops.batch_norm_grad(x, x, np.ones(3, np.float32), np.zeros(3, np.float32))
    assert dx.shape == x.shape and not dgamma.any() and not dbeta.any()


X4, G3 = np.zeros((2, 3, 4, 4)), np.ones(3)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: ops.batch_norm(X4[0], G3, G3), ValueError, "x must be a 4-D"),
        (lambda: ops.batch_norm(X4, np.ones(2), G3), ValueError, "gamma must have shape"),
        (lambda: ops.batch_norm(X4, G3, np.ones((3, 1))), ValueError, "beta must be a 1-D"),
        (lambda: ops.batch_norm(X4, G3, G3, eps=0), ValueError, "eps"),
        (lambda: ops.batch_norm(X4, G3, G3, eps=float("nan")), ValueError, "eps"),
        (lambda: ops.batch_norm(X4, G3, G3, eps="1"), ValueError, "eps"),
        (lambda: ops.batch_norm(X4.astype(str), G3, G3), TypeError, "real numbers"),
        (lambda: ops.batch_norm(np.zeros((2, 3, 0, 4)), G3, G3), ValueError, "non-zero"),
        (lambda: ops.batch_norm(X4, G3, G3, n_threads=0), ValueError, "n_threads"),
        (lambda: ops.batch_norm(X4, G3, G3, sample_weight=[1]), ValueError, "sample_weight"),
        (lambda: ops.batch_norm(X4, G3, G3, sample_weight=[1, -1]), ValueError, "sample_weight"),
        (lambda: ops.batch_norm(X4, G3, G3, sample_weight=[0, 0]), ValueError, "sample_weight"),
        (lambda: ops.batch_norm(X4, G3, G3, sample_weight=[1, np.nan]), ValueError,
         "sample_weight"),
        (lambda: ops.batch_norm(X4, G3, G3, sample_weight=["a", "b"]), TypeError, "real"),
        (lambda: ops.batch_norm_grad(np.zeros((2, 3, 4, 5)), X4, G3, G3), ValueError,
         "dy must have the shape"),
    ],
)
def test_bad_input_raises(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --------------------------------------------------------------------------
# The layer and the network
# --------------------------------------------------------------------------
def test_layer_running_statistics_and_prediction():
    layer = BatchNorm2D(BatchNormSpec((3, 4, 4), "identity"), None, np.float64)
    gamma, beta, running_mean, running_var = layer.params
    gamma[:] = [1.0, 2.0, 0.5]
    beta[:] = [0.0, -1.0, 1.0]
    batches = [_data((5, 3, 4, 4), np.float64, s, loc=2.0, scale=3.0) for s in range(3)]
    expected_mean, expected_var = np.zeros(3), np.ones(3)
    for x in batches:
        layer.forward(x, training=True)
        values = x.transpose(1, 0, 2, 3).reshape(3, -1)
        expected_mean = 0.9 * expected_mean + 0.1 * values.mean(axis=1)
        expected_var = 0.9 * expected_var + 0.1 * values.var(axis=1, ddof=1)
    np.testing.assert_allclose(running_mean, expected_mean, rtol=1e-12)
    np.testing.assert_allclose(running_var, expected_var, rtol=1e-12)
    # Prediction uses the running statistics and leaves them alone.
    x = batches[0]
    y = layer.forward(x, training=False)
    expected = ((x - expected_mean[:, None, None]) / np.sqrt(expected_var[:, None, None] + 1e-5)
                * gamma[:, None, None] + beta[:, None, None])
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(running_mean, expected_mean, rtol=1e-12)


def test_layer_matches_torch_batchnorm2d():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(20)
    layer = BatchNorm2D(BatchNormSpec((4, 5, 5), "identity"), None, np.float32)
    layer.params[0][:] = rng.uniform(0.5, 1.5, 4)
    layer.params[1][:] = rng.normal(size=4)
    bn = torch.nn.BatchNorm2d(4, eps=1e-5, momentum=0.1)
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(layer.params[0].copy()))
        bn.bias.copy_(torch.from_numpy(layer.params[1].copy()))
    layer.bind(layer.params, [np.zeros(4, np.float32) for _ in range(4)])
    for step in range(3):
        x = rng.normal(1.0, 2.0, (8, 4, 5, 5)).astype(np.float32)
        dy = rng.normal(size=x.shape).astype(np.float32)
        y = layer.forward(x, training=True)
        dx = layer.backward(dy)
        xt = torch.from_numpy(x).requires_grad_(True)
        bn.train()
        bn.weight.grad = None
        bn.bias.grad = None
        yt = bn(xt)
        yt.backward(torch.from_numpy(dy))
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(layer.grads[0], bn.weight.grad.numpy(), rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(layer.grads[1], bn.bias.grad.numpy(), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(layer.params[2], bn.running_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.params[3], bn.running_var.numpy(), rtol=1e-5, atol=1e-6)
    bn.eval()
    x = rng.normal(size=(3, 4, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(layer.forward(x, training=False),
                               bn(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-5)


BN = dict(conv_layers=((8, 3), (16, 3)), hidden_layer_sizes=(32,), batch_norm=True,
          max_iter=8, learning_rate_init=0.01, random_state=0)


def _fit(X, y, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return ConvNetClassifier(**{**BN, **params}).fit(X, y)


def test_estimator_trains_with_batch_norm(digits):
    X, y = digits
    model = _fit(X[:1200], y[:1200])
    assert model.score(X[1200:], y[1200:]) > 0.9
    kinds = [row["kind"] for row in model.layers_]
    assert kinds.count("batchnorm") == 2
    summary = model.architecture_summary()
    assert "no bias" in summary and "batch-norm, relu" in summary
    # coefs_ are the weight layers, as without batch norm; the convolutions
    # have zero, read-only intercepts.
    assert [c.ndim for c in model.coefs_] == [4, 4, 2, 2]
    assert not model.intercepts_[0].any() and not model.intercepts_[0].flags.writeable
    bn = [layer for layer in model._network.layers if layer.kind == "batchnorm"][0]
    assert not np.allclose(bn.params[2], 0) and not np.allclose(bn.params[3], 1)


def test_prediction_leaves_running_statistics_alone(digits):
    X, y = digits
    model = _fit(X[:300], y[:300], max_iter=2)
    before = model._network.flat_params.copy()
    model.predict_proba(X[300:600])
    np.testing.assert_array_equal(model._network.flat_params, before)


def test_batch_norm_identical_for_any_thread_count(digits):
    X, y = digits
    a = _fit(X[:300], y[:300], max_iter=2, n_threads=1)
    b = _fit(X[:300], y[:300], max_iter=2, n_threads=2)
    np.testing.assert_array_equal(a._network.flat_params, b._network.flat_params)


def test_no_weight_decay_on_batch_norm_parameters(digits):
    """alpha penalises the weights of conv and dense layers, not gamma."""
    X, y = digits
    model = _fit(X[:64], y[:64], max_iter=1)
    net = model._network
    images = model._images(X[:64])
    w = np.ones(64)
    y_idx = np.searchsorted(model.classes_, y[:64])
    loss0 = net.train_step_grads(images, y_idx, w, 0.0)
    grads0 = net.flat_grads.copy()
    loss1 = net.train_step_grads(images, y_idx, w, 0.5)
    weights = [layer.params[0] for layer in net.layers if layer.kind in ("conv", "dense")]
    penalty = 0.5 * 0.5 * sum(float((v.astype(np.float64) ** 2).sum()) for v in weights) / 64
    assert loss1 - loss0 == pytest.approx(penalty, rel=1e-4)
    for layer in net.layers:
        if layer.kind == "batchnorm":
            # running statistics get no gradient; gamma no penalty term
            assert not layer.grads[2].any() and not layer.grads[3].any()
    start = 0
    for layer in net.layers:
        for p in layer.params:
            if layer.kind == "batchnorm":
                np.testing.assert_allclose(net.flat_grads[start:start + p.size],
                                           grads0[start:start + p.size], rtol=1e-5, atol=1e-7)
            start += p.size


def test_batch_norm_model_round_trips(digits):
    X, y = digits
    model = _fit(X[:300], y[:300], max_iter=2)
    expected = model.predict_proba(X[300:400])
    buffer = io.BytesIO()
    save(model, buffer)
    buffer.seek(0)
    loaded = load(buffer)
    np.testing.assert_array_equal(loaded.predict_proba(X[300:400]), expected)
    assert loaded.architecture_summary() == model.architecture_summary()
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(clone.predict_proba(X[300:400]), expected)
    # The clone trains the arrays it predicts with, statistics included.
    clone.partial_fit(X[:300], y[:300])
    assert not np.array_equal(clone.predict_proba(X[300:400]), expected)


@pytest.mark.parametrize("pooling", ["max", "l2", "avg"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_prediction_folds_batch_norm_into_the_convolution(digits, pooling, dtype):
    """At prediction each convolution runs the batch norm after it folded
    into its weights and bias (and, with max pooling, the pooling too): one
    pass per block. The scores are those of the layers in turn, to
    rounding."""
    X, y = digits
    model = _fit(X[:300], y[:300], max_iter=2, pooling=pooling, dtype=dtype)
    net = model.network_
    stages = net._stages(training=False)
    assert sum(fold is not None for _, _, fold in stages) == 2
    assert all(layer.kind != "batchnorm" for layer, _, _ in stages)
    assert sum(pool is not None for _, pool, _ in stages) == (2 if pooling == "max" else 0)
    images = model.as_images(X[300:500])
    folded = net.forward(images.astype(dtype), training=False)
    net.set_fusion(False)
    plain = net.forward(images.astype(dtype), training=False)
    net.set_fusion(True)
    tol = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(folded, plain, rtol=tol, atol=tol * np.abs(plain).max())
    # Training still runs batch norm as a layer of its own.
    assert all(fold is None for _, _, fold in net._stages(training=True))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("pool_size", [2, (3, 2)])
def test_batch_norm_runs_max_pooling_in_its_pass_bit_identically(
        digits, dtype, activation, pool_size):
    """In training, batch norm runs the max pooling after it in its own
    pass (only the pooled output and its argmax are written; the backward
    pass rebuilds the gradient before pooling in scratch): the loss, every
    gradient and the input gradient are those of the layers in turn, bit
    for bit, with sample weights and ties in the windows."""
    X, y = digits
    model = _fit(X[:100], y[:100], max_iter=1, dtype=dtype,
                 activation=activation, pool_size=pool_size)
    net = model.network_
    stages = net._stages(training=True)
    assert sum(layer.kind == "batchnorm" and pool is not None
               for layer, pool, _ in stages) == 2
    net.layers[0].input_grad = True
    net.conv_bn_stats = False               # the batch norm's own sums, both ways
    images = model.as_images(X[100:140]).astype(dtype)
    images[:, :, ::2, ::3] = 0.25           # ties inside pooling windows
    labels = np.searchsorted(model.classes_, y[100:140])
    weights = np.random.RandomState(0).uniform(0.5, 2.0, 40)
    results = []
    for fused in (True, False):
        net.set_fusion(fused)
        before = net.flat_params.copy()
        cost = net.train_step_grads(images, labels, weights, 0.01)
        results.append((cost, net.flat_grads.copy(),
                        net.layers[0]._buffers["dx"].copy()))
        net.flat_params[...] = before       # the running statistics moved
    net.set_fusion(True)
    (c1, g1, d1), (c2, g2, d2) = results
    assert c1 == c2
    np.testing.assert_array_equal(g1, g2)
    np.testing.assert_array_equal(d1, d2)
    assert np.any(g1 != 0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_statistics_taken_in_the_convolution_pass_match_the_two_pass_ones(
        digits, dtype):
    """In training a convolution followed by batch norm takes the planes'
    sums and squared deviations in its own pass and batch norm combines them
    (Chan et al.): the same statistics, loss and gradients as batch norm's
    own two passes, to rounding, with sample weights and a large mean."""
    X, y = digits
    model = _fit(X[:100], y[:100], max_iter=1, dtype=dtype)
    net = model.network_
    images = model.as_images(X[100:140]).astype(dtype) + 50   # a large mean
    labels = np.searchsorted(model.classes_, y[100:140])
    weights = np.random.RandomState(0).uniform(0.0, 2.0, 40)
    results = []
    for shared in (True, False):
        net.conv_bn_stats = shared
        before = net.flat_params.copy()
        cost = net.train_step_grads(images, labels, weights, 0.01)
        bn = [layer for layer in net.layers if layer.kind == "batchnorm"]
        results.append((cost, net.flat_grads.copy(),
                        [layer._saved[2].copy() for layer in bn],
                        [layer._saved[3].copy() for layer in bn]))
        net.flat_params[...] = before
    net.conv_bn_stats = True
    (c1, g1, m1, i1), (c2, g2, m2, i2) = results
    tol = 1e-4 if dtype == "float32" else 1e-10
    for a, b in zip(m1 + i1, m2 + i2):
        np.testing.assert_allclose(a, b, rtol=tol)
    assert c1 == pytest.approx(c2, rel=tol)
    np.testing.assert_allclose(g1, g2, rtol=0, atol=tol * np.abs(g2).max())
