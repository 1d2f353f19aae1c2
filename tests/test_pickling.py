"""Serialising a model never changes it, and a model file carries where
training stands, as a pickle does."""
import copy
import pickle
import warnings

import joblib
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import pyconvnet
from pyconvnet import ConvNetClassifier
from pyconvnet._threads import ThreadGovernor


def _fit(X, y, **params):
    model = ConvNetClassifier(**{"conv_layers": ((4, 3),), "hidden_layer_sizes": (8,),
                                 "max_iter": 2, "random_state": 0, **params})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


def _objects(model):
    """Every object of the package a fitted model holds."""
    objects = [model, model._network, model._optimizer, model._governor]
    return objects + list(model._network.layers)


def _snapshot(objects):
    """Each object's attribute names and the identity of their values."""
    return [(type(o).__name__, {k: id(v) for k, v in vars(o).items()}) for o in objects]


def _dask_graph(model, X):
    """pyconvnet.dask.predict_proba's lazy result, its graph pickled as a
    distributed scheduler ships it to the workers."""
    da = pytest.importorskip("dask.array")
    from pyconvnet import dask as pcd

    proba = pcd.predict_proba(model, da.from_array(X, chunks=100))
    pickle.dumps(dict(proba.__dask_graph__()))
    return proba


SERIALISERS = {
    "pickle": lambda m, tmp: pickle.loads(pickle.dumps(m)),
    "joblib": lambda m, tmp: (joblib.dump(m, tmp / "m.joblib"),
                              joblib.load(tmp / "m.joblib"))[1],
    "deepcopy": lambda m, tmp: copy.deepcopy(m),
    "copy": lambda m, tmp: copy.copy(m),
    "dask": lambda m, tmp: m,
}


@pytest.mark.parametrize("how", sorted(SERIALISERS))
@pytest.mark.parametrize("params", [
    {}, {"batch_norm": True, "dropout": 0.3, "solver": "sgd",
         "learning_rate": "cosine", "hidden_layer_sizes": (8, 6)},
])
def test_serialising_leaves_every_object_as_it_was(digits, tmp_path, how, params):
    X, y = digits
    model = _fit(X[:300], y[:300], **params)
    expected = model.predict_proba(X[:300])
    objects = _objects(model)
    before = _snapshot(objects)
    if how == "dask":
        proba = _dask_graph(model, X[:300])
        assert _snapshot(objects) == before
        np.testing.assert_allclose(proba.compute(scheduler="sync"), expected, rtol=1e-5)
    else:
        other = SERIALISERS[how](model, tmp_path)
        assert _snapshot(objects) == before
        np.testing.assert_array_equal(other.predict_proba(X[:300]), expected)
    # The fitted attributes are still there and still the network's weights.
    assert model.coefs_[0] is not None and len(model.intercepts_) == len(model.coefs_)
    assert np.shares_memory(model.coefs_[0], model._network.flat_params)
    np.testing.assert_array_equal(model.predict_proba(X[:300]), expected)


def test_each_object_pickles_alone_without_change(digits):
    X, y = digits
    model = _fit(X[:200], y[:200], batch_norm=True, dropout=0.2)
    for obj in _objects(model):
        before = _snapshot([obj])
        pickle.dumps(obj)
        copy.deepcopy(obj)
        assert _snapshot([obj]) == before, type(obj).__name__
    assert isinstance(model._governor, ThreadGovernor)


def _loaded(model, path):
    pyconvnet.save(model, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return pyconvnet.load(path)


@pytest.mark.parametrize("params", [
    {"learning_rate": "cosine", "max_iter": 4},
    {"solver": "sgd", "learning_rate": "adaptive", "learning_rate_init": 0.05,
     "tol": 10.0, "n_iter_no_change": 1, "max_iter": 6},
    {"solver": "sgd", "learning_rate": "invscaling"},
    {"solver": "adam"},
])
def test_a_loaded_model_continues_as_a_pickled_copy(digits, tmp_path, params):
    """The schedule's position, a decayed rate, Adam's step count and
    moments: a file carries them as a pickle does. (shuffle=False: the
    random state restarts from random_state on load, by design.)"""
    X, y = digits
    X, y = X[:256], y[:256]
    model = ConvNetClassifier(conv_layers=((4, 3),), hidden_layer_sizes=(8,),
                              shuffle=False, random_state=0, **params)
    for _ in range(2):
        model.partial_fit(X, y, classes=np.unique(y))
    pickled = pickle.loads(pickle.dumps(model))
    loaded = _loaded(model, tmp_path / "m.npz")
    for other in (pickled, loaded):
        for _ in range(2):
            other.partial_fit(X, y)
    np.testing.assert_array_equal(loaded._network.flat_params,
                                  pickled._network.flat_params)
    assert loaded._optimizer.get_state()[0] == pickled._optimizer.get_state()[0]
    assert not hasattr(loaded, "feature_names_in_")


def test_a_file_without_optimizer_state_still_loads(digits, tmp_path):
    """Files written before the optimizer was saved: a fresh optimizer."""
    import io
    import json
    import zipfile

    X, y = digits
    model = _fit(X[:200], y[:200])
    pyconvnet.save(model, tmp_path / "m.npz")
    with zipfile.ZipFile(tmp_path / "m.npz") as src, \
            zipfile.ZipFile(tmp_path / "old.npz", "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name.startswith("optimizer_"):
                continue
            if name == "__meta__.npy":
                meta = json.loads(np.load(io.BytesIO(data)).tobytes())
                del meta["optimizer"]
                buffer = io.BytesIO()
                np.save(buffer, np.frombuffer(json.dumps(meta).encode(), np.uint8))
                data = buffer.getvalue()
            dst.writestr(name, data)
    old = pyconvnet.load(tmp_path / "old.npz")
    assert old._optimizer is None
    np.testing.assert_array_equal(old.predict_proba(X), model.predict_proba(X))
    old.partial_fit(X[:50], y[:50])
    assert old.n_iter_ == 1


@pytest.mark.parametrize("change", [{"solver": "sgd"}, {"learning_rate_init": 0.05},
                                    {"learning_rate": "cosine", "max_iter": 3}])
def test_a_file_saved_after_changing_the_solver_continues_as_a_pickle(digits, tmp_path,
                                                                      change):
    """set_params changed the optimizer's hyperparameters after training, then
    save: the file still loads, and the next partial_fit takes the new ones
    as the pickled copy's does."""
    X, y = digits
    X, y = X[:256], y[:256]
    model = ConvNetClassifier(conv_layers=((4, 3),), hidden_layer_sizes=(8,),
                              shuffle=False, random_state=0)
    model.partial_fit(X, y, classes=np.unique(y))
    model.set_params(**change)
    pickled = pickle.loads(pickle.dumps(model))
    loaded = _loaded(model, tmp_path / "m.npz")
    for other in (pickled, loaded):
        other.partial_fit(X, y)
    np.testing.assert_array_equal(loaded._network.flat_params,
                                  pickled._network.flat_params)
