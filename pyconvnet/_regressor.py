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
from sklearn.utils.validation import _check_sample_weight

from ._base import BaseConvNet, with_parameters


@with_parameters(normalize_y=True)
class ConvNetRegressor(RegressorMixin, BaseConvNet):
    """A convolutional neural network regressor.

    The network of ``ConvNetClassifier`` — convolutions with local receptive
    fields and shared weights, pooling, fully connected layers — ending in
    one linear output per target, trained on half the squared error, as
    scikit-learn's ``MLPRegressor``. Parameters shared with ``MLPRegressor``
    have its names and meanings, so grids carry over; the others are
    ``ConvNetClassifier``'s and documented there (conv_layers, padding,
    pooling, pool_size, dropout, batch_norm, image_shape, n_threads, dtype,
    augment, the "cosine" schedule).

    Parameters
    ----------
    conv_layers, padding, pooling, pool_size, hidden_layer_sizes, activation, \
dropout, batch_norm, solver, alpha, batch_size, learning_rate, \
learning_rate_init, power_t, max_iter, shuffle, random_state, tol, verbose, \
warm_start, momentum, nesterovs_momentum, early_stopping, \
validation_fraction, beta_1, beta_2, epsilon, n_iter_no_change, \
image_shape, n_threads, dtype, augment
        As in ``ConvNetClassifier``; ``early_stopping`` follows the R² of
        the held-out split (not stratified), as ``MLPRegressor``. The
        augmentations change the image but not its target: mirror images,
        shifts and erasing suit a target that they leave unchanged (a count,
        a colour, a size) and not one they change (a position, a left/right
        angle) — ``fit`` warns.
    normalize_y : bool, default=True
        Train on each target standardised (minus its weighted mean, divided
        by its weighted standard deviation, both from the first fit or the
        first ``partial_fit``), and undo it in ``predict``, so that targets
        in any unit — degrees, years, thousands — train with the same
        learning rate. ``MLPRegressor`` has no such step and trains on y as
        given (pass False for that); the loss (``loss_curve_``, ``tol``) and
        ``alpha`` then refer to the standardised targets.

    Attributes
    ----------
    n_outputs_ : int
        Targets per sample.
    y_mean_, y_scale_ : ndarray of shape (n_outputs_,)
        The standardisation of the targets (0 and 1 with
        ``normalize_y=False``).
    n_features_in_, feature_names_in_, image_shape_, layers_, coefs_, \
intercepts_, n_iter_, t_, loss_, loss_curve_, best_loss_, \
validation_scores_, best_validation_score_, n_layers_
        As in ``ConvNetClassifier``.
    out_activation_ : str
        "identity".
    """

    _parameter_constraints = {
        **BaseConvNet._parameter_constraints,
        "normalize_y": ["boolean"],
    }

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over the given batch of data (no ``classes``: a
        regressor's outputs are y's columns). The first call sets the
        targets' standardisation."""
        if not hasattr(self, "_network"):
            self._validate_params()
        if self.early_stopping:
            # As MLPRegressor: a held-out split of one batch means nothing.
            raise ValueError("partial_fit does not support early_stopping=True")
        return self._fit(X, y, sample_weight, incremental=True)

    _y_numeric = True

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
        return self._fit_checked(X, (y - self.y_mean_) / self.y_scale_,
                                 sample_weight, incremental, first_pass, nd_shape,
                                 y.shape[1], "identity")

    def _set_scaling(self, y, sample_weight):
        """The targets' standardisation (weighted: a weight of 2 counts a
        sample twice); a constant target keeps a scale of 1."""
        self.n_outputs_ = y.shape[1]
        if not self.normalize_y or sample_weight.sum() <= 0:
            self.y_mean_ = np.zeros(self.n_outputs_)
            self.y_scale_ = np.ones(self.n_outputs_)
            return
        mean = np.average(y, axis=0, weights=sample_weight)
        scale = np.sqrt(np.average((y - mean) ** 2, axis=0, weights=sample_weight))
        # A spread this small against the mean is rounding, not signal.
        tiny = scale <= 1e-12 * np.maximum(np.abs(mean), 1.0)
        self.y_mean_ = mean
        self.y_scale_ = np.where(tiny, 1.0, scale)

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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
