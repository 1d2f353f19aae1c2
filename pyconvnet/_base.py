"""BaseConvNet: what every pyconvnet estimator shares, put together.

Each concern has its module: the hyperparameters (``_hyperparameters``),
reading X as images (``_input``), the fitted state and what pickling,
``save`` and ``load`` keep of it (``_fitted``). Here: the ``fit`` and
``partial_fit`` plumbing (the network's spec and construction, the solver,
the thread count, the training loop of ``_training``), prediction in
bounded-memory batches, the registry of estimators and what the add-ons
(``pyconvnet.save``/``load``, ``onnx``, ``plot``, ``dask``) ask an
estimator. A subclass encodes its targets (``target_encoding``), names its
output head (``_losses``), predicts and scores: ``ConvNetClassifier``,
``ConvNetRegressor``; each gets its ``__init__`` from ``with_parameters``
and registers itself (``register_estimator``).
"""
import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from . import _training
from ._fitted import FittedState
from ._hyperparameters import Hyperparameters, clone_with, with_parameters  # noqa: F401
from ._input import InputHandling
from ._network import check_batch
from ._optimizers import SOLVERS
from ._spec import build_spec
from ._threads import blas_single_threaded, effective_n_threads

# Prediction works through the data this many samples at a time, so memory
# stays bounded whatever the number of samples — fewer when one layer's output
# for that many samples would exceed PREDICT_BYTES (large images).
PREDICT_BATCH = 1024
PREDICT_BYTES = 256 * 2**20

# The most outputs (classes, labels, targets) a model file may declare.
MAX_OUTPUTS = 1 << 20

#: Every estimator class, by name: what ``pyconvnet.save``/``load``, the
#: ONNX converters and the other add-ons find the estimators by, so that none
#: of them keeps a list (``register_estimator``).
ESTIMATORS = {}


def register_estimator(cls):
    """Class decorator: make ``cls`` (a ``BaseConvNet`` with its
    ``target_encoding``) known to the add-ons."""
    ESTIMATORS[cls.__name__] = cls
    return cls


class BaseConvNet(Hyperparameters, InputHandling, FittedState, BaseEstimator):
    """Base class of the convolutional network estimators; not to be used
    directly. The parameters are documented on ``ConvNetClassifier``."""

    # ------------------------------------------------------------------
    # Fitting
    # ------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None):
        """Train the network on images X and targets y.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n_samples, height,
            width) or (n_samples, channels, height, width)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample's loss; a weight of 2 counts a sample twice.

        Returns
        -------
        self
        """
        self._validate_params()
        self._check_solver()
        return self._fit(X, y, sample_weight, incremental=False)

    def _check_partial_fit(self, first_call):
        """What ``partial_fit`` checks before anything else (the parameters
        on a first call, as MLPClassifier)."""
        if first_call:
            self._validate_params()
        if self.early_stopping:
            # As MLPClassifier: a held-out split of one batch means nothing.
            raise ValueError("partial_fit does not support early_stopping=True")
        self._check_solver()

    def _first_pass(self, incremental):
        """Whether this call starts a new network (a fit without warm
        start, or the first fit or partial_fit)."""
        return not hasattr(self, "_network") or (not self.warm_start
                                                 and not incremental)

    def _fit_checked(self, X, y, sample_weight, incremental, first_pass, nd_shape,
                     n_outputs, head):
        """Fit on validated X and targets the subclass encoded for its
        ``head`` (``_losses``) with ``n_outputs`` outputs."""
        n_threads = effective_n_threads(self.n_threads)
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                             ensure_non_negative=True)
        if sample_weight.sum() <= 0:
            raise ValueError("sample_weight must not sum to zero")

        if first_pass:
            image_shape = self._resolve_image_shape(X.shape[1], nd_shape)
            spec = self.network_spec(image_shape, n_outputs, X.dtype.type, head)
            # The training batches' memory, before any weight is allocated
            # (the training loop checks the exact sizes, after a validation
            # split).
            check_batch(spec, self._batch_size(X.shape[0]),
                        X.dtype.itemsize, training=True)
            self._init_fitted_state(image_shape, X.dtype.type, spec)
            if self.verbose:
                print(self.architecture_summary())
        else:
            if nd_shape is not None and tuple(nd_shape) != self.image_shape_:
                raise ValueError(
                    f"X holds images of shape {tuple(nd_shape)}, but the model "
                    f"was fitted on images of shape {self.image_shape_}"
                )
            self._check_architecture_unchanged(
                "warm_start" if not incremental else "partial_fit")
            X = X.astype(self._dtype, copy=False)
        self._optimizer = self._next_optimizer(incremental)

        self._network.set_threads(n_threads)
        with blas_single_threaded():
            _training.fit_epochs(self, X, y, sample_weight, incremental, n_threads)
        return self

    #: whether the early-stopping split is stratified by the targets
    _stratify_validation = False
    #: whether y must be numbers (a regressor's targets)
    _y_numeric = False

    def _validation_score(self, X_val, y_val, sw_val):
        """The score early stopping follows, on the held-out split."""
        raise NotImplementedError


    def _check_solver(self):
        """What the solver's hyperparameters must satisfy together (each
        alone is checked by ``_parameter_constraints``)."""
        SOLVERS[self.solver].check_settings(self._optimizer_settings())

    @property
    def _l2_alpha(self):
        """The L2 penalty the loss takes: ``alpha``, but for a solver that
        decays the weights in its step instead (AdamW)."""
        return 0.0 if SOLVERS[self.solver].decoupled_decay else self.alpha

    def _optimizer_settings(self):
        """The solver and its hyperparameters, by the estimator's names:
        what an optimizer is built from, and what ``save`` writes."""
        return {"solver": self.solver,
                **{name: getattr(self, name) for name in SOLVERS[self.solver].PARAMS}}

    def _next_optimizer(self, incremental):
        """The optimizer of this call. As in MLPClassifier, every ``fit`` (a
        warm start too) builds a fresh one from the current hyperparameters;
        ``partial_fit`` continues the last one — unless the solver's
        hyperparameters were changed since, which then take effect: a new
        optimizer at the same point of the schedule, keeping the moments
        (or velocities) when the solver is the same."""
        old = self._optimizer
        if (incremental and old is not None
                and getattr(old, "settings", None) == self._optimizer_settings()):
            return old
        new = self._new_optimizer(self._network)
        if incremental and old is not None:
            new.continue_from(old)
        return new

    def _new_optimizer(self, network):
        """An optimizer of ``network``'s flat parameters with these
        hyperparameters (``SOLVERS``)."""
        settings = self._optimizer_settings()
        return SOLVERS[settings["solver"]].from_settings(network, settings)

    def network_spec(self, image_shape, n_outputs, dtype, head):
        """The network these hyperparameters describe for images of
        ``image_shape`` (C, H, W), ``n_outputs`` outputs under the output
        ``head`` (``_losses``) and ``dtype``, checked against the kernels'
        limits and this machine's memory; nothing is allocated. (What
        ``pyconvnet.load`` checks a file against.)"""
        arch = self._architecture()
        return build_spec(
            image_shape, n_outputs, arch["conv_layers"], arch["padding"],
            arch["pooling"], arch["pool_size"], arch["hidden_layer_sizes"],
            arch["activation"], arch["dropout"], np.dtype(dtype).itemsize,
            arch["batch_norm"], self._plan_threads(), head=head)


    def _plan_threads(self):
        """The threads whose workspaces the plan checks: ``n_threads`` as
        it resolves here, or the default for a value this machine refuses
        (a file saved elsewhere still loads; using it then says why not)."""
        try:
            return effective_n_threads(self.n_threads)
        except (TypeError, ValueError):
            return effective_n_threads(None)

    def _batch_size(self, n_samples):
        if self.batch_size == "auto":
            return min(64, n_samples)
        return int(np.clip(self.batch_size, 1, n_samples))

    # ------------------------------------------------------------------
    # Prediction
    # ------------------------------------------------------------------
    def _output_of_valid(self, X):
        """The network's output (its loss's link: log-probabilities, or
        values) for validated 2-D X, in bounded-memory batches."""
        images = self._images(X)
        out = np.empty((X.shape[0], self._network.spec.layers[-1].out_shape[0]),
                       dtype=self._dtype)
        network = self._network
        per_sample = network.spec.largest_output * network.dtype.itemsize
        step = int(np.clip(PREDICT_BYTES // per_sample, 1, PREDICT_BATCH))
        network.check_batch(min(step, X.shape[0]), training=False)
        network.set_threads(effective_n_threads(self.n_threads))
        with blas_single_threaded():
            for lo in range(0, X.shape[0], step):
                out[lo:lo + step] = network.predict_output(
                    self._rows(images, slice(lo, lo + step)))
        # Once, not after every batch: freeing a batch's activations only to
        # allocate them again for the next costs more than the batch.
        network.forget()
        return out

    def check_params(self):
        """Check every hyperparameter (a ValueError or TypeError naming it),
        the network ones included, without fitting."""
        self._validate_params()
        self._check_solver()
        self._architecture()

    # ------------------------------------------------------------------
    # What the add-ons ask an estimator (instead of checking its class)
    # ------------------------------------------------------------------
    #: How the estimator's targets are saved and loaded: a class with
    #: ``members`` (the array names), ``arrays(model)``,
    #: ``check_headers(headers, meta)`` -> (n_outputs, head) and
    #: ``set(model, arrays, head)`` (``pyconvnet.save``/``load``).
    target_encoding = None
    #: What ``score`` and early stopping measure, for pictures and messages.
    score_name = None

    @property
    def multilabel_(self):
        """Whether the fitted model predicts several labels per sample (its
        output head's loss says so: a sigmoid per label)."""
        check_is_fitted(self)
        return self._network.loss.multilabel

    def prediction_layout(self, method):
        """``(tail, dtype)`` of what ``method`` ("predict", ...) returns:
        an array of shape ``(n_samples, *tail)``; an AttributeError for a
        method the estimator does not have (what ``pyconvnet.dask`` lays
        its lazy results out by)."""
        raise NotImplementedError

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = True
        return tags
