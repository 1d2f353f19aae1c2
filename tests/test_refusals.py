"""What the estimators refuse with a ValueError before training, rather than
failing later with another error or training into a meaningless model:
early stopping with a weightless part, a decoupled weight decay that does
not shrink the weights, batch norm over a single weighted value; and what a
prediction leaves behind."""
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from pyconvnet import ConvNetClassifier, ConvNetRegressor, ops

SMALL = dict(conv_layers=((4, 3),), hidden_layer_sizes=(8,), max_iter=2,
             random_state=0)
ESTIMATORS = [ConvNetClassifier, ConvNetRegressor]


def _fit(model, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(*args, **kwargs)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_early_stopping_with_a_weightless_part_of_the_split(digits, estimator):
    """One weighted sample: whichever part of the split it falls in, the
    other has no weight. Both parts are met over a few seeds."""
    X, y = digits
    X, y = X[:200], y[:200]
    weights = np.zeros(len(y))
    weights[7] = 1.0
    seen = set()
    for seed in range(12):
        model = estimator(**dict(SMALL, random_state=seed), early_stopping=True,
                          validation_fraction=0.5)
        with pytest.raises(ValueError, match="early_stopping") as info:
            _fit(model, X, y, sample_weight=weights)
        part = "training" if "the training part" in str(info.value) else "validation"
        assert f"the {part} part of the split" in str(info.value)
        seen.add(part)
    assert seen == {"training", "validation"}


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("rate, alpha", [(1e-3, 1000.0), (0.5, 2.0), (0.1, 50.0)])
def test_adamw_refuses_a_decay_factor_outside_0_1(digits, estimator, rate, alpha):
    X, y = digits
    model = estimator(**SMALL, solver="adamw", learning_rate_init=rate, alpha=alpha)
    for call in (lambda: model.fit(X[:100], y[:100]),
                 lambda: model.partial_fit(X[:100], y[:100],
                                           **({"classes": np.arange(10)}
                                              if estimator is ConvNetClassifier else {})),
                 model.check_params):
        with pytest.raises(ValueError, match="learning_rate_init.*alpha"):
            call()
    assert not hasattr(model, "_network")
    # set_params on a fitted model is refused at the next partial_fit
    fitted = _fit(estimator(**SMALL, solver="adamw", alpha=0.05), X[:100], y[:100])
    fitted.set_params(alpha=alpha, learning_rate_init=rate)
    with pytest.raises(ValueError, match="learning_rate_init.*alpha"):
        fitted.partial_fit(X[:100], y[:100])
    # just below 1 is a decay
    _fit(estimator(**SMALL, solver="adamw", learning_rate_init=rate,
                   alpha=0.9 / rate), X[:100], y[:100])


def _one_by_one_maps():
    """Images whose feature maps are 1x1 after a valid 2x2 convolution."""
    X = np.arange(16, dtype=np.float32).reshape(4, 1, 2, 2) / 16
    return X, np.array([0, 1, 0, 1])


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_batch_norm_counts_the_weighted_samples(estimator):
    """A batch of 2 of which one sample has weight 0 normalises a single
    value when the maps are 1x1: refused as a batch of 1 is."""
    X, y = _one_by_one_maps()
    params = dict(conv_layers=((3, 2),), padding="valid", pooling=None,
                  batch_norm=True, hidden_layer_sizes=(4,), max_iter=2,
                  batch_size=2, shuffle=False, random_state=0)
    with pytest.raises(ValueError, match="more than one value per feature map"):
        _fit(estimator(**params), X[:2], y[:2], sample_weight=[1.0, 0.0])
    with pytest.raises(ValueError, match="1 sample of positive sample_weight"):
        _fit(estimator(**params), X, y, sample_weight=[1.0, 0.0, 1.0, 1.0])
    # every batch holding two weighted samples (or none, which is skipped)
    _fit(estimator(**params), X, y, sample_weight=[1.0, 2.0, 0.0, 0.0])
    _fit(estimator(**params), X[:2], y[:2], sample_weight=[1.0, 1.0])


def test_batch_norm_op_counts_the_weighted_samples():
    x = np.random.RandomState(0).rand(2, 3, 1, 1)
    gamma, beta = np.ones(3), np.zeros(3)
    for op, extra in ((ops.batch_norm, ()), (ops.batch_norm_grad, (x,))):
        with pytest.raises(ValueError, match="more than one value per channel"):
            op(*extra, x, gamma, beta, sample_weight=[0.0, 3.0])
        op(*extra, x, gamma, beta, sample_weight=[1.0, 3.0])
    ops.batch_norm(x.reshape(1, 3, 2, 1), gamma, beta, sample_weight=[2.0])


@pytest.mark.parametrize("params", [
    dict(conv_layers=((4, 3), "pool", (6, 3)), batch_norm=True, dropout=0.5),
    dict(conv_layers=((4, 3),), pooling="l2", activation="tanh"),
    dict(conv_layers=((4, 3),), pooling=None, hidden_layer_sizes=(8, 8)),
])
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_prediction_keeps_no_batch_alive(digits, estimator, params):
    """Layers keep the last forward pass's arrays for a backward pass; after
    a prediction nothing needs them, and a large batch would stay alive."""
    X, y = digits
    model = _fit(estimator(**{**SMALL, **params}), X[:300], y[:300])
    n = 777       # no training batch has as many rows

    def held(layer):
        for name, value in vars(layer).items():
            if name in ("_params", "_grads", "_buffers"):
                continue
            for item in value if isinstance(value, tuple) else (value,):
                if isinstance(item, np.ndarray) and item.ndim and item.shape[0] == n:
                    yield name

    model.predict(X[:n])
    assert [(layer.describe(), list(held(layer))) for layer in model.network_.layers
            if list(held(layer))] == []
    # training still runs its backward passes on what the forward kept
    model.partial_fit(X[:300], y[:300])
