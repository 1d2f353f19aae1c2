"""BaseConvNet: the one list of fitted attributes that pickling and
save/load follow, and the public methods the add-ons use."""
import json
import pickle
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError

import pyconvnet
from pyconvnet import ConvNetClassifier
from pyconvnet._base import BaseConvNet

SMALL = dict(conv_layers=((3, 3),), hidden_layer_sizes=(8,), max_iter=2,
             random_state=0, tol=0.0)


@pytest.fixture(scope="module")
def fitted():
    X, y = load_digits(return_X_y=True)
    X, y = X[:150] / 16, y[:150]
    with pytest.warns(Warning):
        model = ConvNetClassifier(**SMALL).fit(X, y)
    return model, X, y


def test_every_history_attribute_is_saved_and_restored(fitted, tmp_path):
    model, X, _ = fitted
    pyconvnet.save(model, tmp_path / "m.npz")
    with zipfile.ZipFile(tmp_path / "m.npz") as archive:
        meta = json.loads(np.load(archive.open("__meta__.npy")).tobytes())
    assert set(meta["fitted"]) == set(BaseConvNet.HISTORY_ATTRIBUTES)
    loaded = pyconvnet.load(tmp_path / "m.npz")
    for name in BaseConvNet.HISTORY_ATTRIBUTES:
        assert getattr(loaded, name) == getattr(model, name), name
    for name in BaseConvNet.DERIVED_ATTRIBUTES:
        assert hasattr(loaded, name), name


def test_pickling_drops_derived_and_machine_state_and_rebuilds_it(fitted):
    model, X, _ = fitted
    state = model.__getstate__()
    for name in BaseConvNet.DERIVED_ATTRIBUTES + BaseConvNet.MACHINE_ATTRIBUTES:
        assert name not in state, name
    for name in BaseConvNet.HISTORY_ATTRIBUTES:
        assert name in state, name
    copy = pickle.loads(pickle.dumps(model))
    for name in BaseConvNet.DERIVED_ATTRIBUTES:
        assert hasattr(copy, name), name
    # coefs_ are views of the copy's own parameters again.
    assert np.shares_memory(copy.coefs_[0], copy.network_.flat_params)
    np.testing.assert_array_equal(copy.predict_proba(X), model.predict_proba(X))


def test_training_state_restores_a_model_that_trains_on_the_same(fitted):
    model, X, y = fitted
    state = model.training_state()
    twin = ConvNetClassifier(**model.get_params())
    twin.classes_ = model.classes_
    spec = twin.network_spec(model.image_shape_, len(model.classes_),
                             model.dtype_, "softmax")
    assert spec == model.network_.spec
    twin.restore(model.image_shape_, model.dtype_.type, spec,
                 [p.copy() for p in model.network_.params], state)
    twin.n_features_in_ = model.n_features_in_
    np.testing.assert_array_equal(twin.predict_proba(X), model.predict_proba(X))
    a, b = pickle.loads(pickle.dumps(model)), twin
    # The random stream restarts from random_state in the twin: seed both.
    a._random_state = np.random.RandomState(5)
    b._random_state = np.random.RandomState(5)
    a.partial_fit(X, y)
    b.partial_fit(X, y)
    np.testing.assert_array_equal(a.network_.flat_params, b.network_.flat_params)
    with pytest.raises(ValueError, match="weight arrays for a network of"):
        ConvNetClassifier(**model.get_params()).restore(
            model.image_shape_, model.dtype_.type, spec, [], state)


def test_public_methods_need_a_fitted_model():
    model = ConvNetClassifier()
    for call in (lambda: model.network_, lambda: model.dtype_,
                 lambda: model.as_images(np.zeros((1, 4))),
                 lambda: model.training_state()):
        with pytest.raises(NotFittedError):
            call()


def test_as_images_reads_rows_as_the_fitted_images(fitted):
    model, X, _ = fitted
    images = model.as_images(X[:3])
    assert images.shape == (3, 1, 8, 8) and images.dtype == model.dtype_
    np.testing.assert_array_equal(images.reshape(3, -1), X[:3].astype(np.float32))


def test_check_params_checks_network_hyperparameters_too():
    ConvNetClassifier().check_params()
    with pytest.raises(ValueError, match="conv_layers"):
        ConvNetClassifier(conv_layers=((0, 3),)).check_params()
    with pytest.raises(ValueError, match="max_iter"):
        ConvNetClassifier(max_iter=0).check_params()
    ConvNetClassifier(conv_layers=((4, 3), (4, 3), "pool")).check_params()
    for bad, match in [(((4, 3), "Pool"), "only string"),
                       (((4, 3), ("pool",)), "each entry"),
                       (((4, 3), None), "each entry")]:
        with pytest.raises(ValueError, match=match):
            ConvNetClassifier(conv_layers=bad).check_params()
    with pytest.raises(ValueError, match="pool.* entries but pooling=None"):
        ConvNetClassifier(conv_layers=((4, 3), "pool"), pooling=None).check_params()


ADD_ONS = ("_persist.py", "onnx.py", "plot.py", "dask.py", "__main__.py")


@pytest.mark.parametrize("name", ADD_ONS)
def test_add_ons_use_only_public_estimator_methods(name):
    """The add-ons reach the estimator through its public methods (and the
    network's): no ``model._something``."""
    source = (Path(pyconvnet.__file__).parent / name).read_text()
    private = re.findall(r"\b(?:model|estimator|clf|built)\._[a-z]\w*", source)
    assert not private, private


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.bool_, np.float16,
                                   np.float32, np.float64])
def test_the_estimator_follows_the_one_precision_rule(dtype):
    """ops.result_dtype with float32 as the default decides the estimator's
    precision, as it decides ops' with float64."""
    from pyconvnet import ops

    X, y = load_digits(return_X_y=True)
    X = (X[:60] > 8) if dtype is np.bool_ else X[:60]
    with pytest.warns(Warning):
        model = ConvNetClassifier(**SMALL).fit(X.astype(dtype), y[:60])
    assert model.dtype_ == ops.result_dtype([dtype], default=np.float32)
    x = X[:2, :9].reshape(2, 1, 3, 3).astype(dtype)
    w = np.ones((1, 1, 2, 2), dtype)
    assert ops.conv2d(x, w).dtype == ops.result_dtype([dtype, dtype])


def test_layers_pickled_before_they_kept_their_spec_take_the_networks(fitted):
    """Models pickled by pyconvnet 0.2 to 0.4 have a network spec but layers
    without one (their shapes were their own then)."""
    model, X, _ = fitted
    copy = pickle.loads(pickle.dumps(model))
    for layer in copy.network_.layers:
        del layer.__dict__["spec"]
        layer.__dict__["out_shape"] = (-1,)        # an old layer's own, ignored
    old = pickle.loads(pickle.dumps(copy))
    assert [layer.spec for layer in old.network_.layers] == list(model.network_.spec.layers)
    assert old.layers_ == model.layers_
    np.testing.assert_array_equal(old.predict_proba(X), model.predict_proba(X))


def test_a_model_pickled_without_a_network_spec_predicts(fitted):
    """Models pickled by pyconvnet 0.1.0 have a network without a spec and
    convolutions without ``in_shape``: unpickling rebuilds them."""
    model, X, _ = fitted
    state = pickle.loads(pickle.dumps(model)).__getstate__()
    network = state["_network"]
    del network.spec
    for layer in network.layers:
        layer.__dict__.pop("in_shape", None)
    state["_pyconvnet_version"] = "0.1.0"
    old = ConvNetClassifier.__new__(ConvNetClassifier)
    with pytest.warns(UserWarning, match="saved by pyconvnet 0.1.0"):
        old.__setstate__(state)
    assert old.network_.spec == model.network_.spec
    np.testing.assert_array_equal(old.predict_proba(X), model.predict_proba(X))
    old.partial_fit(X, model.predict(X))


def test_each_parameter_is_documented_once_with_its_default():
    """Both estimators' docstrings list every parameter of their signature
    on its own line with the signature's default; a shared parameter's
    entry is the same text in both (written once)."""
    import inspect
    import re

    from pyconvnet import ConvNetClassifier, ConvNetRegressor

    entries = {}
    for cls in (ConvNetClassifier, ConvNetRegressor):
        doc = cls.__doc__
        params = doc[doc.index("Parameters\n"):doc.index("Attributes\n")]
        found = dict(re.findall(r"^    (\w+) : .*?, default=(.*)$", params, re.M))
        signature = inspect.signature(cls).parameters
        assert list(found) == list(signature)
        for name, parameter in signature.items():
            default = parameter.default
            assert found[name] == (f'"{default}"' if isinstance(default, str)
                                   else repr(default)), name
        blocks = re.split(r"^    (?=\w+ : )", params, flags=re.M)[1:]
        entries[cls] = {b.split(" : ")[0]: b for b in blocks}
    shared = set(entries[ConvNetClassifier]) & set(entries[ConvNetRegressor])
    assert len(shared) == len(inspect.signature(ConvNetClassifier).parameters) - 1
    different = {n for n in shared
                 if entries[ConvNetClassifier][n] != entries[ConvNetRegressor][n]}
    # only where a note says what is particular to one estimator
    assert different == {"early_stopping", "augment"}


def test_out_activation_is_documented_as_fitted(digits):
    from pyconvnet import ConvNetClassifier

    X, y = digits
    Y = np.stack([y % 2, y > 4], axis=1).astype(int)
    model = ConvNetClassifier(conv_layers=((2, 3),), hidden_layer_sizes=(4,),
                              max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert model.fit(X[:60], Y[:60]).out_activation_ == "logistic"
        assert model.fit(X[:60], y[:60]).out_activation_ == "softmax"
    doc = ConvNetClassifier.__doc__
    entry = doc[doc.index("out_activation_ :"):].split("\n    n_features_in_")[0]
    assert '"softmax"' in entry and '"logistic"' in entry and "multi-label" in entry


def test_what_the_add_ons_ask_an_estimator(digits):
    """The add-ons (save/load, ONNX, Dask, plot) ask the estimator instead of
    checking its class: the registry, its target encoding, whether it is
    multi-label, how its predictions are laid out."""
    from sklearn.exceptions import NotFittedError

    from pyconvnet import ConvNetRegressor
    from pyconvnet._base import ESTIMATORS

    assert ESTIMATORS == {"ConvNetClassifier": ConvNetClassifier,
                          "ConvNetRegressor": ConvNetRegressor}
    X, y = digits
    params = dict(conv_layers=((2, 3),), hidden_layer_sizes=(4,), max_iter=1,
                  random_state=0)
    with pytest.raises(NotFittedError):
        ConvNetClassifier().multilabel_
    Y = np.stack([y % 2, y > 4], axis=1).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        single = ConvNetClassifier(**params).fit(X[:60], y[:60])
        multi = ConvNetClassifier(**params).fit(X[:60], Y[:60])
        reg = ConvNetRegressor(**params).fit(X[:60], Y[:60].astype(float))
    assert (single.multilabel_, multi.multilabel_, reg.multilabel_) == (False, True, False)
    for model in (single, multi, reg):
        for method in ("predict", "predict_proba", "predict_log_proba"):
            if not hasattr(model, method):
                with pytest.raises(AttributeError):
                    model.prediction_layout(method)
                continue
            tail, dtype = model.prediction_layout(method)
            out = getattr(model, method)(X[:5])
            assert out.shape == (5, *tail) and out.dtype == dtype, (model, method)
