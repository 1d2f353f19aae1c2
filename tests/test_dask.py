"""Training from and predicting a Dask array on a local (loopback) cluster,
block by block: the results equal the in-memory run on the same blocks, and
no step computes more than a block of X."""
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import dask  # noqa: E402

from pyconvnet import ConvNetClassifier  # noqa: E402
from pyconvnet import dask as pcd  # noqa: E402

PARAMS = dict(conv_layers=((6, 3),), hidden_layer_sizes=(16,), random_state=0,
              n_threads=1)
BLOCK = 300


@pytest.fixture(scope="module")
def data():
    X, y = load_digits(return_X_y=True)
    order = np.random.RandomState(0).permutation(len(y))
    return (X[order] / 16).astype(np.float32), y[order]


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        yield c


@pytest.fixture
def computed_rows(monkeypatch):
    """The row counts of every dask.compute call made by pyconvnet.dask."""
    seen = []
    compute = dask.compute

    def recording(*args, **kwargs):
        out = compute(*args, **kwargs)
        seen.extend(a.shape[0] for a in out if hasattr(a, "shape") and a.ndim)
        return out

    monkeypatch.setattr(pcd.dask, "compute", recording)
    return seen


def _in_memory(X, y, epochs, classes):
    model = ConvNetClassifier(**PARAMS)
    for _ in range(epochs):
        for lo in range(0, len(y), BLOCK):
            model.partial_fit(X[lo:lo + BLOCK], y[lo:lo + BLOCK], classes=classes)
    return model


def test_partial_fit_from_dask_equals_in_memory(client, data, computed_rows):
    X, y = data
    classes = np.arange(10)
    Xd = da.from_array(X, chunks=(BLOCK, -1))
    yd = da.from_array(y, chunks=BLOCK)
    model = pcd.partial_fit(ConvNetClassifier(**PARAMS), Xd, yd, classes=classes,
                            epochs=2)
    expected = _in_memory(X, y, 2, classes)
    np.testing.assert_array_equal(model._network.flat_params,
                                  expected._network.flat_params)
    assert model.t_ == 2 * len(y)
    # one block at a time, never the whole X
    assert computed_rows and max(computed_rows) <= BLOCK
    assert len(computed_rows) == 2 * 2 * Xd.numblocks[0]     # X and y per block


def test_predict_dask_array_in_parallel(client, data):
    X, y = data
    model = _in_memory(X[:900], y[:900], 1, np.arange(10))
    Xd = da.from_array(X, chunks=(BLOCK, -1))
    proba = pcd.predict_proba(model, Xd)
    labels = pcd.predict(model, Xd)
    assert isinstance(proba, da.Array) and proba.numblocks == (Xd.numblocks[0], 1)
    assert labels.chunks[0] == Xd.chunks[0]
    np.testing.assert_allclose(proba.compute(), model.predict_proba(X), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(labels.compute(), model.predict(X))
    log_proba = pcd.predict_log_proba(model, Xd).compute()
    np.testing.assert_allclose(log_proba, model.predict_log_proba(X), rtol=1e-5, atol=1e-6)


def test_images_multilabel_weights_and_in_memory_targets(client, data):
    X, y = data
    images = da.from_array(X.reshape(-1, 8, 8), chunks=(BLOCK, 4, 8))  # split columns
    Y = np.stack([y % 2, y > 4, y == 0], axis=1).astype(int)
    w = np.linspace(0.5, 2, len(y))
    model = pcd.partial_fit(ConvNetClassifier(**PARAMS), images, Y, sample_weight=w,
                            shuffle_blocks=True, random_state=0)
    assert model.out_activation_ == "logistic"
    predicted = pcd.predict(model, images).compute()
    np.testing.assert_array_equal(predicted, model.predict(X.reshape(-1, 8, 8)))
    assert predicted.shape == Y.shape


def test_bad_input():
    model = ConvNetClassifier(**PARAMS)
    with pytest.raises(TypeError, match="dask array"):
        pcd.partial_fit(model, np.zeros((10, 4)), np.zeros(10))
    Xd = da.zeros((10, 4), chunks=5)
    with pytest.raises(ValueError, match="rows"):
        pcd.partial_fit(model, Xd, np.zeros(9), classes=[0, 1])
    with pytest.raises(ValueError, match="epochs"):
        pcd.partial_fit(model, Xd, np.zeros(10), classes=[0, 1], epochs=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.raises(Exception):
            pcd.predict(model, Xd)      # not fitted


@pytest.mark.parametrize("shape, chunks", [
    ((-1, 2, 4, 8), (BLOCK, 1, 2, 8)),      # 2 channels, split everywhere
    ((-1, 4, 4, 4), (BLOCK, 2, 4, 4)),
    ((-1, 8, 8), (BLOCK, 4, 4)),            # 3-D, columns split
    ((-1, 8, 8), (BLOCK, 8, 8)),
])
def test_images_of_any_shape_predict_one_task_per_row_block(data, shape, chunks):
    X, y = data
    images = X.reshape(shape)
    Y = np.stack([y % 2, y > 4, y == 0], axis=1).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        single = ConvNetClassifier(max_iter=2, **PARAMS).fit(images[:600], y[:600])
        multi = ConvNetClassifier(max_iter=2, **PARAMS).fit(images[:600], Y[:600])
    Xd = da.from_array(images, chunks=chunks)
    n_blocks = Xd.numblocks[0]
    for model, method in [(single, "predict_proba"), (single, "predict_log_proba"),
                          (single, "predict"), (multi, "predict"),
                          (multi, "predict_proba")]:
        lazy = getattr(pcd, method)(model, Xd)
        assert lazy.numblocks[0] == n_blocks and lazy.chunks[0] == Xd.chunks[0]
        out = lazy.compute(scheduler="sync")
        expected = getattr(model, method)(images)
        if method == "predict":
            np.testing.assert_array_equal(out, expected)
        else:
            np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("drop", ["thirds", "second block"])
def test_unknown_chunk_sizes_after_a_boolean_mask(data, drop):
    X, y = data
    mask = y % 3 != 0
    if drop == "second block":         # a block the mask empties
        mask = np.ones(len(y), bool)
        mask[BLOCK:2 * BLOCK] = False
    keep = da.from_array(mask, chunks=BLOCK)
    Xd = da.from_array(X, chunks=(BLOCK, 64))[keep]
    yd = da.from_array(y, chunks=BLOCK)[keep]
    assert np.isnan(Xd.chunks[0][0])
    model = pcd.partial_fit(ConvNetClassifier(**PARAMS), Xd, yd, classes=np.arange(10))
    expected = _in_memory_blocks(X, y, mask)
    np.testing.assert_array_equal(model.coefs_[0], expected.coefs_[0])
    pcd.partial_fit(model, Xd, y[mask])      # an in-memory y is cut to X's blocks
    assert model.t_ == 2 * mask.sum()
    proba = pcd.predict_proba(model, Xd).compute(scheduler="sync")
    np.testing.assert_allclose(proba, model.predict_proba(X[mask]), rtol=1e-5, atol=1e-7)
    labels = pcd.predict(model, Xd).compute(scheduler="sync")
    np.testing.assert_array_equal(labels, model.predict(X[mask]))


def _in_memory_blocks(X, y, mask):
    """partial_fit on the masked rows of each block of BLOCK rows in turn."""
    model = ConvNetClassifier(**PARAMS)
    for lo in range(0, len(y), BLOCK):
        rows = np.flatnonzero(mask[lo:lo + BLOCK]) + lo
        if len(rows):
            model.partial_fit(X[rows], y[rows], classes=np.arange(10))
    return model


def test_the_model_enters_the_graph_once(data):
    """Every task refers to one copy of the model: serialised task by task,
    as a distributed scheduler ships them, the graph holds the model once,
    not once per block."""
    import pickle

    cloudpickle = pytest.importorskip("cloudpickle")
    X, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = ConvNetClassifier(max_iter=1, **PARAMS).fit(X[:300], y[:300])
    model_bytes = len(pickle.dumps(model))
    for method in ("predict", "predict_proba"):
        Xd = da.zeros((400, 8, 8), chunks=(10, 8, 8), dtype=np.float32)
        lazy = getattr(pcd, method)(model, Xd)
        tasks = [task for key, task in dict(lazy.__dask_graph__()).items()
                 if key[0] == lazy.name]          # the predicting tasks
        assert len(tasks) == Xd.numblocks[0] == 40
        # A task that carried the model would be larger than the model.
        assert max(len(cloudpickle.dumps(task)) for task in tasks) < model_bytes / 4, method


@pytest.mark.parametrize("n_outputs", [1, 2])
def test_regressor_out_of_core_equals_in_memory_and_predicts_lazily(client, data,
                                                                     n_outputs):
    from pyconvnet import ConvNetRegressor

    X, y = data
    images = X.reshape(-1, 8, 8)
    Y = np.stack([images.sum(axis=(1, 2)) * 10, images[:, :4].sum(axis=(1, 2))], axis=1)
    Y = Y[:, 0] if n_outputs == 1 else Y
    Xd = da.from_array(images, chunks=(BLOCK, 8, 8))
    model = pcd.partial_fit(ConvNetRegressor(**PARAMS), Xd,
                            da.from_array(Y, chunks=BLOCK if n_outputs == 1 else (BLOCK, 2)),
                            epochs=2)
    expected = ConvNetRegressor(**PARAMS)
    for _ in range(2):
        for lo in range(0, len(Y), BLOCK):
            expected.partial_fit(images[lo:lo + BLOCK], Y[lo:lo + BLOCK])
    np.testing.assert_array_equal(model._network.flat_params,
                                  expected._network.flat_params)
    np.testing.assert_array_equal(model.y_mean_, expected.y_mean_)
    lazy = pcd.predict(model, Xd)
    assert isinstance(lazy, da.Array) and lazy.chunks[0] == Xd.chunks[0]
    predicted = lazy.compute()
    assert predicted.shape == np.shape(Y)
    np.testing.assert_array_equal(predicted, model.predict(images))
    with pytest.raises(ValueError, match="classes is for classifiers"):
        pcd.partial_fit(ConvNetRegressor(**PARAMS), Xd, Y, classes=[0, 1])
    # What the regressor lacks is refused at the call, as the estimator
    # refuses it, not when the lazy result is computed.
    for method in ("predict_proba", "predict_log_proba"):
        with pytest.raises(AttributeError, match=method):
            getattr(pcd, method)(model, Xd)
        with pytest.raises(AttributeError, match=method):
            getattr(pcd, method)(ConvNetRegressor(**PARAMS), Xd)
