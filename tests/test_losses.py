"""The output heads: each loss's value against its definition, its gradient
against central differences, its link."""
import numpy as np
import pytest
from scipy.special import expit, log_softmax

from pyconvnet import _losses

import reference as ref


def _case(name, rng):
    scores = rng.standard_normal((5, 3)) * 2
    if name == "softmax":
        y = np.array([0, 2, 1, 2, 0])
    elif name == "logistic":
        y = rng.integers(0, 2, (5, 3))
    else:
        y = rng.standard_normal((5, 3))
    return scores, y, np.array([1.0, 0.5, 2.0, 0.0, 1.5])


def _definition(name, scores, y, w, eps=0.0):
    """The loss as written in its definition, with label smoothing's
    targets: (1 - eps) onehot + eps / K, or (1 - eps) y + eps / 2."""
    if name == "softmax":
        k = scores.shape[1]
        q = (1 - eps) * np.eye(k)[y] + eps / k
        per = -(q * log_softmax(scores, axis=1)).sum(axis=1)
    elif name == "logistic":
        p = expit(scores)
        t = (1 - eps) * y + eps / 2
        per = -(t * np.log(p) + (1 - t) * np.log(1 - p)).sum(axis=1)
    else:
        per = 0.5 * ((scores - y) ** 2).sum(axis=1)
    return np.dot(w, per) / w.sum()


@pytest.mark.parametrize("name, eps", [(name, 0.0) for name in sorted(_losses.LOSSES)]
                         + [("softmax", 0.1), ("softmax", 0.6), ("logistic", 0.2)])
def test_loss_value_and_gradient(name, eps):
    rng = np.random.default_rng(0)
    scores, y, w = _case(name, rng)
    loss = _losses.get(name)
    value, grad = loss.value_and_grad(scores.copy(), y, w, w.sum(), eps)
    assert value == pytest.approx(_definition(name, scores, y, w, eps), rel=1e-12)
    numeric = ref.numerical_grad(
        lambda s: loss.value_and_grad(s, y, w, w.sum(), eps)[0], scores.copy())
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)
    assert not grad[3].any()            # a zero weight: no gradient


def test_label_smoothing_is_for_classification_heads_only():
    scores, y, w = _case("identity", np.random.default_rng(0))
    with pytest.raises(ValueError, match="classification"):
        _losses.get("identity").value_and_grad(scores, y, w, w.sum(), 0.1)


def test_links():
    scores = np.array([[0.5, -1.0, 2.0]])
    np.testing.assert_allclose(_losses.get("softmax").link(scores),
                               log_softmax(scores, axis=1))
    np.testing.assert_allclose(_losses.get("logistic").link(scores),
                               np.log(expit(scores)))
    assert _losses.get("identity").link(scores) is scores
    with pytest.raises(ValueError, match="unknown output head"):
        _losses.get("hinge")
