"""Golden results: the same ``random_state`` trains the same weights from one
release to the next, and files saved by an earlier release load and predict
as they did.

``tests/data/golden.npz`` holds, for each configuration below, the trained
flat parameter array and the probabilities of a few samples, written by
``python tests/test_golden.py --write`` with pyconvnet 0.1.0. The training
runs on a handful of digits for two or three epochs; the configurations
cover every pooling kind, batch norm, multi-label targets, strides, dropout,
both solvers and their schedules, sample weights, early stopping,
augmentation, float64 and ``partial_fit``.

Bit-identity holds for one build of the BLAS library and one CPU kernel of
it: the file records which (numpy's version and OpenBLAS's core), and on a
machine with another the weights are compared to a relative 1e-3 of their
scale instead (a different BLAS kernel sums in another order).

``tests/data/v1-*.npz`` are models saved by ``pyconvnet.save`` of the same
release (file format version 1), with their probabilities.

Since 0.3.0 prediction folds batch norm into the convolution before it: the
probabilities of a model with batch norm, recorded layer by layer, are met
bit for bit with the network's fusion off, and to rounding with it on; and
in training the convolution takes the batch norm's sums in its pass: the
recorded weights are met bit for bit with the batch norm's own passes
(``Network.conv_bn_stats`` off), and to rounding with them on.
"""
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

import pyconvnet
from pyconvnet import ConvNetClassifier, _network

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "golden.npz"

BASE = dict(conv_layers=((4, 3), (6, 3)), hidden_layer_sizes=(16,),
            max_iter=3, batch_size=32, random_state=7, n_threads=2,
            tol=0.0)

CONFIGS = {
    "max-sgd": dict(pooling="max", solver="sgd", learning_rate_init=0.05),
    "l2-adam-tanh-valid": dict(pooling="l2", activation="tanh",
                               padding="valid", conv_layers=((4, 3),)),
    "avg-batchnorm-cosine": dict(pooling="avg", batch_norm=True,
                                 learning_rate="cosine",
                                 learning_rate_init=0.01),
    "multilabel-logistic": dict(activation="logistic", multilabel=True),
    "strides-nopool": dict(conv_layers=((4, 3, 2), (6, (3, 2), (1, 2))),
                           pooling=None),
    "dropout-sgd-invscaling-weights": dict(
        dropout=0.3, solver="sgd", learning_rate="invscaling",
        learning_rate_init=0.1, nesterovs_momentum=False, weighted=True),
    "early-stopping-adaptive": dict(solver="sgd", learning_rate="adaptive",
                                    learning_rate_init=0.05,
                                    early_stopping=True, max_iter=4),
    "augment-float64": dict(augment="shift+flip", dtype="float64",
                            batch_norm=True, pool_size=(2, 1)),
    "partial-fit": dict(partial_fit=True),
}


def _data():
    X, y = load_digits(return_X_y=True)
    X = X[:240] / 16.0
    return X, y[:240]


def _train(name):
    options = dict(CONFIGS[name])
    multilabel = options.pop("multilabel", False)
    weighted = options.pop("weighted", False)
    partial = options.pop("partial_fit", False)
    X, y = _data()
    if multilabel:
        y = np.stack([y % 2, y >= 5, y == 0], axis=1).astype(int)
    weights = (1.0 + (np.arange(len(y)) % 3)) if weighted else None
    model = ConvNetClassifier(**{**BASE, **options})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if partial:
            for lo in range(0, len(y), 80):
                model.partial_fit(X[lo:lo + 80], y[lo:lo + 80],
                                  classes=np.arange(10))
        else:
            model.fit(X, y, sample_weight=weights)
    return model, X[:20]


def _fingerprint():
    """The numeric environment bit-identity depends on."""
    from threadpoolctl import threadpool_info
    cores = sorted(f"{i.get('internal_api')}:{i.get('architecture')}"
                   for i in threadpool_info() if i.get("user_api") == "blas")
    return f"numpy {np.__version__}; " + ", ".join(cores)


def _golden():
    if not GOLDEN.exists():
        pytest.fail(f"{GOLDEN} is missing")
    with np.load(GOLDEN, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _check_exact_proba(model, X, expected):
    """The recorded probabilities, bit for bit; with batch norm (folded at
    prediction), bit for bit layer by layer and to rounding folded."""
    if not any(layer.kind == "batchnorm" for layer in model.network_.layers):
        np.testing.assert_array_equal(model.predict_proba(X), expected)
        return
    model.network_.set_fusion(False)
    try:
        np.testing.assert_array_equal(model.predict_proba(X), expected)
    finally:
        model.network_.set_fusion(True)
    np.testing.assert_allclose(model.predict_proba(X), expected, rtol=1e-5,
                               atol=1e-7)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_training_matches_the_golden_weights(name, monkeypatch):
    golden = _golden()
    if CONFIGS[name].get("batch_norm"):
        # Since 0.3.0 a convolution takes the batch norm's sums in its own
        # pass: the same statistics to rounding. With the batch norm's own
        # two passes, training is the recorded one.
        model, X = _train(name)
        shared = model._network.flat_params
        monkeypatch.setattr(_network.Network, "conv_bn_stats", False)
        expected = golden[f"{name}/params"]
        np.testing.assert_allclose(shared, expected, rtol=0,
                                   atol=1e-5 * np.abs(expected).max())
    model, X = _train(name)
    params = model._network.flat_params
    expected = golden[f"{name}/params"]
    assert params.dtype == expected.dtype and params.shape == expected.shape
    if str(golden["fingerprint"]) == _fingerprint():
        np.testing.assert_array_equal(params, expected)
        _check_exact_proba(model, X, golden[f"{name}/proba"])
    else:
        scale = float(np.abs(expected).max())
        np.testing.assert_allclose(params, expected, rtol=0, atol=1e-3 * scale)
        np.testing.assert_allclose(model.predict_proba(X),
                                   golden[f"{name}/proba"], atol=1e-3)


SAVED = ("max-sgd", "avg-batchnorm-cosine", "multilabel-logistic",
         "strides-nopool")


@pytest.mark.parametrize("name", SAVED)
def test_files_of_format_version_1_load_and_predict_the_same(name):
    path = DATA / f"v1-{name}.npz"
    with warnings.catch_warnings():
        # The file names the release that wrote it; a later one warns.
        warnings.simplefilter("ignore", UserWarning)
        model = pyconvnet.load(path)
    golden = _golden()
    X, _ = _data()
    # The weights load exactly; the predictions are computed here, by this
    # machine's BLAS (bit for bit where it is the recording one's).
    np.testing.assert_array_equal(model._network.flat_params,
                                  golden[f"{name}/params"])
    if str(golden["fingerprint"]) == _fingerprint():
        _check_exact_proba(model, X[:20], golden[f"{name}/saved-proba"])
    else:
        np.testing.assert_allclose(model.predict_proba(X[:20]),
                                   golden[f"{name}/saved-proba"], rtol=1e-5,
                                   atol=1e-7)
    # It trains on from where it stood.
    model.partial_fit(X[:40], model.predict(X[:40]) if name.startswith("multi")
                      else _data()[1][:40])
    assert np.isfinite(model._network.flat_params).all()


def _write():
    DATA.mkdir(exist_ok=True)
    arrays = {"fingerprint": np.array(_fingerprint())}
    for name in CONFIGS:
        model, X = _train(name)
        arrays[f"{name}/params"] = model._network.flat_params
        arrays[f"{name}/proba"] = model.predict_proba(X)
        if name in SAVED:
            path = DATA / f"v1-{name}.npz"
            pyconvnet.save(model, path)
            arrays[f"{name}/saved-proba"] = model.predict_proba(X)
    np.savez_compressed(GOLDEN, **arrays)
    print(f"wrote {GOLDEN} ({arrays['fingerprint']})")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_golden.py --write")
    _write()
