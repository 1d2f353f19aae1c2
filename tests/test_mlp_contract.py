"""scikit-learn's own MLPClassifier tests (sklearn/neural_network/tests/
test_mlp.py), adapted to ConvNetClassifier.

ConvNetClassifier promises MLPClassifier's contract: its parameter names,
attributes, warm start, partial_fit, early stopping and errors. Each test
below keeps the name and the intent of the scikit-learn test it adapts; the
networks are small convolutional ones instead of MLPs. Left out, because they
concern only regressors, the lbfgs solver or the MLP's own architecture:
test_lbfgs_*, test_multioutput_regression, test_partial_fit_regression,
test_mlp_regressor_dtypes_casting, test_mlp_vs_poisson_glm_equivalent,
test_mlp_diverging_loss (a regressor's NaN validation score), test_gradient
and test_fit (hand-set MLP weights; the network's gradients are checked
numerically in test_network.py). The lbfgs solver of the multi-label and
sparse tests is replaced by adam with more epochs.
"""
import re
import warnings

import joblib
import numpy as np
import pytest
from scipy import sparse
from sklearn.datasets import (load_digits, load_iris, make_classification,
                              make_multilabel_classification)
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils._testing import assert_allclose, assert_array_equal, ignore_warnings

from pyconvnet import ConvNetClassifier

ACTIVATION_TYPES = ["identity", "logistic", "tanh", "relu"]
SMALL = dict(conv_layers=((3, 3),), hidden_layer_sizes=(10,))

X_digits, y_digits = load_digits(n_class=3, return_X_y=True)
X_digits_multi = MinMaxScaler().fit_transform(X_digits[:200])
y_digits_multi = y_digits[:200]
X_digits, y_digits = load_digits(n_class=2, return_X_y=True)
X_digits_binary = MinMaxScaler().fit_transform(X_digits[:200])
y_digits_binary = y_digits[:200]
classification_datasets = [
    (X_digits_multi, y_digits_multi),
    (X_digits_binary, y_digits_binary),
]
X_iris, y_iris = load_iris(return_X_y=True)


def test_alpha():
    # larger alpha yields weights closer to zero
    X, y = X_digits_binary[:100], y_digits_binary[:100]
    sums = []
    for alpha in (0, 1):
        clf = ConvNetClassifier(**SMALL, alpha=alpha, random_state=1, max_iter=50)
        with ignore_warnings(category=ConvergenceWarning):
            clf.fit(X, y)
        sums.append(np.array([np.abs(c).sum() for c in clf.coefs_]))
    assert (sums[0] > sums[1]).all()


@pytest.mark.parametrize("activation", ACTIVATION_TYPES)
def test_activations_train(activation):
    # every MLPClassifier activation name is accepted and trains
    X, y = X_digits_binary, y_digits_binary
    clf = ConvNetClassifier(**SMALL, activation=activation, random_state=0,
                            max_iter=30, learning_rate_init=0.01)
    with ignore_warnings(category=ConvergenceWarning):
        clf.fit(X, y)
    assert clf.score(X, y) > 0.9


def test_learning_rate_warmstart():
    # warm_start reuses the optimizer: invscaling continues from t_
    X = [[3, 2], [1, 6], [5, 6], [-2, -4]]
    y = [1, 1, 1, 0]
    for learning_rate in ["invscaling", "constant"]:
        clf = ConvNetClassifier(conv_layers=(), hidden_layer_sizes=4, solver="sgd",
                                learning_rate=learning_rate, max_iter=1,
                                power_t=0.25, warm_start=True)
        with ignore_warnings(category=ConvergenceWarning):
            clf.fit(X, y)
            prev_eta = clf._optimizer.learning_rate
            clf.fit(X, y)
            post_eta = clf._optimizer.learning_rate
        if learning_rate == "constant":
            assert prev_eta == post_eta
        else:
            assert clf.learning_rate_init / pow(8 + 1, clf.power_t) == post_eta


def test_partial_fit_classes_error():
    X, y = [[3, 2]], [0]
    clf = ConvNetClassifier(solver="sgd")
    clf.partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError):
        clf.partial_fit(X, y, classes=[1, 2])


def test_partial_fit_classification():
    # partial_fit gives the same model as fit, epoch for epoch
    for X, y in classification_datasets:
        params = dict(SMALL, solver="sgd", random_state=1, alpha=1e-5,
                      learning_rate_init=0.05)
        clf = ConvNetClassifier(**params, max_iter=10, tol=0)
        with ignore_warnings(category=ConvergenceWarning):
            clf.fit(X, y)
        pred1 = clf.predict(X)
        clf2 = ConvNetClassifier(**params)
        for _ in range(10):
            clf2.partial_fit(X, y, classes=np.unique(y))
        assert_array_equal(pred1, clf2.predict(X))
        assert_array_equal(clf.coefs_[0], clf2.coefs_[0])
        assert clf2.score(X, y) > 0.95


def test_partial_fit_unseen_classes():
    clf = ConvNetClassifier(random_state=0)
    clf.partial_fit([[1], [2], [3]], ["a", "b", "c"], classes=["a", "b", "c", "d"])
    clf.partial_fit([[4]], ["d"])
    assert clf.score([[1], [2], [3], [4]], ["a", "b", "c", "d"]) > 0


def test_partial_fit_errors():
    X, y = [[3, 2], [1, 6]], [1, 0]
    with pytest.raises(ValueError):
        ConvNetClassifier(solver="sgd").partial_fit(X, y, classes=[2])


def test_nonfinite_params():
    # huge inputs make training diverge: a ValueError, finite weights kept
    rng = np.random.RandomState(0)
    X = np.finfo(np.float64).max * rng.uniform(size=(10, 4))
    y = np.arange(10) % 2
    with pytest.raises(ValueError, match="diverged|non-finite|infinity"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ConvNetClassifier(**SMALL).fit(X, y)


def test_predict_proba_binary():
    X, y = X_digits_binary[:50], y_digits_binary[:50]
    clf = ConvNetClassifier(**SMALL, activation="logistic", random_state=1,
                            max_iter=200)
    with ignore_warnings(category=ConvergenceWarning):
        clf.fit(X, y)
    y_proba = clf.predict_proba(X)
    y_log_proba = clf.predict_log_proba(X)
    assert y_proba.shape == (50, 2)
    assert_array_equal(y_proba.argmax(axis=1), y_log_proba.argmax(axis=1))
    assert_allclose(y_log_proba, np.log(y_proba), rtol=1e-5)
    assert roc_auc_score(y, y_proba[:, 1]) == 1.0


def test_predict_proba_multiclass():
    X, y = X_digits_multi[:10], y_digits_multi[:10]
    clf = ConvNetClassifier(**SMALL, max_iter=20)
    with ignore_warnings(category=ConvergenceWarning):
        clf.fit(X, y)
    y_proba = clf.predict_proba(X)
    y_log_proba = clf.predict_log_proba(X)
    assert y_proba.shape == (10, np.unique(y).size)
    assert_array_equal(y_proba.argmax(axis=1), y_log_proba.argmax(axis=1))
    assert_allclose(y_log_proba, np.log(y_proba), rtol=1e-5)


def test_shuffle():
    X, y = X_digits_multi[:50], y_digits_multi[:50]

    def fit(shuffle):
        clf = ConvNetClassifier(**SMALL, max_iter=1, batch_size=1, random_state=0,
                                shuffle=shuffle)
        with ignore_warnings(category=ConvergenceWarning):
            return clf.fit(X, y)

    for shuffle in (True, False):
        assert np.array_equal(fit(shuffle).coefs_[0], fit(shuffle).coefs_[0])
    assert not np.array_equal(fit(True).coefs_[0], fit(False).coefs_[0])


def test_tolerance():
    X, y = [[3, 2], [1, 6]], [1, 0]
    clf = ConvNetClassifier(tol=0.5, max_iter=3000, solver="sgd").fit(X, y)
    assert clf.max_iter > clf.n_iter_


def test_verbose_sgd(capsys):
    X, y = [[3, 2], [1, 6]], [1, 0]
    clf = ConvNetClassifier(solver="sgd", max_iter=2, verbose=10,
                            hidden_layer_sizes=2)
    with ignore_warnings(category=ConvergenceWarning):
        clf.fit(X, y)
    clf.partial_fit(X, y)
    out, _ = capsys.readouterr()
    assert "loss =" in out


def test_early_stopping():
    X, y = X_digits_binary[:100], y_digits_binary[:100]
    tol = 0.2
    clf = ConvNetClassifier(**SMALL, tol=tol, max_iter=3000, solver="sgd",
                            early_stopping=True).fit(X, y)
    assert clf.max_iter > clf.n_iter_
    assert clf.best_loss_ is None
    assert isinstance(clf.validation_scores_, list)
    scores = clf.validation_scores_
    assert max(scores) == clf.best_validation_score_
    assert clf.best_validation_score_ + tol > scores[-2]
    assert clf.best_validation_score_ + tol > scores[-1]
    clf = ConvNetClassifier(**SMALL, tol=tol, max_iter=3000, solver="sgd",
                            early_stopping=False).fit(X, y)
    assert clf.validation_scores_ is None
    assert clf.best_validation_score_ is None
    assert clf.best_loss_ is not None


def test_adaptive_learning_rate():
    X, y = [[3, 2], [1, 6]], [1, 0]
    clf = ConvNetClassifier(tol=0.5, max_iter=3000, solver="sgd",
                            learning_rate="adaptive").fit(X, y)
    assert clf.max_iter > clf.n_iter_
    assert 1e-6 > clf._optimizer.learning_rate


def test_warm_start():
    X, y = X_iris, y_iris
    y_2classes = np.array([0] * 75 + [1] * 75)
    y_3classes = np.array([0] * 40 + [1] * 40 + [2] * 70)
    y_3classes_alt = np.array([0] * 50 + [1] * 50 + [3] * 50)
    y_4classes = np.array([0] * 37 + [1] * 37 + [2] * 38 + [3] * 38)
    y_5classes = np.array([0] * 30 + [1] * 30 + [2] * 30 + [3] * 30 + [4] * 30)
    params = dict(hidden_layer_sizes=2, warm_start=True, random_state=42,
                  tol=1e-2, max_iter=5)
    with ignore_warnings(category=ConvergenceWarning):
        clf = ConvNetClassifier(**params).fit(X, y)
        clf.fit(X, y)
        clf.fit(X, y_3classes)
        for y_i in (y_2classes, y_3classes_alt, y_4classes, y_5classes):
            clf = ConvNetClassifier(**params).fit(X, y)
            message = (
                "warm_start can only be used where `y` has the same "
                "classes as in the previous call to fit."
                " Previously got [0 1 2], `y` has %s" % np.unique(y_i)
            )
            before = clf.coefs_[0].copy()
            with pytest.raises(ValueError, match=re.escape(message)):
                clf.fit(X, y_i)
            assert_array_equal(clf.coefs_[0], before)  # nothing trained


def test_warm_start_full_iteration():
    clf = ConvNetClassifier(hidden_layer_sizes=2, solver="sgd", warm_start=True,
                            max_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_iris, y_iris)
        assert clf.n_iter_ == 3
        clf.fit(X_iris, y_iris)
        assert clf.n_iter_ == 3


def test_n_iter_no_change():
    X, y = X_digits_binary[:100], y_digits_binary[:100]
    for n_iter_no_change in [2, 5, 10]:
        clf = ConvNetClassifier(**SMALL, tol=0.01, max_iter=3000, solver="sgd",
                                n_iter_no_change=n_iter_no_change).fit(X, y)
        assert clf._no_improvement_count == n_iter_no_change + 1
        assert 3000 > clf.n_iter_


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_n_iter_no_change_inf():
    X, y = X_digits_binary[:100], y_digits_binary[:100]
    clf = ConvNetClassifier(**SMALL, tol=1e9, max_iter=30, solver="sgd",
                            n_iter_no_change=np.inf).fit(X, y)
    assert clf.n_iter_ == 30
    assert clf._no_improvement_count == clf.n_iter_ - 1


def test_early_stopping_stratified():
    X = [[1, 2], [2, 3], [3, 4], [4, 5]]
    y = [0, 0, 0, 1]
    clf = ConvNetClassifier(early_stopping=True)
    with pytest.raises(ValueError, match="The least populated class"):
        clf.fit(X, y)


def test_early_stopping_string_labels():
    X, y = make_classification(n_samples=200, n_features=16, n_classes=3,
                               n_informative=5, random_state=42)
    y = np.array(["class_a", "class_b", "class_c"], dtype=object)[y]
    clf = ConvNetClassifier(**SMALL, early_stopping=True, max_iter=20,
                            random_state=42)
    with ignore_warnings(category=ConvergenceWarning):
        clf.fit(X, y)
    assert len(clf.validation_scores_) == clf.n_iter_
    assert np.isfinite(clf.validation_scores_).all()


def test_classifier_dtypes_casting():
    X, y = load_digits(n_class=2, return_X_y=True)
    params = dict(SMALL, alpha=1e-5, random_state=1, max_iter=20, tol=1e-1)
    with ignore_warnings(category=ConvergenceWarning):
        clf64 = ConvNetClassifier(**params).fit(X[:300] / 16, y[:300])
        clf32 = ConvNetClassifier(**params).fit((X[:300] / 16).astype(np.float32),
                                                y[:300])
    assert_array_equal(clf64.predict(X[300:] / 16),
                       clf32.predict((X[300:] / 16).astype(np.float32)))
    assert_allclose(clf64.predict_proba(X[300:] / 16),
                    clf32.predict_proba((X[300:] / 16).astype(np.float32)),
                    rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_param_dtypes(dtype):
    X, y = load_digits(n_class=2, return_X_y=True)
    clf = ConvNetClassifier(**SMALL, random_state=1, max_iter=5)
    with ignore_warnings(category=ConvergenceWarning):
        clf.fit(X[:300].astype(dtype), y[:300])
        assert all(c.dtype == dtype for c in clf.coefs_ + clf.intercepts_)
        # a second fit (no warm start) takes the precision of its own X
        other = np.float64 if dtype == np.float32 else np.float32
        clf.fit(X[:300].astype(other), y[:300])
    assert all(c.dtype == other for c in clf.coefs_ + clf.intercepts_)
    assert clf.predict_proba(X[300:310].astype(other)).dtype == other


def test_loading_from_joblib_partial_fit(tmp_path):
    # a model restored by joblib keeps learning from partial_fit
    X = X_digits_multi[:60]
    clf = ConvNetClassifier(**SMALL, random_state=42, learning_rate_init=0.01,
                            max_iter=50)
    with ignore_warnings(category=ConvergenceWarning):
        clf.fit(X, y_digits_multi[:60])
    joblib.dump(clf, tmp_path / "convnet.pkl")
    loaded = joblib.load(tmp_path / "convnet.pkl")
    target = np.full(60, clf.classes_[0])
    target[:3] = clf.classes_[1]  # partial_fit needs two classes in its batch
    for _ in range(100):
        loaded.partial_fit(X, target)
    assert (loaded.predict(X[3:]) == clf.classes_[0]).all()


def test_preserve_feature_names():
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    X = pd.DataFrame(data=rng.randn(10, 2), columns=["colname_a", "colname_b"])
    y = pd.Series(data=np.arange(10) % 2, name="colname_y")
    clf = ConvNetClassifier(early_stopping=True, validation_fraction=0.2, max_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)


def test_warm_start_with_early_stopping():
    clf = ConvNetClassifier(max_iter=10, random_state=0, warm_start=True,
                            early_stopping=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_iris, y_iris)
        n_scores = len(clf.validation_scores_)
        clf.set_params(max_iter=20)
        clf.fit(X_iris, y_iris)
    assert len(clf.validation_scores_) > n_scores


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_warm_start_no_convergence(solver):
    clf = ConvNetClassifier(solver=solver, warm_start=True, early_stopping=False,
                            max_iter=10, n_iter_no_change=np.inf, random_state=0)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X_iris, y_iris)
    assert clf.n_iter_ == 10
    clf.set_params(max_iter=20)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X_iris, y_iris)
    assert clf.n_iter_ == 20


def test_partial_fit_after_fit():
    clf = ConvNetClassifier(early_stopping=True, random_state=0, max_iter=5)
    with ignore_warnings(category=ConvergenceWarning):
        clf.fit(X_iris, y_iris)
    before = clf.coefs_[0].copy()
    msg = "partial_fit does not support early_stopping=True"
    with pytest.raises(ValueError, match=msg):
        clf.partial_fit(X_iris, y_iris)
    assert_array_equal(clf.coefs_[0], before)
    # and on a fresh estimator too
    with pytest.raises(ValueError, match=msg):
        ConvNetClassifier(early_stopping=True).partial_fit(
            X_iris, y_iris, classes=np.unique(y_iris))


def test_sample_weight_with_early_stopping():
    X, y = X_digits_multi[:100], y_digits_multi[:100]
    params = dict(SMALL, early_stopping=True, tol=1e-2, learning_rate_init=0.01,
                  batch_size=10, random_state=42, max_iter=10)
    with ignore_warnings(category=ConvergenceWarning):
        m1 = ConvNetClassifier(**params).fit(X, y, sample_weight=np.ones(len(y)))
        m2 = ConvNetClassifier(**params).fit(X, y)
    assert_allclose(m1.predict_proba(X), m2.predict_proba(X))
    assert m1.validation_scores_ == m2.validation_scores_


def test_early_stopping_score_uses_sample_weight():
    # the held-out accuracy is weighted like the training loss
    X, y = X_digits_multi[:100], y_digits_multi[:100]
    weights = np.where(np.arange(100) % 3 == 0, 5.0, 0.2)
    params = dict(SMALL, early_stopping=True, validation_fraction=0.3,
                  random_state=3, max_iter=2, n_iter_no_change=100)
    with ignore_warnings(category=ConvergenceWarning):
        clf = ConvNetClassifier(**params).fit(X, y, sample_weight=weights)
    from sklearn.model_selection import train_test_split

    _, X_val, _, y_val, _, w_val = train_test_split(
        X, y, weights, test_size=0.3, stratify=np.searchsorted(clf.classes_, y),
        random_state=_replay_rng(3))
    # the best epoch's weights were restored: its score is the best one
    expected = float(np.average(clf.predict(X_val) == y_val, weights=w_val))
    assert clf.best_validation_score_ == pytest.approx(expected)
    assert expected != pytest.approx(float(np.mean(clf.predict(X_val) == y_val)))


def _replay_rng(seed):
    """The estimator's RandomState as it was when it split off validation:
    after drawing the initial weights of the network."""
    clf = ConvNetClassifier(**SMALL, random_state=seed)
    rng = np.random.RandomState(seed)
    from pyconvnet._network import build_network

    build_network(clf.network_spec((1, 8, 8), 3, np.float64, "softmax"), rng, np.float64)
    return rng


def test_minimum_input_sample_size():
    X, y = X_digits_binary[:4], np.array([0, 1, 0, 1])
    with pytest.raises(ValueError):
        ConvNetClassifier(early_stopping=True, random_state=0).fit(X, y)


def test_multilabel_classification():
    # Multi-label classification: fit, then partial_fit.
    X, y = make_multilabel_classification(n_samples=50, random_state=0,
                                          return_indicator=True)
    clf = ConvNetClassifier(**{**SMALL, "hidden_layer_sizes": (50,)}, alpha=1e-5,
                            max_iter=300, random_state=0, activation="logistic",
                            learning_rate_init=0.02, tol=0)
    with ignore_warnings(category=ConvergenceWarning):
        clf.fit(X, y)
    assert clf.score(X, y) > 0.97
    # (16 feature maps: three sigmoid maps learn too slowly in 100 steps)
    clf = ConvNetClassifier(conv_layers=((16, 3),), hidden_layer_sizes=(50,),
                            solver="sgd", random_state=0, activation="logistic",
                            alpha=1e-5, learning_rate_init=0.2)
    for i in range(100):
        clf.partial_fit(X, y, classes=[0, 1, 2, 3, 4])
    assert clf.score(X, y) > 0.9


def test_predict_proba_multilabel():
    # Multi-label probabilities are one sigmoid per label, not a softmax.
    X, Y = make_multilabel_classification(n_samples=50, random_state=0,
                                          return_indicator=True)
    n_samples, n_classes = Y.shape
    clf = ConvNetClassifier(**{**SMALL, "hidden_layer_sizes": (30,)}, max_iter=300,
                            learning_rate_init=0.02, tol=0, random_state=0)
    with ignore_warnings(category=ConvergenceWarning):
        clf.fit(X, Y)
    y_proba = clf.predict_proba(X)
    assert y_proba.shape == (n_samples, n_classes)
    assert_array_equal(y_proba > 0.5, Y)
    y_log_proba = clf.predict_log_proba(X)
    assert (y_proba.sum(1) - 1).dot(y_proba.sum(1) - 1) > 1e-10
    assert_array_equal(y_proba.argmax(axis=1), y_log_proba.argmax(axis=1))
    # (atol: for probabilities near 1, log(exp(log p)) keeps few digits)
    assert_allclose(y_log_proba, np.log(y_proba), rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("csr_container", [sparse.csr_matrix, sparse.csr_array,
                                           sparse.csc_matrix, sparse.csc_array])
def test_sparse_matrices(csr_container):
    # Sparse and dense input give the same results.
    X = X_digits_binary[:50]
    y = y_digits_binary[:50]
    X_sparse = csr_container(X)
    clf = ConvNetClassifier(**SMALL, max_iter=20, random_state=1)
    with ignore_warnings(category=ConvergenceWarning):
        clf.fit(X, y)
    pred1 = clf.predict(X)
    proba1 = clf.predict_proba(X)
    with ignore_warnings(category=ConvergenceWarning):
        clf.fit(X_sparse, y)
    assert_array_equal(clf.predict(X_sparse), pred1)
    assert_array_equal(clf.predict_proba(X_sparse), proba1)
    assert_array_equal(clf.predict(X), clf.predict(X_sparse))
