"""The output heads: each loss with its value and gradient, its prediction
link, its row of the architecture summary and its ONNX output.

A network ends in raw scores (the last dense layer); its spec's ``head``
names the loss on top (``LOSSES``):

- ``"softmax"``: softmax over classes and the log-likelihood of the class
  (cross-entropy), as MLPClassifier for one label per sample;
- ``"logistic"``: a sigmoid per label and the binary cross-entropy summed
  over the labels, as MLPClassifier for multi-label targets;
- ``"identity"``: the scores themselves and half the squared error summed
  over the outputs, as MLPRegressor.

Every loss is a weighted mean over the samples: ``sum_i w_i l_i / sum_i
w_i``, so that a weight of 2 means "this sample twice".

The classification heads take label smoothing ``eps`` (Szegedy et al.
2016): the target of each output moves from 0 or 1 towards the uniform
guess, ``(1 - eps) * y + eps / K`` for the softmax over K classes and
``(1 - eps) * y + eps / 2`` for each label's sigmoid. The network then is
never pushed to ever larger scores for a training label it already gets
right, which keeps it from overconfidence on data with noisy or
ambiguous labels (a shirt that could be a T-shirt).
"""
import numpy as np
from scipy.special import expit


def _log_softmax(scores):
    """Row-wise log-softmax, stable for large scores; a new array.

    Plain numpy: scipy's logsumexp costs ~0.3 ms a call in argument handling,
    more than the whole loss at batch 10.
    """
    shifted = scores - scores.max(axis=1, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return shifted


class Loss:
    #: the head's name in a network spec
    name = None
    #: whether each output is a label of its own (a multi-label classifier):
    #: the one place that says which head means multi-label
    multilabel = False
    #: the last row of the architecture summary
    summary = None

    def value_and_grad(self, scores, y, sample_weight, total, smoothing=0.0):
        """The weighted mean loss of a batch (``total`` is the weights' sum)
        and its gradient with respect to the scores, a new array;
        ``smoothing``: label smoothing's eps, for the heads that take it."""
        raise NotImplementedError

    def link(self, scores):
        """What prediction returns for these scores: log-probabilities for
        the classification heads, the values for regression."""
        raise NotImplementedError

    def to_onnx(self, graph, scores):
        """The ONNX nodes of ``link`` (probabilities, not their logarithm);
        returns the output's name."""
        raise NotImplementedError


class SoftmaxCrossEntropy(Loss):
    name = "softmax"
    summary = "softmax"

    def value_and_grad(self, scores, y, sample_weight, total, smoothing=0.0):
        # ``y`` holds class indices. With targets q = (1 - eps) onehot +
        # eps / K the loss is -sum_k q_k log p_k.
        log_p = _log_softmax(scores)
        rows = np.arange(len(y))
        per_sample = log_p[rows, y]
        if smoothing:
            per_sample = ((1 - smoothing) * per_sample
                          + smoothing * log_p.mean(axis=1, dtype=np.float64))
        loss = -float(np.dot(sample_weight, per_sample)) / total
        # d loss / d scores = w_i (softmax - q) / sum w
        grad = np.exp(log_p, out=log_p)
        grad[rows, y] -= 1 - smoothing
        if smoothing:
            grad -= grad.dtype.type(smoothing / scores.shape[1])
        grad *= (sample_weight / total).astype(grad.dtype)[:, None]
        return loss, grad

    def link(self, scores):
        return _log_softmax(scores)

    def to_onnx(self, graph, scores):
        return graph.node("Softmax", [scores], "proba", axis=1)


class SigmoidCrossEntropy(Loss):
    name = "logistic"
    summary = "sigmoid per label"
    multilabel = True

    def value_and_grad(self, scores, y, sample_weight, total, smoothing=0.0):
        # ``y`` is the (n, n_labels) 0/1 matrix, smoothed to (1 - eps) y +
        # eps / 2. -[y log s(z) + (1 - y) log(1 - s(z))] = log(1 + e^z) - y z,
        # and d/dz = s(z) - y.
        y = y.astype(scores.dtype, copy=False)
        if smoothing:
            y = y * scores.dtype.type(1 - smoothing) + scores.dtype.type(smoothing / 2)
        per_sample = (np.logaddexp(0, scores) - y * scores).sum(axis=1)
        loss = float(np.dot(sample_weight, per_sample)) / total
        grad = expit(scores)
        grad -= y
        grad *= (sample_weight / total).astype(grad.dtype)[:, None]
        return loss, grad

    def link(self, scores):
        return -np.logaddexp(0, -scores)       # log sigmoid, stable

    def to_onnx(self, graph, scores):
        return graph.node("Sigmoid", [scores], "proba")


class SquaredError(Loss):
    name = "identity"
    summary = "identity"

    def value_and_grad(self, scores, y, sample_weight, total, smoothing=0.0):
        if smoothing:
            raise ValueError("label smoothing applies to classification heads only")
        # ``y`` is (n, n_outputs); 1/2 sum_k (z_k - y_k)^2 per sample, whose
        # gradient is z - y.
        y = y.astype(scores.dtype, copy=False).reshape(scores.shape)
        grad = scores - y
        per_sample = 0.5 * np.einsum("ij,ij->i", grad, grad, dtype=np.float64)
        loss = float(np.dot(sample_weight, per_sample)) / total
        grad *= (sample_weight / total).astype(grad.dtype)[:, None]
        return loss, grad

    def link(self, scores):
        return scores

    def to_onnx(self, graph, scores):
        return scores


LOSSES = {loss.name: loss for loss in (SoftmaxCrossEntropy(), SigmoidCrossEntropy(),
                                       SquaredError())}


def get(name):
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown output head {name!r}; known: {sorted(LOSSES)}") from None
