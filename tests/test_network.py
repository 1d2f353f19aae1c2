"""Whole-network gradient checks: backpropagation through every layer kind
against central differences of the cost, in float64."""
import numpy as np
import pytest

from pyconvnet._network import build_network
from pyconvnet._spec import build_spec


def _net(image_shape, n_classes, conv_layers, padding, pooling, pool_size,
         hidden_layer_sizes, activation, dropout, rng, dtype):
    spec = build_spec(image_shape, n_classes, conv_layers, padding, pooling,
                      pool_size, hidden_layer_sizes, activation, dropout)
    return build_network(spec, rng, dtype)

import reference as ref


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "logistic", "tanh",
                                        "identity"])
@pytest.mark.parametrize("pooling", ["max", "l2", "avg", None])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_network_gradient_matches_central_differences(activation, pooling, padding):
    rng = np.random.RandomState(0)
    net = _net(
        (2, 7, 6), 3, conv_layers=((3, 3), (4, (2, 3), (1, 1))), padding=padding,
        pooling=pooling, pool_size=2, hidden_layer_sizes=(5,),
        activation=activation, dropout=0.0, rng=rng, dtype=np.float64,
    )
    # Shift the biases off zero so no ReLU sits exactly on its kink.
    for p in net.params[1::2]:
        p += rng.uniform(0.05, 0.2, p.shape)
    x = rng.standard_normal((4, 2, 7, 6))
    y = np.array([0, 2, 1, 2])
    sw = np.array([1.0, 0.5, 2.0, 1.5])
    alpha = 0.01

    net.layers[0].input_grad = True  # so the input gradient can be checked too
    net.train_step_grads(x, y, sw, alpha)
    analytic = [g.copy() for g in net.grads]
    for param, grad in zip(net.params, analytic):
        def cost(value, param=param):
            saved = param.copy()
            param[...] = value
            c = net.train_step_grads(x, y, sw, alpha)
            param[...] = saved
            return c
        numeric = ref.numerical_grad(cost, param)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("conv_layers", [
    ((3, 3), (4, 3), "pool", (4, (2, 3))),          # a block, then a convolution
    ("pool", (3, 3), (4, 3)),                       # pooling the input first
    ((3, 3), "pool", "pool"),                       # pooling twice
])
@pytest.mark.parametrize("pooling", ["max", "l2", "avg"])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_block_network_gradient_matches_central_differences(conv_layers, pooling,
                                                            batch_norm):
    rng = np.random.RandomState(0)
    spec = build_spec((2, 8, 7), 3, conv_layers, "same", pooling, 2, (5,), "tanh",
                      0.0, batch_norm=batch_norm)
    pools = [layer.kind for layer in spec.layers].count("pool")
    assert pools == conv_layers.count("pool")       # only where written
    net = build_network(spec, rng, np.float64)
    for p in net.params:
        p += rng.uniform(0.05, 0.2, p.shape)
    _check_parameter_gradients(net, rng)


def _check_parameter_gradients(net, rng):
    """Every trained parameter's gradient (batch norm's running statistics
    left out) against central differences of the cost, on 4 images of
    (2, 8, 7)."""
    x = rng.standard_normal((4, 2, 8, 7))
    y = np.array([0, 2, 1, 2])
    sw = np.array([1.0, 0.5, 2.0, 1.5])
    net.train_step_grads(x, y, sw, 0.01)
    analytic = [g.copy() for g in net.grads]
    owners = [(layer, i) for layer in net.layers for i in range(len(layer.params))]
    for (layer, i), param, grad in zip(owners, net.params, analytic):
        if layer.kind == "batchnorm" and i >= 2:
            continue                                # running statistics
        def cost(value, param=param):
            saved = param.copy()
            param[...] = value
            c = net.train_step_grads(x, y, sw, 0.01)
            param[...] = saved
            return c
        np.testing.assert_allclose(grad, ref.numerical_grad(cost, param),
                                   rtol=1e-5, atol=1e-7)


def test_cost_is_weighted_mean_log_likelihood():
    rng = np.random.RandomState(1)
    net = _net((1, 4, 4), 2, ((2, 3),), "valid", "max", 2, (3,),
                        "relu", 0.0, rng, np.float64)
    x = rng.standard_normal((3, 1, 4, 4))
    y = np.array([0, 1, 1])
    sw = np.array([1.0, 2.0, 0.0])
    cost = net.train_step_grads(x, y, sw, alpha=0.0)
    log_p = net.predict_log_proba(x)
    expected = -(log_p[0, 0] * 1.0 + log_p[1, 1] * 2.0) / 3.0
    assert cost == pytest.approx(expected, rel=1e-12)


def test_kernels_and_windows_shrink_to_small_inputs():
    net = _net((1, 1, 7), 2, ((4, 5), (6, 5)), "valid", "max", 2, (3,),
                        "relu", 0.0, np.random.RandomState(0), np.float32)
    shapes = [row["output_shape"] for row in net.summary()]
    assert shapes[1] == (4, 1, 3)      # 1x5 kernel on the 1x7 strip
    assert net.layers[0].weight.shape == (4, 1, 1, 5)
    assert shapes[2] == (4, 1, 1)      # 1x2 pooling window
    conv2 = net.layers[2]
    assert conv2.weight.shape == (6, 4, 1, 1)  # shrunk to the 1x1 map


def _layer_by_layer(net):
    """Make ``net`` run every layer on its own, as the fused stages would
    without fusion."""
    net.set_fusion(False)
    return net


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "identity"])
@pytest.mark.parametrize("case", [
    # image, conv layers, padding, pool size
    ((1, 12, 12), ((3, 5), (4, 3)), "valid", 2),
    ((2, 11, 9), ((3, 3), (5, (2, 3), (1, 2))), "same", 2),   # ragged edges
    ((3, 13, 10), ((4, 3),), "same", 3),
    ((1, 9, 14), ((2, 2), (3, 1)), "valid", (2, 3)),          # 1x1 conv
])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_fused_conv_pool_is_bit_identical_to_the_layers_in_turn(
        dtype, activation, case, n_threads):
    # The network runs a convolution and the max pooling after it as one
    # kernel; its scores, every gradient and the input gradient must be the
    # ones of the two layers run one after the other, bit for bit.
    image, convs, padding, pool_size = case
    nets = []
    for fused in (True, False):
        net = _net(image, 3, convs, padding, "max", pool_size, (6,),
                   activation, 0.0, np.random.RandomState(0), dtype)
        net.layers[0].input_grad = True
        net.set_threads(n_threads)
        nets.append(net if fused else _layer_by_layer(net))
    assert sum(pool is not None for _, pool, _ in nets[0]._stages()) == len(convs)
    rng = np.random.RandomState(1)
    x = rng.standard_normal((7,) + image).astype(dtype)
    # Ties inside pooling windows (the first maximum takes the gradient).
    x[:, :, ::2, ::3] = 0.5
    y = rng.randint(0, 3, 7)
    sw = rng.uniform(0.5, 2.0, 7)
    results = []
    for net in nets:
        cost = net.train_step_grads(x, y, sw, 0.01)
        dx = net.layers[0]._buffers["dx"].copy()
        results.append((cost, net.flat_grads.copy(), dx,
                        net.forward(x, training=False)))
    (c1, g1, d1, s1), (c2, g2, d2, s2) = results
    assert c1 == c2
    np.testing.assert_array_equal(g1, g2)
    np.testing.assert_array_equal(d1, d2)
    np.testing.assert_array_equal(s1, s2)
    assert np.any(g1 != 0)


def test_fused_conv_pool_propagates_nan_like_the_layers_in_turn():
    # A NaN reaching a pooling window pools to NaN in the fused pass too.
    net = _net((1, 8, 8), 2, ((2, 3),), "valid", "max", 2, (), "relu", 0.0,
               np.random.RandomState(0), np.float32)
    x = np.random.RandomState(1).standard_normal((2, 1, 8, 8)).astype(np.float32)
    x[1, 0, 3, 3] = np.nan
    fused = net.forward(x)
    plain = _layer_by_layer(net).forward(x)
    np.testing.assert_array_equal(np.isnan(fused), np.isnan(plain))
    assert np.isnan(fused[1]).all() and not np.isnan(fused[0]).any()


@pytest.mark.parametrize("conv_layers, hidden", [
    (((3, 3), (4, 3), "gap"), ()),                   # all-convolutional
    (((3, 3), "pool", (4, (2, 3)), "gap"), (5,)),
    (((3, 3), "gap", (4, 1)), ()),                   # a convolution after it
    (("gap",), (5,)),                                # pooling the input
])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_global_average_pooling_gradient_matches_central_differences(conv_layers, hidden,
                                                                     batch_norm):
    rng = np.random.RandomState(0)
    spec = build_spec((2, 8, 7), 3, conv_layers, "same", "avg", 2, hidden, "tanh",
                      0.0, batch_norm=batch_norm and conv_layers != ("gap",))
    assert [layer.kind for layer in spec.layers].count("gap") == 1
    net = build_network(spec, rng, np.float64)
    for p in net.params:
        p += rng.uniform(0.05, 0.2, p.shape)
    _check_parameter_gradients(net, rng)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 5, 7, 6), (1, 2, 1, 1), (2, 3, 1, 9)])
def test_global_average_pooling_layer_against_numpy(dtype, shape):
    from pyconvnet._layers import GlobalAvgPool2D
    from pyconvnet._spec import GlobalAvgPoolSpec

    rng = np.random.RandomState(1)
    x = rng.standard_normal(shape).astype(dtype)
    layer = GlobalAvgPool2D(GlobalAvgPoolSpec(shape[1:]))
    y = layer.forward(x, training=True)
    assert y.shape == (shape[0], shape[1], 1, 1)
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y[:, :, 0, 0], x.mean(axis=(2, 3)), rtol=tol, atol=tol)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = layer.backward(dy)
    np.testing.assert_allclose(dx, np.broadcast_to(dy / (shape[2] * shape[3]), shape),
                               rtol=tol, atol=tol)
