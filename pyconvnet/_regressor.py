"""ConvNetRegressor: a convolutional network as a scikit-learn regressor.

What is particular to regression — the targets (one or several outputs,
standardised for training with ``normalize_y``), the squared-error head,
``predict`` and the R² early stopping follows — lives here; everything else
in ``BaseConvNet``, shared with ``ConvNetClassifier``.
"""
import warnings

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from ._base import MAX_OUTPUTS, BaseConvNet, register_estimator, with_parameters
from ._docs import document


class RegressorTargets:
    """A regressor's standardisation of its targets: members ``y_mean``
    and ``y_scale``, one float64 per output."""

    members = ("y_mean", "y_scale")

    @staticmethod
    def arrays(model):
        return {"y_mean": np.asarray(model.y_mean_, np.float64),
                "y_scale": np.asarray(model.y_scale_, np.float64)}

    @staticmethod
    def check_headers(headers, meta):
        shapes = {tuple(h[0]) for h in headers.values()}
        dtypes = {h[1] for h in headers.values()}
        if (len(shapes) != 1 or dtypes != {np.dtype(np.float64)}
                or len(next(iter(shapes))) != 1
                or not 1 <= next(iter(shapes))[0] <= MAX_OUTPUTS):
            raise ValueError(f"bad target scaling: shapes {sorted(shapes)}, "
                             f"dtypes {sorted(map(str, dtypes))}")
        return next(iter(shapes))[0], "identity"

    @staticmethod
    def set(model, arrays, head):
        mean, scale = arrays["y_mean"], arrays["y_scale"]
        if not (np.isfinite(mean).all() and np.isfinite(scale).all()
                and (scale > 0).all()):
            raise ValueError("the target scaling must be finite, with positive scales")
        model.n_outputs_ = len(mean)
        model.y_mean_, model.y_scale_ = mean, scale


_SUMMARY = """A convolutional neural network regressor.

    The network of ``ConvNetClassifier`` — convolutions with local receptive
    fields and shared weights, pooling, fully connected layers — ending in
    one linear output per target, trained on half the squared error, as
    scikit-learn's ``MLPRegressor``. Parameters shared with ``MLPRegressor``
    have its names and meanings, so grids carry over.
"""


@document(
    _SUMMARY,
    parameters={"normalize_y": ("bool", """\
Train on each target standardised (minus its weighted mean, divided
by its weighted standard deviation, both from the first fit or the
first ``partial_fit``), and undo it in ``predict``, so that targets
in any unit — degrees, years, thousands, kilometres times 1e-15 —
train with the same learning rate and predict alike (the predictions
of ``c * y`` are ``c`` times those of ``y``). A constant target is
scaled by its own magnitude. ``MLPRegressor`` has no such step and
trains on y as given (pass False for that); the loss
(``loss_curve_``, ``tol``) and ``alpha`` then refer to the
standardised targets. Targets beyond what ``dtype`` can represent
are a ValueError. Fixed by the first fit, as the architecture is.""")},
    attributes={
        "n_outputs_": ("int", """\
Targets per sample."""),
        "y_mean_": ("ndarray of shape (n_outputs_,)", """\
Each target's mean in the standardisation (0 with
``normalize_y=False``)."""),
        "y_scale_": ("ndarray of shape (n_outputs_,)", """\
Each target's scale in the standardisation (1 with
``normalize_y=False``)."""),
        "out_activation_": ("str", """\
"identity"."""),
    },
    notes={
        "early_stopping": """\
The split is not stratified and the score is the R² (averaged over
the outputs), as in MLPRegressor.""",
        "augment": """\
The augmentations change the image but not its target: mirror images,
shifts and erasing suit a target that they leave unchanged (a count, a
colour, a size) and not one they change (a position, a left/right
angle) — ``fit`` warns.""",
    },
)
@register_estimator
@with_parameters(normalize_y=True)
class ConvNetRegressor(RegressorMixin, BaseConvNet):
    target_encoding = RegressorTargets
    score_name = "R²"

    _parameter_constraints = {
        **BaseConvNet._parameter_constraints,
        "normalize_y": ["boolean"],
    }

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over the given batch of data (no ``classes``: a
        regressor's outputs are y's columns). The first call sets the
        targets' standardisation."""
        self._check_partial_fit(first_call=not hasattr(self, "_network"))
        return self._fit(X, y, sample_weight, incremental=True)

    _y_numeric = True
    _TARGET_PARAMS = ("normalize_y",)

    def _fit(self, X, y, sample_weight, incremental):
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but "
                             "the target y is None")
        first_pass = self._first_pass(incremental)
        X, y, nd_shape = self._validate_X(X, y, reset=first_pass)
        y = np.asarray(y, dtype=np.float64)
        y = y.reshape(-1, 1) if y.ndim == 1 else y
        if not first_pass and y.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {y.shape[1]} outputs, but the model was "
                             f"fitted on {self.n_outputs_}")
        if first_pass:
            self._set_scaling(y, _check_sample_weight(
                sample_weight, X, dtype=np.float64, ensure_non_negative=True))
        if self.augment is not None and first_pass:
            warnings.warn(
                f"augment={self.augment!r} changes each training image but not "
                "its target: use it only for targets that the change leaves as "
                "they are", UserWarning)
        return self._fit_checked(X, self._targets(y, X.dtype.type if first_pass
                                                  else self._dtype),
                                 sample_weight, incremental, first_pass, nd_shape,
                                 y.shape[1], "identity")

    def _set_scaling(self, y, sample_weight):
        """The targets' standardisation (weighted: a weight of 2 counts a
        sample twice), from ``standardisation``."""
        self.n_outputs_ = y.shape[1]
        if not self.normalize_y or sample_weight.sum() <= 0:
            self.y_mean_ = np.zeros(self.n_outputs_)
            self.y_scale_ = np.ones(self.n_outputs_)
            return
        self.y_mean_, self.y_scale_ = standardisation(y, sample_weight)

    def _targets(self, y, dtype):
        """y (float64, 2-D) as the network trains on it: standardised with
        the fitted scaling, checked to be representable in the network's
        ``dtype`` — y itself (what ``predict`` returns) and the
        standardised targets (what the loss reads)."""
        largest = np.finfo(dtype).max
        if np.abs(y).max(initial=0.0) > largest:
            raise ValueError(
                f"y holds values up to {np.abs(y).max():.3g} in magnitude, beyond "
                f"what this model's {np.dtype(dtype).name} can represent "
                f"({largest:.3g}): predictions would be inf. Use dtype='float64' "
                "or express y in a larger unit")
        z = (y - self.y_mean_) / self.y_scale_
        if not np.isfinite(z).all() or np.abs(z).max(initial=0.0) > largest:
            raise ValueError(
                "y, standardised with the scaling of the first fit (y_mean_, "
                "y_scale_), holds values beyond what this model's "
                f"{np.dtype(dtype).name} can represent: these targets are on "
                "another scale than those the model was first fitted on")
        return z

    def _validation_score(self, X_val, y_val, sw_val):
        """R² (averaged over the outputs) of the early-stopping split, in
        the standardised units it is invariant to."""
        return float(r2_score(y_val, self._output_of_valid(X_val),
                              sample_weight=sw_val))

    def predict(self, X):
        """The predicted targets: shape (n_samples,) for a model of one
        output (as ``MLPRegressor``), else (n_samples, n_outputs_)."""
        out = self._output_of_valid(self._validate_predict_X(X))
        out = (out * self.y_scale_ + self.y_mean_).astype(self._dtype, copy=False)
        return out.ravel() if self.n_outputs_ == 1 else out

    def prediction_layout(self, method):
        getattr(self, method)
        check_is_fitted(self)
        return (() if self.n_outputs_ == 1 else (self.n_outputs_,)), self.dtype_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


def standardisation(y, sample_weight):
    """Each column's weighted mean and standard deviation, as ``(mean,
    scale)``, with ``scale * c`` and ``mean * c`` those of ``y * c`` for any
    factor ``c`` (to rounding), so that a target trains alike in any unit.

    The sums are taken on ``y`` divided by its largest magnitude, which lies
    in [-1, 1]: the squares can neither overflow (y of 1e160) nor underflow
    (y of 1e-300) wherever the mean and the deviation are themselves
    representable. A spread below 1e-12 of that magnitude is rounding, not
    signal: the column is constant and its scale is its mean's magnitude
    (1 for a column of zeros), so that predictions stay in the target's units rather
    than in absolute ones.
    """
    peak = np.abs(y).max(axis=0)
    unit = np.where(peak > 0, peak, 1.0)
    z = y / unit
    mean = np.average(z, axis=0, weights=sample_weight)
    spread = np.sqrt(np.average((z - mean) ** 2, axis=0, weights=sample_weight))
    constant = spread <= 1e-12
    scale = np.where(constant, np.where(mean != 0, np.abs(mean), 1.0), spread)
    return mean * unit, scale * unit
