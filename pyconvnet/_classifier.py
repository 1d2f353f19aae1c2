"""ConvNetClassifier: a convolutional network as a scikit-learn classifier.

What is particular to classification — encoding the labels (classes or a
multi-label indicator matrix), the output head (softmax or a sigmoid per
label), ``predict_proba``/``predict`` and the accuracy early stopping
follows — lives here; everything else in ``BaseConvNet``.
"""
from numbers import Real

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.utils._param_validation import Interval
from sklearn.utils.multiclass import (_check_partial_fit_first_call,
                                      check_classification_targets,
                                      type_of_target)
from sklearn.utils.validation import check_is_fitted, column_or_1d

from ._base import MAX_OUTPUTS, BaseConvNet, register_estimator, with_parameters
from ._docs import document


class ClassifierTargets:
    """A classifier's classes (or a multi-label model's label columns):
    member ``classes``; the file's ``multilabel`` picks the head."""

    members = ("classes",)

    @staticmethod
    def arrays(model):
        classes = np.asarray(model.classes_)
        if classes.dtype == object:
            classes = np.asarray(classes.tolist())
            if classes.dtype == object:
                raise TypeError("classes_ of mixed types cannot be saved without pickle")
        return {"classes": classes}

    @staticmethod
    def check_headers(headers, meta):
        """(number of outputs, head) from the members' headers."""
        shape, dtype = headers["classes"][:2]
        if (len(shape) != 1 or not 2 <= shape[0] <= MAX_OUTPUTS
                or dtype.hasobject or dtype.kind not in "biufUS"):
            raise ValueError(f"bad classes: shape {shape}, dtype {dtype}")
        multilabel = meta.get("multilabel", False)      # absent in older files
        if not isinstance(multilabel, bool):
            raise ValueError(f"multilabel must be a bool, got {multilabel!r}")
        return shape[0], "logistic" if multilabel else "softmax"

    @staticmethod
    def set(model, arrays, head):
        classes = arrays["classes"]
        if len(np.unique(classes)) != len(classes):
            raise ValueError("classes are not unique")
        if head == "logistic" and not np.array_equal(classes, np.arange(len(classes))):
            raise ValueError("a multi-label model's classes must be 0 .. n_labels - 1")
        model.classes_ = classes


_SUMMARY = """A convolutional neural network classifier.

    The network is a stack of convolution + activation + pooling layers
    (local receptive fields with shared weights, then pooling), then fully
    connected layers, then a softmax output trained on the log-likelihood
    (cross-entropy) cost (a sigmoid per label for a multi-label y).
    Parameters shared with scikit-learn's ``MLPClassifier`` have its names
    and meanings, so grids carry over.
"""


@document(
    _SUMMARY,
    parameters={"label_smoothing": ("float in [0, 1)", """\
Label smoothing (Szegedy et al. 2016): train towards the target
``(1 - label_smoothing) * onehot + label_smoothing / n_classes``
instead of the one-hot class (for multi-label y, each label towards
``(1 - label_smoothing) * y + label_smoothing / 2``). It keeps the
network from pushing its scores ever higher on training images it
already classifies, a regularisation that pays on data with
ambiguous classes; ``predict_proba`` is then less confident by
design. ``loss_curve_`` reports the smoothed loss, whose floor is
above 0.""")},
    attributes={
        "classes_": ("ndarray of shape (n_classes,)", """\
The class labels (for a multi-label y, its columns 0 .. n_labels - 1)."""),
        "out_activation_": ("str", """\
"softmax", or "logistic" (a sigmoid per label) for a multi-label y."""),
    },
    notes={"early_stopping": """\
The split is stratified and the score is the accuracy (subset accuracy
for a multi-label y), as in MLPClassifier: a class with a single sample
cannot be stratified and raises ValueError."""},
)
@register_estimator
@with_parameters(label_smoothing=0.0)
class ConvNetClassifier(ClassifierMixin, BaseConvNet):
    target_encoding = ClassifierTargets
    score_name = "accuracy"

    _parameter_constraints = {
        **BaseConvNet._parameter_constraints,
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
    }

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over the given batch of data.

        Parameters
        ----------
        X, y, sample_weight : as in :meth:`fit`
        classes : array-like of shape (n_classes,), default=None
            All the classes there will be; required on the first call (but
            for a multi-label y, whose columns are the labels).

        Returns
        -------
        self
        """
        self._check_partial_fit(first_call=not hasattr(self, "classes_"))
        # A multi-label y (a 0/1 matrix) names its labels by its columns: the
        # first call needs no ``classes``, and ``classes``, when given, must
        # name those columns (as MLPClassifier, which refuses others).
        multilabel = type_of_target(y) == "multilabel-indicator"
        if multilabel and classes is not None:
            n_labels = np.shape(y)[1]
            if sorted(np.unique(np.asarray(classes)).tolist()) != list(range(n_labels)):
                raise ValueError(
                    f"y is a multi-label indicator matrix of {n_labels} labels, "
                    f"whose classes are its columns 0 .. {n_labels - 1}; got "
                    f"classes={np.asarray(classes).tolist()!r}")
        first_multilabel = (not hasattr(self, "classes_") and classes is None
                            and multilabel)
        if first_multilabel or _check_partial_fit_first_call(self, classes):
            # A first call: forget any earlier fit.
            for attr in ("_network", "_optimizer"):
                self.__dict__.pop(attr, None)
        return self._fit(X, y, sample_weight, incremental=True)


    # Targets: the labels, or a multi-label indicator matrix, and the head.
    _stratify_validation = True

    def _fit(self, X, y, sample_weight, incremental):
        first_pass = self._first_pass(incremental)
        X, y, nd_shape = self._validate_X(X, y, reset=first_pass)
        check_classification_targets(y)
        target = type_of_target(y)
        if target not in ("binary", "multiclass", "multilabel-indicator"):
            raise ValueError(
                "y must be a 1-D array of class labels or a 2-D indicator matrix "
                f"of labels (multi-label), got {target}")
        multilabel = target == "multilabel-indicator"
        if not multilabel:
            y = column_or_1d(y, warn=True)   # a column vector warns, as elsewhere
        if not first_pass and multilabel != self.multilabel_:
            raise ValueError(
                "y is " + ("a multi-label indicator matrix" if multilabel else
                           "a vector of class labels") + ", but the model was "
                "fitted on " + ("class labels" if multilabel else
                                "a multi-label indicator matrix"))
        y = (self._encode_labels(y, first_pass) if multilabel else
             self._encode_classes(y, first_pass, incremental))
        return self._fit_checked(X, y, sample_weight, incremental, first_pass,
                                 nd_shape, len(self.classes_),
                                 "logistic" if multilabel else "softmax")

    def _encode_classes(self, y, first_pass, incremental):
        """Class labels as indices into ``classes_`` (set on a first fit)."""
        if not first_pass and not incremental:
            seen = np.unique(y)
            if set(seen.tolist()) != set(self.classes_.tolist()):
                raise ValueError(
                    "warm_start can only be used where `y` has the same "
                    "classes as in the previous call to fit. Previously "
                    f"got {self.classes_}, `y` has {seen}"
                )
        classes = self.classes_ if incremental or not first_pass else np.unique(y)
        if len(classes) < 2:
            raise ValueError(
                "ConvNetClassifier needs samples of at least 2 classes in the "
                f"data, but the data contains only one class: {classes[0]!r}"
            )
        self.classes_ = classes
        unseen = np.setdiff1d(np.unique(y), self.classes_)
        if unseen.size:
            raise ValueError(
                f"y contains labels not seen in the first fit or given as "
                f"classes: {unseen.tolist()}; expected {self.classes_.tolist()}"
            )
        return np.searchsorted(self.classes_, y).astype(np.intp)

    def _encode_labels(self, y, first_pass):
        """A multi-label indicator matrix, checked, as float64."""
        n_labels = y.shape[1]
        if not first_pass and n_labels != len(self.classes_):
            raise ValueError(
                f"y has {n_labels} labels, but the model was fitted on "
                f"{len(self.classes_)}")
        # The loss is the binary cross-entropy of each label: a target
        # outside {0, 1} makes it unbounded below, and training would
        # push the scores to infinity.
        values = np.unique(y)
        if not np.isin(values, (0, 1)).all():
            raise ValueError(
                "a multi-label y must be an indicator matrix of 0s and 1s, "
                f"got values {values.tolist()[:8]}; for {{-1, 1}} labels "
                "pass (y == 1)")
        # As MLPClassifier: the labels are the columns, 0 .. n_labels - 1.
        self.classes_ = np.arange(n_labels)
        return np.asarray(y, dtype=np.float64)

    # ------------------------------------------------------------------
    # Prediction
    # ------------------------------------------------------------------
    def _predict_idx(self, X):
        """Class indices, or the 0/1 label matrix of a multi-label model."""
        log_proba = self._output_of_valid(X)
        if self.multilabel_:
            return (log_proba > np.log(0.5)).astype(int)
        return np.argmax(log_proba, axis=1)

    def _validation_score(self, X_val, y_val, sw_val):
        """Weighted accuracy (subset accuracy for multi-label) on the
        early-stopping split."""
        predicted = self._predict_idx(X_val)
        if predicted.ndim == 2:
            correct = np.all(predicted == y_val, axis=1)
        else:
            correct = predicted == y_val
        return float(np.average(correct, weights=sw_val))

    def predict_log_proba(self, X):
        """Log of the class probabilities, shape (n_samples, n_classes)."""
        return self._output_of_valid(self._validate_predict_X(X))

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes); rows sum to 1.
        For a multi-label model, each label's probability (n_samples,
        n_labels)."""
        return np.exp(self.predict_log_proba(X))

    def predict(self, X):
        """The most probable class of each sample, shape (n_samples,); for a
        multi-label model the 0/1 indicator matrix (n_samples, n_labels) of
        the labels whose probability exceeds 0.5."""
        X = self._validate_predict_X(X)
        if self.multilabel_:
            return self._predict_idx(X)
        return self.classes_[self._predict_idx(X)]

    def prediction_layout(self, method):
        getattr(self, method)
        check_is_fitted(self)
        n_classes = len(self.classes_)
        if method == "predict":
            if self.multilabel_:
                return (n_classes,), np.dtype(int)
            return (), np.asarray(self.classes_).dtype
        return (n_classes,), self.dtype_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags
