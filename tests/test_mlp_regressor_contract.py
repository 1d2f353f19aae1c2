"""scikit-learn's own MLPRegressor tests (sklearn/neural_network/tests/
test_mlp.py), adapted to ConvNetRegressor.

ConvNetRegressor promises MLPRegressor's contract: its parameter names,
attributes, partial_fit, warm start, early stopping on R², sample weights,
dtypes and errors. Each test keeps the name and the intent of the
scikit-learn test it adapts; the networks are small convolutional ones, and
the lbfgs solver is replaced by adam with more epochs. Two deliberate
differences: a diverging fit (test_mlp_diverging_loss, test_nonfinite_params)
raises a ValueError naming the divergence and keeps the last finite weights,
where MLPRegressor records a NaN validation score; and the targets are
standardised for training by default (``normalize_y``), which leaves every
contract below unchanged. Left out: test_fit and test_gradient (hand-set MLP
weights; the network's gradients are checked numerically in
test_network.py), the lbfgs-only maxfun tests and the Poisson loss, which
ConvNetRegressor does not have.
"""
import re
import warnings

import joblib
import numpy as np
import pytest
from scipy import sparse
from sklearn.datasets import load_digits, load_iris, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression
from sklearn.preprocessing import MinMaxScaler, scale
from sklearn.utils._testing import assert_allclose, ignore_warnings

from pyconvnet import ConvNetRegressor

ACTIVATION_TYPES = ["identity", "logistic", "tanh", "relu"]
SMALL = dict(conv_layers=((3, 3),), hidden_layer_sizes=(10,))
# For the 10 features of make_regression, which have no neighbourhoods: a
# convolution whose kernel spans them all (it shrinks to the 1x10 image),
# as wide as a dense layer.
TABULAR = dict(conv_layers=((16, 10),), pooling=None)

X_reg, y_reg = make_regression(n_samples=200, n_features=10, bias=20.0, noise=100.0,
                               random_state=7)
y_reg = scale(y_reg)
X_digits, y_digits = load_digits(n_class=2, return_X_y=True)
X_digits = MinMaxScaler().fit_transform(X_digits[:200])
y_digits = y_digits[:200]
X_iris, y_iris = load_iris(return_X_y=True)


def test_alpha():
    # larger alpha yields weights closer to zero
    X, y = X_reg[:100], y_reg[:100]
    sums = []
    for alpha in (0, 1):
        reg = ConvNetRegressor(**SMALL, alpha=alpha, random_state=1, max_iter=50)
        with ignore_warnings(category=ConvergenceWarning):
            reg.fit(X, y)
        sums.append(np.array([np.abs(c).sum() for c in reg.coefs_]))
    assert (sums[0] > sums[1]).all()


@pytest.mark.parametrize("activation", ACTIVATION_TYPES)
def test_lbfgs_regression(activation):
    # adam instead of lbfgs, on the same data set
    reg = ConvNetRegressor(**TABULAR, hidden_layer_sizes=(50,), max_iter=1000,
                           learning_rate_init=0.01, tol=1e-6, n_iter_no_change=50,
                           random_state=1, activation=activation)
    with ignore_warnings(category=ConvergenceWarning):
        reg.fit(X_reg, y_reg)
    if activation == "identity":
        # a linear model: least squares' R² (0.815) is the most it can reach
        ols = LinearRegression().fit(X_reg, y_reg).score(X_reg, y_reg)
        assert ols - 0.03 < reg.score(X_reg, y_reg) <= ols + 1e-9
    else:
        # non-linear models fit much better than the linear bottleneck
        assert reg.score(X_reg, y_reg) > 0.98


def test_multioutput_regression():
    X, y = make_regression(n_samples=200, n_targets=5, random_state=11)
    reg = ConvNetRegressor(**TABULAR, hidden_layer_sizes=(50,), max_iter=300,
                           learning_rate_init=0.01, random_state=1)
    with ignore_warnings(category=ConvergenceWarning):
        reg.fit(X, y)
    assert reg.predict(X).shape == (200, 5) and reg.n_outputs_ == 5
    assert reg.score(X, y) > 0.9


def test_partial_fit_regression():
    # partial_fit yields the same results as fit, one full batch per epoch
    for momentum in [0, 0.9]:
        params = dict(TABULAR, hidden_layer_sizes=(50,), solver="sgd",
                      activation="relu", random_state=1,
                      learning_rate_init=0.01, batch_size=X_reg.shape[0],
                      momentum=momentum)
        reg = ConvNetRegressor(**params, max_iter=100)
        with ignore_warnings(category=ConvergenceWarning):
            reg.fit(X_reg, y_reg)
        pred1 = reg.predict(X_reg)
        reg = ConvNetRegressor(**params)
        for _ in range(100):
            reg.partial_fit(X_reg, y_reg)
        pred2 = reg.predict(X_reg)
        assert_allclose(pred1, pred2)
        assert reg.score(X_reg, y_reg) > 0.65


def test_partial_fit_errors():
    # a regressor's partial_fit takes no classes
    with pytest.raises(TypeError):
        ConvNetRegressor(solver="sgd").partial_fit([[3, 2], [1, 6]], [1, 0], classes=[0, 1])


def test_nonfinite_params():
    # values so large the network overflows: a ValueError, not NaN weights
    rng = np.random.RandomState(0)
    X = np.finfo(np.float64).max * rng.uniform(size=(10, 2))
    y = rng.standard_normal(size=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="diverged|non-finite|infinity|too large"):
            ConvNetRegressor(**SMALL).fit(X, y)


@pytest.mark.parametrize("csr_container", [sparse.csr_matrix, sparse.csr_array])
def test_sparse_matrices(csr_container):
    # sparse and dense input give the same results
    X, y = X_digits[:50], y_digits[:50].astype(float)
    reg = ConvNetRegressor(**SMALL, max_iter=20, random_state=1)
    with ignore_warnings(category=ConvergenceWarning):
        pred1 = reg.fit(X, y).predict(X)
        pred2 = reg.fit(csr_container(X), y).predict(csr_container(X))
    assert_allclose(pred1, pred2)
    assert_allclose(reg.predict(X), reg.predict(csr_container(X)))


def test_tolerance():
    # a large tol ends training early
    reg = ConvNetRegressor(**SMALL, tol=0.5, max_iter=3000, solver="sgd")
    reg.fit([[3, 2], [1, 6]], [1, 0])
    assert reg.max_iter > reg.n_iter_


def test_verbose_sgd(capsys):
    reg = ConvNetRegressor(**SMALL, solver="sgd", max_iter=2, verbose=10)
    with ignore_warnings(category=ConvergenceWarning):
        reg.fit([[3, 2], [1, 6]], [1, 0])
    reg.partial_fit([[3, 2], [1, 6]], [1, 0])
    out, _ = capsys.readouterr()
    assert "Epoch" in out


def test_early_stopping():
    X, y = X_digits[:100], y_digits[:100].astype(float)
    tol = 0.2
    reg = ConvNetRegressor(**SMALL, tol=tol, max_iter=3000, solver="sgd",
                           early_stopping=True)
    reg.fit(X, y)
    assert reg.max_iter > reg.n_iter_
    assert reg.best_loss_ is None and isinstance(reg.validation_scores_, list)
    scores = reg.validation_scores_
    assert max(scores) == reg.best_validation_score_
    assert reg.best_validation_score_ + tol > scores[-2]
    assert reg.best_validation_score_ + tol > scores[-1]
    # the validation score is R² on the held-out split
    assert reg.best_validation_score_ <= 1
    reg = ConvNetRegressor(**SMALL, tol=tol, max_iter=3000, solver="sgd")
    reg.fit(X, y)
    assert reg.validation_scores_ is None and reg.best_validation_score_ is None
    assert reg.best_loss_ is not None


def test_warm_start_full_iteration():
    reg = ConvNetRegressor(**SMALL, solver="sgd", warm_start=True, max_iter=3)
    with ignore_warnings(category=ConvergenceWarning):
        reg.fit(X_iris, y_iris)
        assert reg.n_iter_ == 3
        reg.fit(X_iris, y_iris)
        assert reg.n_iter_ == 3


def test_warm_start_checks_the_outputs():
    reg = ConvNetRegressor(**SMALL, warm_start=True, max_iter=2)
    with ignore_warnings(category=ConvergenceWarning):
        reg.fit(X_iris, np.stack([y_iris, y_iris], axis=1))
        with pytest.raises(ValueError, match=re.escape("y has 1 outputs")):
            reg.fit(X_iris, y_iris)


def test_mlp_regressor_dtypes_casting():
    params = dict(SMALL, alpha=1e-5, random_state=1, max_iter=150, tol=1e-3)
    X, y = load_digits(return_X_y=True)
    with ignore_warnings(category=ConvergenceWarning):
        reg_64 = ConvNetRegressor(**params).fit(X[:300], y[:300])
        reg_32 = ConvNetRegressor(**params).fit(X[:300].astype(np.float32), y[:300])
    pred_64 = reg_64.predict(X[300:])
    pred_32 = reg_32.predict(X[300:].astype(np.float32))
    # float32 against float64 training: close, not equal
    assert_allclose(pred_64, pred_32, rtol=5e-3, atol=5e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mlp_param_dtypes(dtype):
    X, y = X_digits.astype(dtype), y_digits
    reg = ConvNetRegressor(**SMALL, alpha=1e-5, random_state=1, max_iter=50, tol=1e-1)
    with ignore_warnings(category=ConvergenceWarning):
        reg.fit(X[:150], y[:150])
    assert all(i.dtype == dtype for i in reg.intercepts_)
    assert all(c.dtype == dtype for c in reg.coefs_)
    assert reg.predict(X[150:]).dtype == dtype


def test_mlp_loading_from_joblib_partial_fit(tmp_path):
    # a loaded model's partial_fit updates its weights
    reg = ConvNetRegressor(**SMALL, random_state=42, learning_rate_init=0.01, max_iter=200)
    with ignore_warnings(category=ConvergenceWarning):
        reg.fit([[2]], [4])
    path = tmp_path / "reg.pkl"
    joblib.dump(reg, path)
    loaded = joblib.load(path)
    for _ in range(200):
        loaded.partial_fit([[2]], [1])
    assert_allclose(loaded.predict([[2]]), [1], rtol=1e-3)


def test_preserve_feature_names():
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    X = pd.DataFrame(data=rng.randn(10, 2), columns=["colname_a", "colname_b"])
    y = pd.Series(data=np.full(10, 1), name="colname_y")
    reg = ConvNetRegressor(**SMALL, early_stopping=True, validation_fraction=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, y)


def test_mlp_warm_start_with_early_stopping():
    reg = ConvNetRegressor(**SMALL, max_iter=10, random_state=0, warm_start=True,
                           early_stopping=True)
    with ignore_warnings(category=ConvergenceWarning):
        reg.fit(X_iris, y_iris)
        n_scores = len(reg.validation_scores_)
        reg.set_params(max_iter=20)
        reg.fit(X_iris, y_iris)
    assert len(reg.validation_scores_) > n_scores


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_mlp_warm_start_no_convergence(solver):
    reg = ConvNetRegressor(**SMALL, solver=solver, warm_start=True, early_stopping=False,
                           max_iter=10, n_iter_no_change=np.inf, random_state=0)
    with pytest.warns(ConvergenceWarning):
        reg.fit(X_iris, y_iris)
    assert reg.n_iter_ == 10
    reg.set_params(max_iter=20)
    with pytest.warns(ConvergenceWarning):
        reg.fit(X_iris, y_iris)
    assert reg.n_iter_ == 20


def test_mlp_partial_fit_after_fit():
    with ignore_warnings(category=ConvergenceWarning):
        reg = ConvNetRegressor(**SMALL, early_stopping=True, random_state=0).fit(
            X_iris, y_iris)
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
        reg.partial_fit(X_iris, y_iris)


def test_mlp_diverging_loss():
    # a learning rate that makes training diverge: a ValueError naming it,
    # the last finite weights kept (MLPRegressor records a NaN score)
    reg = ConvNetRegressor(**SMALL, solver="sgd", learning_rate_init=1e20, max_iter=10,
                           early_stopping=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="diverged"):
            reg.fit(X_iris, y_iris * 1e3)
    assert np.isfinite(reg.network_.flat_params).all()


def test_mlp_sample_weight_with_early_stopping():
    X, y = make_regression(n_samples=100, n_features=2, n_informative=2, random_state=42)
    params = dict(SMALL, solver="adam", early_stopping=True, tol=1e-2,
                  learning_rate_init=0.01, batch_size=10, random_state=42)
    with ignore_warnings(category=ConvergenceWarning):
        m1 = ConvNetRegressor(**params).fit(X, y, sample_weight=np.ones_like(y))
        m2 = ConvNetRegressor(**params).fit(X, y, sample_weight=None)
    assert_allclose(m1.predict(X), m2.predict(X))


def test_minimum_input_sample_size():
    X, y = make_regression(n_samples=2, n_features=5, random_state=0)
    reg = ConvNetRegressor(**SMALL, early_stopping=True, random_state=0)
    with pytest.raises(ValueError, match="The validation set is too small"):
        reg.fit(X, y)


# ----------------------------------------------------------------------
# What ConvNetRegressor adds: the targets' standardisation
# ----------------------------------------------------------------------
def test_targets_in_any_unit_train_alike():
    """normalize_y: the same data in other units (times 1e4, plus 1e6) gives
    the same predictions in those units; MLPRegressor's way (False) does
    not train on such targets."""
    X, y = X_reg, y_reg
    params = dict(TABULAR, hidden_layer_sizes=(10,), max_iter=60, random_state=0, tol=0)
    with ignore_warnings(category=ConvergenceWarning):
        plain = ConvNetRegressor(**params).fit(X, y)
        scaled = ConvNetRegressor(**params).fit(X, y * 1e4 + 1e6)
        raw = ConvNetRegressor(**params, normalize_y=False).fit(X, y * 1e4 + 1e6)
    assert_allclose(scaled.predict(X), plain.predict(X) * 1e4 + 1e6, rtol=1e-5)
    assert scaled.score(X, y * 1e4 + 1e6) == pytest.approx(plain.score(X, y), abs=1e-4)
    assert raw.score(X, y * 1e4 + 1e6) < 0.5 < plain.score(X, y)
    assert_allclose(scaled.y_mean_, [np.mean(y * 1e4 + 1e6)])
    assert_allclose(raw.y_mean_, [0.0]) and assert_allclose(raw.y_scale_, [1.0])
    # weighted: a weight of 2 counts a sample twice
    w = np.where(np.arange(len(y)) % 2, 2.0, 1.0)
    with ignore_warnings(category=ConvergenceWarning):
        weighted = ConvNetRegressor(**dict(params, max_iter=1)).fit(X, y, sample_weight=w)
    assert_allclose(weighted.y_mean_, [np.average(y, weights=w)])
    # a constant target is scaled by its own magnitude (so that it predicts
    # alike in any unit)
    with ignore_warnings(category=ConvergenceWarning):
        constant = ConvNetRegressor(**dict(params, max_iter=1)).fit(X, np.full(len(y), 7.0))
    assert_allclose(constant.y_scale_, [7.0])


def test_augmentation_warns_that_the_target_must_not_change():
    X, _ = load_digits(return_X_y=True)
    with ignore_warnings(category=ConvergenceWarning):
        with pytest.warns(UserWarning, match="changes each training image but not its target"):
            ConvNetRegressor(**SMALL, augment="flip", max_iter=1).fit(X[:50], X[:50].sum(1))
