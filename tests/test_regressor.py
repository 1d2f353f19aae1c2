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
    pipe = make_pipeline(MinMaxScaler(), ConvNetRegressor(**PARAMS, max_iter=2))
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
    mlp = _quiet(lambda: MLPRegressor(max_iter=40, random_state=0).fit(X_train, y_train))
    assert conv.score(X_test, y_test) > mlp.score(X_test, y_test) + 0.1
