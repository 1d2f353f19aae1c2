import io
import pickle
import warnings
import zipfile

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

import pyconvnet
from pyconvnet import ConvNetClassifier


@pytest.fixture(scope="module")
def fitted():
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    labels = np.array(["zero", "one", "two", "three", "four", "five", "six",
                       "seven", "eight", "nine"])[y]
    model = ConvNetClassifier(conv_layers=((4, 3), (6, (2, 3), 1)), pooling="l2",
                              hidden_layer_sizes=(12, 8), dropout=0.1, max_iter=3,
                              learning_rate_init=0.01, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X[:400], labels[:400])
    return model, X


def test_save_load_predicts_bit_identically(fitted, tmp_path):
    model, X = fitted
    path = tmp_path / "model.npz"
    pyconvnet.save(model, path)
    loaded = pyconvnet.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.get_params() == model.get_params()
    assert loaded.loss_curve_ == model.loss_curve_ and loaded.n_iter_ == model.n_iter_
    assert loaded.layers_ == model.layers_
    # the archive is plain arrays: numpy reads it with pickle disabled
    with np.load(path, allow_pickle=False) as archive:
        assert "param_0" in archive.files


def test_loaded_model_keeps_training(fitted, tmp_path):
    model, X = fitted
    pyconvnet.save(model, tmp_path / "m.npz")
    loaded = pyconvnet.load(tmp_path / "m.npz")
    loaded.partial_fit(X[:50], model.predict(X[:50]))
    assert loaded.n_iter_ == 1
    assert loaded.loss_curve_ == model.loss_curve_ + loaded.loss_curve_[-1:]
    assert loaded.t_ == model.t_ + 50


def _rewrite(path, out, change):
    """Copy the npz at path to out, letting change(name, bytes) edit members."""
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            data = change(name, src.read(name))
            if data is not None:
                dst.writestr(name, data)


def test_tampered_and_truncated_files_raise(fitted, tmp_path):
    model, _ = fitted
    path = tmp_path / "model.npz"
    pyconvnet.save(model, path)
    raw = path.read_bytes()

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="model file"):
        pyconvnet.load(truncated)

    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="model file"):
        pyconvnet.load(garbage)

    def swap_shape(name, data):
        if name == "param_0.npy":
            buf = io.BytesIO()
            np.save(buf, np.zeros((3, 1, 3, 3), dtype=np.float32))
            return buf.getvalue()
        return data

    for change, match in [
        (swap_shape, "weight array 0"),
        (lambda n, d: None if n == "param_1.npy" else d, "weight arrays|weight array 1"),
        (lambda n, d: d.replace(b'"hidden_layer_sizes": [12, 8]',
                                b'"hidden_layer_sizes": [13, 8]')
         if n == "__meta__.npy" else d, "weight array"),
        (lambda n, d: d.replace(b"pyconvnet-model", b"pyconvnet-xxxxx")
         if n == "__meta__.npy" else d, "not a pyconvnet model"),
        (lambda n, d: None if n == "__meta__.npy" else d, "no metadata"),
    ]:
        bad = tmp_path / "bad.npz"
        _rewrite(path, bad, change)
        with pytest.raises(ValueError, match=match):
            pyconvnet.load(bad)

    # an object array (which would need pickle) is refused, not unpickled
    def pickled(name, data):
        if name == "classes.npy":
            buf = io.BytesIO()
            np.save(buf, np.array([print, print], dtype=object), allow_pickle=True)
            return buf.getvalue()
        return data

    bad = tmp_path / "pickled.npz"
    _rewrite(path, bad, pickled)
    with pytest.raises(ValueError):
        pyconvnet.load(bad)


def test_save_rejects_unfitted_and_wrong_objects(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        pyconvnet.save(ConvNetClassifier(), tmp_path / "x.npz")
    with pytest.raises(TypeError):
        pyconvnet.save(object(), tmp_path / "x.npz")


def test_pickle_from_another_version_warns(fitted):
    model, X = fitted
    state = pickle.dumps(model)
    restored = pickle.loads(state)
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))
    tampered = state.replace(pyconvnet.__version__.encode(), b"0.0.9")
    with pytest.warns(UserWarning, match="pyconvnet 0.0.9"):
        pickle.loads(tampered)


def _round_trips(model, tmp_path):
    import joblib

    yield "pickle", pickle.loads(pickle.dumps(model))
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    yield "joblib", joblib.load(path)
    path = tmp_path / "model.npz"
    pyconvnet.save(model, path)
    yield "save/load", pyconvnet.load(path)


@pytest.mark.parametrize("how", ["pickle", "joblib", "save/load"])
@pytest.mark.parametrize("warm", ["partial_fit", "warm_start"])
def test_training_after_a_round_trip_changes_what_predicts(fitted, tmp_path,
                                                           how, warm):
    """One owner per parameter: after any round trip, training moves the
    weights that predict, and coefs_ / intercepts_ follow them."""
    model, X = fitted
    loaded = dict(_round_trips(model, tmp_path))[how]
    before = loaded.predict_proba(X[:50])
    coef_before = [c.copy() for c in loaded.coefs_]
    y = model.classes_[np.arange(100) % len(model.classes_)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if warm == "partial_fit":
            loaded.partial_fit(X[:100], y)
        else:
            loaded.set_params(warm_start=True, max_iter=1).fit(X[:100], y)
    after = loaded.predict_proba(X[:50])
    assert np.abs(after - before).max() > 1e-6
    net = loaded._network
    for coef, intercept, layer in zip(loaded.coefs_, loaded.intercepts_,
                                      [l for l in net.layers if l.params]):
        assert np.shares_memory(coef, net.flat_params)
        assert np.shares_memory(intercept, net.flat_params)
        assert coef is layer.weight and intercept is layer.bias
    assert any(np.abs(c - b).max() > 0 for c, b in zip(loaded.coefs_, coef_before))
    # the original model is untouched by training its copy
    np.testing.assert_array_equal(model.predict_proba(X[:50]),
                                  fitted[0].predict_proba(X[:50]))
