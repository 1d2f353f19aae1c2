"""ConvNetRegressor in the scikit-learn world: pipelines, parallel grid
search, determinism whatever the thread count, and where convolutions pay
(the digit sums: targets that do not depend on where the digits sit)."""
import pickle
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from pyconvnet import ConvNetRegressor
from pyconvnet.datasets import make_digit_sums

PARAMS = dict(conv_layers=((8, 3), "pool", (16, 3)), hidden_layer_sizes=(32,),
              random_state=0)


@pytest.fixture(scope="module")
def sums():
    return make_digit_sums(n_train=1500, n_test=500, random_state=0, return_X_y=True)


def _quiet(call):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return call()


def test_pipeline_and_parallel_grid_search(sums):
    X_train, X_test, y_train, y_test = sums
    # MinMaxScaler takes rows: the network reads them back as 16x24 images
    X_train, X_test = X_train.reshape(len(X_train), -1), X_test.reshape(len(X_test), -1)
    pipe = make_pipeline(MinMaxScaler(), ConvNetRegressor(**PARAMS, max_iter=2,
                                                          image_shape=(16, 24)))
    search = GridSearchCV(pipe, {"convnetregressor__batch_norm": [False, True],
                                 "convnetregressor__learning_rate_init": [1e-3, 3e-3]},
                          cv=2, n_jobs=2)
    _quiet(lambda: search.fit(X_train, y_train))
    assert set(search.cv_results_["param_convnetregressor__batch_norm"]) == {False, True}
    best = search.best_estimator_
    assert best.predict(X_test).shape == (500,)
    assert search.score(X_test, y_test) == pytest.approx(
        1 - np.sum((best.predict(X_test) - y_test) ** 2)
        / np.sum((y_test - y_test.mean()) ** 2), rel=1e-5)


def test_results_do_not_depend_on_the_thread_count(sums):
    X_train, X_test, y_train, _ = sums
    runs = [_quiet(lambda n=n: ConvNetRegressor(**PARAMS, max_iter=2, batch_norm=True,
                                                 n_threads=n).fit(X_train[:600], y_train[:600]))
            for n in (1, 2, 3)]
    for other in runs[1:]:
        np.testing.assert_array_equal(other.network_.flat_params, runs[0].network_.flat_params)
        np.testing.assert_array_equal(other.predict(X_test), runs[0].predict(X_test))
    again = pickle.loads(pickle.dumps(runs[0]))
    np.testing.assert_array_equal(again.predict(X_test), runs[0].predict(X_test))


def test_convolutions_beat_the_mlp_on_digit_sums(sums):
    """The target does not depend on where the digits sit: the network
    learns shapes wherever they are, an MLP of the pixels place by place."""
    X_train, X_test, y_train, y_test = make_digit_sums(n_train=6000, n_test=1000,
                                                       random_state=1, return_X_y=True)
    conv = _quiet(lambda: ConvNetRegressor(
        conv_layers=((16, 3), "pool", (32, 3), "pool"), hidden_layer_sizes=(64,),
        max_iter=8, random_state=0).fit(X_train, y_train))
    assert conv.image_shape_ == (1, 16, 24)
    mlp = _quiet(lambda: MLPRegressor(max_iter=40, random_state=0).fit(
        X_train.reshape(len(X_train), -1), y_train))
    assert conv.score(X_test, y_test) > mlp.score(X_test.reshape(len(X_test), -1),
                                                  y_test) + 0.1


# ----------------------------------------------------------------------
# Targets in any unit, and targets the model's precision cannot hold
# ----------------------------------------------------------------------
TINY = dict(conv_layers=((4, 3),), hidden_layer_sizes=(8,), max_iter=3,
            random_state=0, tol=0)


def _targets(n=120, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.rand(n, 36).astype(np.float32)
    y = X[:, :6].sum(axis=1) - 3 + 0.1 * rng.randn(n)
    return X, y


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("factor", [1e-30, 1e-20, 1e-13, 1e-9, 3.0, 1e9, 1e20, 1e30])
def test_predictions_of_c_times_y_are_c_times_those_of_y(dtype, factor):
    """Any unit: a target in kilometres times 1e-15 trains as in metres.
    (Its spread is below 1e-12 in absolute terms: it is not constant.)"""
    X, y = _targets()
    Y = np.stack([y, 1 - 2 * y], axis=1)
    base = _quiet(lambda: ConvNetRegressor(**TINY, dtype=dtype).fit(X, Y))
    scaled = _quiet(lambda: ConvNetRegressor(**TINY, dtype=dtype).fit(X, Y * factor))
    np.testing.assert_allclose(scaled.y_scale_, base.y_scale_ * factor, rtol=1e-10)
    np.testing.assert_allclose(scaled.predict(X), base.predict(X) * factor, rtol=1e-4,
                               atol=1e-4 * factor * np.abs(Y).max())
    assert scaled.score(X, Y * factor) == pytest.approx(base.score(X, Y), abs=1e-4)


@pytest.mark.parametrize("factor", [1e-30, 1e-13, 1e30])
def test_a_constant_target_is_predicted_in_its_own_unit(factor):
    X, _ = _targets()
    seven = _quiet(lambda: ConvNetRegressor(**TINY).fit(X, np.full(len(X), 7.0)))
    model = _quiet(lambda: ConvNetRegressor(**TINY).fit(X, np.full(len(X), 7.0 * factor)))
    np.testing.assert_allclose(model.y_scale_, 7.0 * factor)
    np.testing.assert_allclose(model.predict(X), seven.predict(X) * factor, rtol=1e-5)
    zeros = _quiet(lambda: ConvNetRegressor(**TINY).fit(X, np.zeros(len(X))))
    assert zeros.y_mean_[0] == 0.0 and zeros.y_scale_[0] == 1.0


def test_huge_targets_scale_without_overflow():
    """Finite float64 targets of 1e160: their squares overflow, the scaling
    must not (no RuntimeWarning, finite predictions)."""
    X, y = _targets()
    base = _quiet(lambda: ConvNetRegressor(**TINY, dtype="float64").fit(X, y))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        huge = _quiet(lambda: ConvNetRegressor(**TINY, dtype="float64").fit(X, y * 1e160))
        predicted = huge.predict(X)
    assert np.isfinite(huge.y_scale_).all() and np.isfinite(predicted).all()
    np.testing.assert_allclose(predicted, base.predict(X) * 1e160, rtol=1e-6)


@pytest.mark.parametrize("normalize_y", [True, False])
def test_targets_the_models_precision_cannot_hold_are_refused(normalize_y):
    X, y = _targets()
    with pytest.raises(ValueError, match="float32 can represent"):
        ConvNetRegressor(**TINY, normalize_y=normalize_y).fit(X, y * 1e39)
    with pytest.raises(ValueError, match="float32 can represent"):
        ConvNetRegressor(**TINY, normalize_y=normalize_y).partial_fit(X, y * 1e39)
    # float64 holds them
    model = _quiet(lambda: ConvNetRegressor(**TINY, dtype="float64").fit(X, y * 1e39))
    assert np.isfinite(model.predict(X)).all()


def test_later_targets_on_another_scale_are_refused():
    X, y = _targets()
    model = ConvNetRegressor(**TINY).partial_fit(X, y * 1e-30)
    with pytest.raises(ValueError, match="another scale"):
        model.partial_fit(X, y * 1e30)
    model.partial_fit(X, y * 2e-30)        # the same scale trains on


@pytest.mark.parametrize("first", [True, False])
def test_normalize_y_is_fixed_by_the_first_fit(first, tmp_path):
    """A warm start, partial_fit and save would keep the first fit's
    scaling while get_params describes another: refused, naming it."""
    import pyconvnet

    X, y = _targets()
    model = _quiet(lambda: ConvNetRegressor(**TINY, normalize_y=first).fit(X, y * 100))
    model.set_params(normalize_y=not first, warm_start=True)
    for call in (lambda: model.fit(X, y * 100), lambda: model.partial_fit(X, y * 100),
                 lambda: pyconvnet.save(model, tmp_path / "m.npz")):
        with pytest.raises(ValueError, match="normalize_y"):
            call()
    model.set_params(normalize_y=first)
    _quiet(lambda: model.fit(X, y * 100))
    model.set_params(normalize_y=not first, warm_start=False)   # a new fit
    _quiet(lambda: model.fit(X, y * 100))
    assert (model.y_scale_[0] == 1.0) == first
