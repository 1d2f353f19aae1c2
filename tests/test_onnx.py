"""ONNX export (pyconvnet.onnx): onnxruntime's probabilities equal
predict_proba within 1e-5 and its labels equal predict, for every layer
kind the estimator builds, alone and inside a pipeline."""
import warnings

import numpy as np
import pytest
from sklearn.datasets import make_multilabel_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

pytest.importorskip("skl2onnx")
ort = pytest.importorskip("onnxruntime")

import pyconvnet.onnx  # noqa: E402,F401  (registers the converter)
from pyconvnet import ConvNetClassifier  # noqa: E402
from skl2onnx import to_onnx  # noqa: E402


def _fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


def _run(onx, X):
    session = ort.InferenceSession(onx.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: X})


def _check(model, X_train, y_train, X_test, zipmap=False, atol=1e-5):
    """Fit, export, run; compare with predict and predict_proba."""
    _fit(model, X_train, y_train)
    final = model[-1] if hasattr(model, "steps") else model
    onx = to_onnx(model, X_test[:1], options={id(final): {"zipmap": zipmap}},
                  target_opset=17)
    labels, proba = _run(onx, X_test)
    if zipmap:
        proba = np.array([[row[c] for c in final.classes_] for row in proba])
    np.testing.assert_allclose(proba, model.predict_proba(X_test), atol=atol, rtol=0)
    np.testing.assert_array_equal(labels, model.predict(X_test))
    return onx


ARCHITECTURES = [
    dict(pooling="max", padding="same"),
    dict(pooling="l2", padding="valid"),
    dict(pooling="avg", padding="same", pool_size=(2, 1)),
    dict(pooling=None, conv_layers=((4, 3, 2), (6, (2, 3), (1, 2)))),    # strides
    dict(activation="tanh", dropout=0.3),
    dict(activation="logistic"),
    dict(activation="identity", pooling="l2"),
    dict(batch_norm=True, pooling="max"),
    dict(batch_norm=True, activation="tanh", padding="valid", pooling="avg"),
    # blocks: pooling only where written
    dict(conv_layers=((4, 3), (4, 3), "pool", (6, 3)), pooling="max"),
    dict(conv_layers=("pool", (4, 3), (6, 3), "pool"), batch_norm=True, pooling="l2"),
    # global average pooling, all-convolutional (GlobalAveragePool)
    dict(conv_layers=((4, 3), "pool", (6, 3), "gap"), hidden_layer_sizes=()),
    dict(conv_layers=((4, 3), (6, 3), "gap"), batch_norm=True),
]


@pytest.mark.parametrize("params", ARCHITECTURES)
def test_layers_round_trip(params, digits):
    X, y = digits
    params = {"conv_layers": ((4, 3), (6, 3)), "hidden_layer_sizes": (16,),
              "max_iter": 3, "random_state": 0, **params}
    _check(ConvNetClassifier(**params), X[:400], y[:400], X[400:700])


def test_three_channels_string_labels_in_a_pipeline():
    rng = np.random.RandomState(0)
    X = rng.rand(300, 3 * 10 * 10).astype(np.float32) * 255
    y = np.array(["cat", "dog", "eel"])[
        (X[:, :50].sum(axis=1) > X[:, 50:100].sum(axis=1)).astype(int) + (X[:, 0] > 128)]
    pipe = make_pipeline(MinMaxScaler(), ConvNetClassifier(
        conv_layers=((5, 3),), image_shape=(3, 10, 10), batch_norm=True,
        max_iter=3, random_state=0))
    _check(pipe, X[:200], y[:200], X[200:])
    assert pipe[-1].image_shape_ == (3, 10, 10)


def test_zipmap_output(digits):
    X, y = digits
    model = ConvNetClassifier(conv_layers=((4, 3),), max_iter=2, random_state=0)
    _check(model, X[:300], y[:300], X[300:400], zipmap=True)


def test_float64_model(digits):
    """A float64 model exports too; the graph computes in float32."""
    X, y = digits
    model = ConvNetClassifier(conv_layers=((4, 3),), max_iter=2, random_state=0)
    _check(model, X[:300].astype(np.float64), y[:300],
           X[300:400].astype(np.float64))
    assert model._dtype == np.float64


def test_binary_and_boolean_labels(digits):
    X, y = digits
    model = ConvNetClassifier(conv_layers=((4, 3),), max_iter=2, random_state=0)
    _check(model, X[:300], y[:300] > 4, X[300:400])


def test_multilabel():
    X, Y = make_multilabel_classification(n_samples=120, n_features=16, n_classes=4,
                                          random_state=0)
    X = X.astype(np.float32)
    model = _fit(ConvNetClassifier(conv_layers=((6, 3),), max_iter=20, random_state=0),
                 X[:80], Y[:80])
    onx = to_onnx(model, X[:1], options={id(model): {"zipmap": False}}, target_opset=17)
    labels, proba = _run(onx, X[80:])
    np.testing.assert_allclose(proba, model.predict_proba(X[80:]), atol=1e-5, rtol=0)
    np.testing.assert_array_equal(labels, model.predict(X[80:]))


def test_pipeline_round_trip_on_a_real_test_set(digits):
    """MinMaxScaler -> ConvNetClassifier through ONNX on Fashion-MNIST's
    10,000 test images when the dataset is installed (Debian's
    dataset-fashion-mnist), on the digits otherwise: equal labels, equal
    probabilities within 1e-5."""
    try:
        from pyconvnet.datasets import load_fashion_mnist

        data = load_fashion_mnist()          # rows of pixels, for MinMaxScaler
        X_train, y_train = data.data[:3000] * 255, data.target[:3000]
        X_test = data.data_test * 255
    except (OSError, FileNotFoundError):
        X, y = digits
        X_train, y_train, X_test = X[:1000], y[:1000], X[1000:]
    pipe = make_pipeline(MinMaxScaler(), ConvNetClassifier(
        conv_layers=((8, 5), (16, 5)), hidden_layer_sizes=(32,), batch_norm=True,
        max_iter=1, random_state=0))
    _check(pipe, X_train, y_train, X_test.astype(np.float32))


def test_unfitted_model_raises_a_clear_error(digits):
    X, _ = digits
    with pytest.raises(ValueError, match="not fitted"):
        to_onnx(ConvNetClassifier(), X[:1])
    with pytest.raises(ValueError, match="not fitted"):
        to_onnx(make_pipeline(MinMaxScaler().fit(X), ConvNetClassifier()), X[:1])


@pytest.mark.parametrize("n_outputs", [1, 2])
@pytest.mark.parametrize("params", [
    dict(conv_layers=((4, 3), (6, 3))),
    dict(conv_layers=((4, 3), "pool", (6, 3)), batch_norm=True, normalize_y=False),
])
def test_regressor_round_trip_in_a_pipeline(digits, n_outputs, params):
    from pyconvnet import ConvNetRegressor

    X, _ = digits
    images = X.reshape(-1, 8, 8) / 16
    # ink, and the top half's ink, in units of hundreds
    Y = np.stack([images.sum(axis=(1, 2)), images[:, :4].sum(axis=(1, 2))], axis=1) * 100
    y = Y[:, 0] if n_outputs == 1 else Y
    pipe = _fit(make_pipeline(MinMaxScaler(), ConvNetRegressor(
        hidden_layer_sizes=(16,), max_iter=3, random_state=0, **params)), X[:400], y[:400])
    for X_test in (X[400:700].astype(np.float32), X[400:700]):
        (out,) = _run(to_onnx(pipe, X_test[:1], target_opset=17), X_test)
        assert out.shape == (300, n_outputs) and out.dtype == X_test.dtype
        # float32 arithmetic on values in the hundreds
        np.testing.assert_allclose(out.reshape(pipe.predict(X_test).shape),
                                   pipe.predict(X_test), rtol=1e-5, atol=1e-3)
    with pytest.raises(ValueError, match="ConvNetRegressor is not fitted"):
        to_onnx(ConvNetRegressor(), X[:1])


@pytest.mark.parametrize("factor", [1e-30, 1e30, 1e160])
def test_regressor_targets_in_any_unit_export(digits, factor):
    """The standardisation is undone in the output's type: tiny and huge
    units export; units beyond float32's range need float64 input and are
    refused with float32 input."""
    from pyconvnet import ConvNetRegressor

    X, _ = digits
    y = X[:300].astype(np.float64).reshape(-1, 8, 8)[:, 2:6, 2:6].sum(axis=(1, 2)) * factor
    model = _fit(ConvNetRegressor(conv_layers=((4, 3),), hidden_layer_sizes=(8,),
                                  max_iter=2, dtype="float64", random_state=0),
                 X[:300].astype(np.float64), y)
    X_test = X[300:400].astype(np.float64)
    (out,) = _run(to_onnx(model, X_test[:1], target_opset=17), X_test)
    np.testing.assert_allclose(out.ravel(), model.predict(X_test), rtol=1e-4,
                               atol=1e-4 * np.abs(y).max())
    X32 = X_test.astype(np.float32)
    if factor > 1e38:
        with pytest.raises(ValueError, match="float64 input"):
            to_onnx(model, X32[:1], target_opset=17)
    else:
        (out,) = _run(to_onnx(model, X32[:1], target_opset=17), X32)
        np.testing.assert_allclose(out.ravel(), model.predict(X_test), rtol=1e-4,
                                   atol=1e-4 * np.abs(y).max())
