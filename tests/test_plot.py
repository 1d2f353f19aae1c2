"""pyconvnet.plot, headless (matplotlib's Agg canvas): what each figure
draws — the number of panels, their images' shapes, titles and labels."""
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from pyconvnet import ConvNetClassifier  # noqa: E402
from pyconvnet.plot import (plot_feature_maps, plot_filters,  # noqa: E402
                            plot_learning_curves)


def _fit(X, y, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return ConvNetClassifier(**{"conv_layers": ((6, 3), (12, 3)),
                                    "hidden_layer_sizes": (16,), "max_iter": 3,
                                    "random_state": 0, **params}).fit(X, y)


@pytest.fixture(scope="module")
def model(digits):
    return _fit(*digits, early_stopping=True)


def _images(fig):
    return [ax.get_images()[0].get_array() for ax in fig.axes if ax.get_images()]


def test_plot_filters_first_layer(model):
    fig = plot_filters(model)
    images = _images(fig)
    assert len(images) == 6
    assert all(img.shape == (3, 3) for img in images)
    np.testing.assert_allclose(images[2], model.coefs_[0][2, 0])
    assert [ax.get_title() for ax in fig.axes if ax.get_images()] == [str(i) for i in range(6)]
    assert "conv layer 0" in fig._suptitle.get_text()
    fig.canvas.draw()   # renders without a display


def test_plot_filters_deeper_layer_channels_and_limits(model):
    fig = plot_filters(model, layer=-1, max_filters=5)
    images = _images(fig)
    assert len(images) == 5
    np.testing.assert_allclose(images[0], model.coefs_[1][0].mean(axis=0), rtol=1e-6)
    assert "mean over 6 input channels" in fig._suptitle.get_text()
    fig = plot_filters(model, layer=1, channel=4)
    np.testing.assert_allclose(_images(fig)[3], model.coefs_[1][3, 4])
    for kwargs, error in [(dict(layer=2), ValueError), (dict(layer=-3), ValueError),
                          (dict(layer=1.0), TypeError), (dict(layer=1, channel=6), ValueError),
                          (dict(max_filters=0), ValueError)]:
        with pytest.raises(error):
            plot_filters(model, **kwargs)


def test_plot_filters_rgb():
    rng = np.random.RandomState(0)
    X = rng.rand(40, 3, 8, 8).astype(np.float32)
    y = np.arange(40) % 2
    fig = plot_filters(_fit(X, y))
    images = _images(fig)
    assert len(images) == 6 and images[0].shape == (3, 3, 3)
    assert 0 <= images[0].min() and images[0].max() <= 1
    assert "RGB" in fig._suptitle.get_text()


def test_plot_feature_maps(model, digits):
    X, _ = digits
    fig = plot_feature_maps(model, X[0], max_maps=4)
    rows = [ax.get_title(loc="left") for ax in fig.axes if ax.get_title(loc="left")]
    assert rows == ["input: 1x8x8", "conv 6@3x3 pad 1x1, relu: 6x8x8",
                    "max-pool 2x2: 6x4x4", "conv 12@3x3 pad 1x1, relu: 12x4x4",
                    "max-pool 2x2: 12x2x2"]
    images = _images(fig)
    assert len(images) == 1 + 4 * 4
    np.testing.assert_allclose(images[0], X[0].reshape(8, 8))
    # The maps are the network's own activations.
    first = model._network.layers[0].forward(X[:1].reshape(1, 1, 8, 8), training=False)
    np.testing.assert_allclose(images[1], first[0, 0], rtol=1e-6)
    # (H, W) and (C, H, W) images are the same sample.
    again = _images(plot_feature_maps(model, X[0].reshape(8, 8), max_maps=4))
    np.testing.assert_array_equal(again[5], images[5])
    with pytest.raises(ValueError, match="one sample"):
        plot_feature_maps(model, X[:2])
    with pytest.raises(ValueError, match="max_maps"):
        plot_feature_maps(model, X[0], max_maps=0)


def test_plot_feature_maps_shows_batch_norm_output(digits):
    X, y = digits
    model = _fit(X[:300], y[:300], batch_norm=True)
    fig = plot_feature_maps(model, X[0])
    rows = [ax.get_title(loc="left") for ax in fig.axes if ax.get_title(loc="left")]
    assert rows[1] == "batch-norm, relu: 6x8x8" and len(rows) == 5


def test_plot_feature_maps_of_a_block_network(digits):
    X, y = digits
    model = _fit(X[:300], y[:300], conv_layers=((4, 3), (4, 3), "pool", (6, 3)))
    fig = plot_feature_maps(model, X[0])
    rows = [ax.get_title(loc="left") for ax in fig.axes if ax.get_title(loc="left")]
    assert rows[1:] == ["conv 4@3x3 pad 1x1, relu: 4x8x8", "conv 4@3x3 pad 1x1, relu: 4x8x8",
                        "max-pool 2x2: 4x4x4", "conv 6@3x3 pad 1x1, relu: 6x4x4"]


def test_plot_feature_maps_up_to_global_average_pooling(digits):
    X, y = digits
    model = _fit(X[:300], y[:300], conv_layers=((4, 3), "pool", (6, 3), "gap"),
                 batch_norm=True, hidden_layer_sizes=())
    fig = plot_feature_maps(model, X[0])
    rows = [ax.get_title(loc="left") for ax in fig.axes if ax.get_title(loc="left")]
    # each convolution shown after its batch norm; the maps' means last
    assert rows[1:] == ["batch-norm, relu: 4x8x8", "max-pool 2x2: 4x4x4",
                        "batch-norm, relu: 6x4x4", "global avg-pool: 6x1x1"]
    assert len(plot_filters(model, layer=-1).axes) >= 6


def test_plot_learning_curves(model, digits):
    fig = plot_learning_curves(model)
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), model.loss_curve_)
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "training loss"
    assert len(fig.axes) == 2   # validation accuracy on a twin axis
    np.testing.assert_allclose(fig.axes[1].lines[0].get_ydata(), model.validation_scores_)
    X, y = digits
    plain = _fit(X[:200], y[:200])
    assert len(plot_learning_curves(plain).axes) == 1
    with pytest.raises(Exception):
        plot_learning_curves(ConvNetClassifier())


def test_pictures_of_a_regressor(digits):
    from pyconvnet import ConvNetRegressor

    X, _ = digits
    ink = X.reshape(-1, 64).sum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = ConvNetRegressor(conv_layers=((4, 3), "pool", (6, 3)), hidden_layer_sizes=(8,),
                                 max_iter=12, early_stopping=True,
                                 n_iter_no_change=20, random_state=0).fit(X[:400], ink[:400])
    assert len(_images(plot_filters(model))) == 4
    rows = [ax.get_title(loc="left") for ax in plot_feature_maps(model, X[0]).axes
            if ax.get_title(loc="left")]
    assert rows[1:] == ["conv 4@3x3 pad 1x1, relu: 4x8x8", "max-pool 2x2: 4x4x4",
                        "conv 6@3x3 pad 1x1, relu: 6x4x4"]
    fig = plot_learning_curves(model)
    assert fig.axes[1].get_ylabel() == "validation R²"
    np.testing.assert_allclose(fig.axes[1].lines[0].get_ydata(), model.validation_scores_)


@pytest.mark.parametrize("shape, bad", [
    ((3, 5, 5), (5, 5, 3)), ((3, 5, 5), (75,  1)), ((1, 4, 6), (6, 4)),
    ((1, 4, 6), (2, 12)), ((1, 4, 6), (1, 6, 4)), ((2, 3, 4), (2, 12)),
])
def test_plot_feature_maps_checks_the_shape_not_only_the_size(shape, bad):
    rng = np.random.RandomState(0)
    X = rng.rand(20, *shape).astype(np.float32)
    model = _fit(X, np.arange(20) % 2)
    image = X[0]
    with pytest.raises(ValueError, match="one sample"):
        plot_feature_maps(model, image.reshape(bad))
    # the image itself, its row and a batch of one row are accepted
    for good in (image, image.ravel(), image.reshape(1, -1)):
        first = _images(plot_feature_maps(model, good))
        np.testing.assert_array_equal(first[0], image[0])
