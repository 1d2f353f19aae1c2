"""BaseConvNet: what every pyconvnet estimator shares.

The hyperparameters and their constraints, reading X as images, the
``fit``/``partial_fit`` plumbing (the network's spec and construction, the
optimizer, the thread count, the training loop of ``_training``), the fitted
state and its one list (which pickling and ``pyconvnet.save``/``load``
both follow), prediction in bounded-memory batches, and the public methods
the add-ons (``pyconvnet.save``/``load``, ``onnx``, ``plot``, ``dask``) use.
A subclass encodes its targets, names its output head (``_losses``) and
predicts and scores: ``ConvNetClassifier``, ``ConvNetRegressor``; each gets
its ``__init__`` from ``with_parameters``.
"""
import inspect
import warnings
from numbers import Integral, Real

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import (_check_sample_weight, check_array,
                                      check_is_fitted, validate_data)

from . import _activations, _geometry, _training
from ._augment import AUGMENT_KINDS
from ._geometry import INT_MAX
from ._network import build_network, check_batch
from ._optimizers import SOLVERS
from ._spec import build_spec, parse_conv_layers
from ._threads import blas_single_threaded, effective_n_threads
from .ops import FLOAT_DTYPES, POOL_KINDS

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


def _check_sizes(value, name):
    try:
        sizes = np.atleast_1d(np.asarray(value, dtype=object))
    except (ValueError, TypeError, RecursionError):
        sizes = None
    if sizes is None or sizes.ndim != 1 or not all(
        isinstance(v, (Integral, np.integer)) and not isinstance(v, bool)
        and 1 <= v <= INT_MAX for v in sizes
    ):
        raise ValueError(f"{name} must hold ints in [1, {INT_MAX}], got {value!r}")
    return tuple(int(v) for v in sizes)


class BaseConvNet(BaseEstimator):
    """Base class of the convolutional network estimators; not to be used
    directly. The parameters are documented on ``ConvNetClassifier``."""

    _parameter_constraints = {
        "conv_layers": ["array-like"],
        "padding": [StrOptions({"same", "valid"})],
        "pooling": [StrOptions(set(POOL_KINDS)), None],
        "pool_size": [Interval(Integral, 1, None, closed="left"), tuple, list],
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(_activations.NAMES))],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "batch_norm": ["boolean"],
        "solver": [StrOptions(set(SOLVERS))],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive",
                                      "cosine"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"),
                             Options(Real, {np.inf})],
        "image_shape": [tuple, list, None],
        "n_threads": [Interval(Integral, None, None, closed="neither"), None],
        "dtype": [StrOptions({"float32", "float64"}), None],
        "augment": [StrOptions(set(AUGMENT_KINDS)), None],
    }

    def __init__(
        self,
        conv_layers=((20, 5), (40, 5)),
        padding="same",
        pooling="max",
        pool_size=2,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        dropout=0.0,
        batch_norm=False,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=100,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        image_shape=None,
        n_threads=None,
        dtype=None,
        augment=None,
    ):
        self.conv_layers = conv_layers
        self.padding = padding
        self.pooling = pooling
        self.pool_size = pool_size
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.image_shape = image_shape
        self.n_threads = n_threads
        self.dtype = dtype
        self.augment = augment

    # ------------------------------------------------------------------
    # Input handling
    # ------------------------------------------------------------------
    def _input_dtypes(self, reset=False):
        if self.dtype is not None:
            return np.dtype(self.dtype).type
        if hasattr(self, "_dtype") and not reset:
            # Predicting, or continuing a fit: the fitted precision. A new
            # fit (reset) takes the precision of its own X.
            return self._dtype
        # ops.result_dtype's rule for one array, with float32 as the
        # default: check_array keeps a dtype of this list and converts any
        # other to the first.
        return [np.float32] + [d for d in FLOAT_DTYPES if d != np.float32]

    def _validate_X(self, X, y=None, reset=True):
        """Validate X (and y); return the 2-D X, y and X's image shape if nd."""
        nd_shape = None
        if (hasattr(X, "__array__") and not hasattr(X, "dtype")
                and not hasattr(X, "columns") and not sparse.issparse(X)):
            # An array in another wrapper: its values' precision decides the
            # network's, as for the array itself.
            X = np.asarray(X)
        ndim = getattr(X, "ndim", None)
        if ndim is None and isinstance(X, (list, tuple)):
            ndim = np.ndim(X)
        if not sparse.issparse(X) and not hasattr(X, "iloc") and (ndim or 0) > 2:
            if ndim > 4:
                raise ValueError(
                    f"X must be 2-D (n_samples, n_features), 3-D (n_samples, "
                    f"height, width) or 4-D (n_samples, channels, height, "
                    f"width); got a {ndim}-D array"
                )
            X = check_array(X, allow_nd=True, dtype=self._input_dtypes(reset),
                            ensure_all_finite=True)
            nd_shape = X.shape[1:] if X.ndim == 4 else (1,) + X.shape[1:]
            if reset:
                _warn_if_channels_last(nd_shape)
            X = X.reshape(X.shape[0], -1)
        # Sparse X stays sparse (CSR, whose rows slice cheaply): batches are
        # densified one at a time, in training and in prediction.
        kwargs = dict(dtype=self._input_dtypes(reset), ensure_all_finite=True,
                      order="C", reset=reset, accept_sparse="csr")
        if y is None:
            X = validate_data(self, X, **kwargs)
        else:
            X, y = validate_data(self, X, y, multi_output=True,
                                 y_numeric=self._y_numeric, **kwargs)
            if sparse.issparse(y):
                y = y.toarray()
        return X, y, nd_shape

    def _resolve_image_shape(self, n_features, nd_shape):
        if self.image_shape is not None:
            shape = _check_sizes(self.image_shape, "image_shape")
            if len(shape) not in (2, 3):
                raise ValueError(
                    "image_shape must be (height, width) or (channels, height, "
                    f"width), got {self.image_shape!r}"
                )
            if len(shape) == 2:
                shape = (1,) + shape
            if int(np.prod(shape)) != n_features:
                raise ValueError(
                    f"image_shape {tuple(self.image_shape)} holds "
                    f"{int(np.prod(shape))} values per sample, but X has "
                    f"{n_features} features"
                )
            if nd_shape is not None and tuple(nd_shape) != shape:
                # Reading (n, 28, 28) as, say, (1, 14, 56) would shuffle the
                # pixels, and predict on the same X would then fail.
                raise ValueError(
                    f"image_shape {tuple(self.image_shape)} disagrees with the "
                    f"images in X, of shape {tuple(nd_shape)}; pass 2-D X "
                    "(n_samples, n_features) to have its rows reshaped, or "
                    "leave image_shape=None"
                )
            return shape
        if nd_shape is not None:
            return tuple(int(s) for s in nd_shape)
        side = int(round(np.sqrt(n_features)))
        if side * side == n_features:
            return (1, side, side)
        return (1, 1, n_features)

    def _images(self, X):
        """Dense X as (n, C, H, W), a view; sparse X as it is (see _rows)."""
        if sparse.issparse(X):
            return X
        return X.reshape((X.shape[0],) + self.image_shape_)

    def _rows(self, images, rows):
        """The images at ``rows`` (indices or a slice) as a dense
        (n, C, H, W) array: only this batch is densified for sparse X."""
        if sparse.issparse(images):
            batch = images[rows].toarray().astype(self._dtype, copy=False)
            return batch.reshape((batch.shape[0],) + self.image_shape_)
        if isinstance(rows, slice):
            return images[rows]
        return np.take(images, rows, axis=0)

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

    # The hyperparameters that shape the network.
    _ARCHITECTURE_PARAMS = ("conv_layers", "padding", "pooling", "pool_size",
                            "hidden_layer_sizes", "activation", "dropout",
                            "batch_norm", "image_shape", "dtype")

    #: The hyperparameters of a subclass's target encoding, which the first
    #: fit fixes as it fixes the architecture (``normalize_y``).
    _TARGET_PARAMS = ()

    def _architecture(self, params=None):
        """The hyperparameters that shape the network (this estimator's, or
        those of ``params``, a dict by the same names), normalised so that
        equal architectures compare equal ((5, 5) and 5, "logistic" and
        "sigmoid")."""
        p = self.get_params() if params is None else params
        pool = None
        if p["pooling"] is not None:
            try:
                pool = _geometry.pair(p["pool_size"], "pool_size")
            except (TypeError, ValueError):
                raise ValueError(
                    f"pool_size must be an int or an (h, w) pair of ints in "
                    f"[1, {INT_MAX}], got {p['pool_size']!r}") from None
        image_shape = None
        if p["image_shape"] is not None:
            image_shape = _check_sizes(p["image_shape"], "image_shape")
            image_shape = (1,) * (3 - len(image_shape)) + image_shape
        conv_layers = parse_conv_layers(p["conv_layers"], p["pooling"])
        return {
            "conv_layers": conv_layers,
            "padding": p["padding"],
            "pooling": p["pooling"],
            "pool_size": pool,
            "hidden_layer_sizes": _check_sizes(p["hidden_layer_sizes"],
                                               "hidden_layer_sizes"),
            "activation": _activations.canonical(p["activation"]),
            "dropout": float(p["dropout"]),
            "batch_norm": bool(p["batch_norm"]),
            "image_shape": image_shape,
            # A name, not a numpy dtype: np.dtype(None) is float64, and
            # float64 would compare equal to None.
            "dtype": None if p["dtype"] is None else np.dtype(p["dtype"]).name,
        }

    def _check_architecture_unchanged(self, what):
        """A warm start, ``partial_fit`` or ``save`` works on the network
        built by the first fit and on its target encoding: refuse when a
        hyperparameter that shaped either (``_ARCHITECTURE_PARAMS``,
        ``_TARGET_PARAMS``) has been changed since (``set_params``), instead
        of silently keeping the old network (or writing a file whose
        parameters describe another one)."""
        built_params = self.__dict__.get("_built_params")
        if built_params is None:   # unpickled from a version that did not keep them
            return
        built = self._architecture(built_params)
        now = self._architecture()
        changed = [name for name, value in now.items() if value != built[name]]
        # None means "the fitted precision", and an image_shape of None "as
        # fitted": only an explicit value can disagree.
        if "dtype" in changed and now["dtype"] in (None, np.dtype(self._dtype).name):
            changed.remove("dtype")
        if "image_shape" in changed and now["image_shape"] in (None, self.image_shape_):
            changed.remove("image_shape")
        params = self.get_params()
        # (A model from a version that did not record one is taken as is.)
        changed += [name for name in self._TARGET_PARAMS
                    if name in built_params and params[name] != built_params[name]]
        if changed:
            raise ValueError(
                f"{what} continues the network built by the first fit, but "
                "hyperparameters that shape it or its targets were changed "
                "since: "
                + ", ".join(f"{name}={params[name]!r}" for name in changed)
                + " (the network was built with "
                + ", ".join(f"{name}={built_params[name]!r}" for name in changed)
                + "); set them back, or fit a new model with warm_start=False")

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

    def _init_fitted_state(self, image_shape, dtype, spec):
        """Everything a first fit starts from — and ``load`` too, which then
        overwrites the weights and the training history: the network of
        ``spec`` built from the one ``random_state`` (which keeps driving
        shuffling and dropout afterwards), no optimizer yet, an empty
        history. The subclass has set its target encoding (``classes_``)."""
        self._dtype = dtype
        self.image_shape_ = tuple(image_shape)
        self._random_state = check_random_state(self.random_state)
        self._network = build_network(spec, self._random_state, dtype)
        self._optimizer = None
        params = self.get_params()
        self._built_params = {name: params[name] for name in
                              self._ARCHITECTURE_PARAMS + self._TARGET_PARAMS}
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        self._start_stopping_rule(self.early_stopping)
        self._publish_architecture()

    def _start_stopping_rule(self, early_stopping):
        """The state of the stopping rule: the validation score's with
        ``early_stopping``, the training loss's without (as MLPClassifier)."""
        self._no_improvement_count = 0
        if early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = np.inf

    def _publish_architecture(self):
        # The weight layers (convolutions and dense layers), as in
        # MLPClassifier; a convolution without bias (before batch norm)
        # shows a read-only zero intercept.
        layers = [l for l in self._network.layers if l.weight_layer]
        self.coefs_ = [l.params[0] for l in layers]
        self.intercepts_ = [l.params[1] if len(l.params) > 1 else
                            _zeros_readonly(l.params[0].shape[0], l.params[0].dtype)
                            for l in layers]
        self.layers_ = self._network.summary()
        self.n_layers_ = len(layers) + 2
        self.out_activation_ = self._network.out_activation

    def architecture_summary(self):
        """The network built, one line per layer, as a printable table."""
        check_is_fitted(self)
        rows = [(row["layer"], "x".join(str(s) for s in row["output_shape"]),
                 f"{row['n_params']:,}") for row in self.layers_]
        rows.append(("total", "", f"{sum(r['n_params'] for r in self.layers_):,}"))
        # Columns as wide as their longest entry, two spaces apart.
        name_w = max(len("layer"), *(len(r[0]) for r in rows)) + 2
        shape_w = max(len("output shape"), *(len(r[1]) for r in rows)) + 2
        params_w = max(len("params"), *(len(r[2]) for r in rows))
        lines = [f"{'layer':<{name_w}}{'output shape':<{shape_w}}{'params':>{params_w}}"]
        lines += [f"{n:<{name_w}}{sh:<{shape_w}}{p:>{params_w}}" for n, sh, p in rows]
        return "\n".join(lines)

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
        return out

    def _validate_predict_X(self, X):
        check_is_fitted(self)
        X, _, nd_shape = self._validate_X(X, reset=False)
        if nd_shape is not None and tuple(nd_shape) != self.image_shape_:
            raise ValueError(
                f"X holds images of shape {tuple(nd_shape)}, but the model was "
                f"fitted on images of shape {self.image_shape_}"
            )
        return X.astype(self._dtype, copy=False)

    # ------------------------------------------------------------------
    # The fitted state, in one place: pickling and pyconvnet.save/load both
    # follow these lists.
    # ------------------------------------------------------------------
    #: The training history: plain values, pickled as they are, written by
    #: ``pyconvnet.save`` and restored (checked) by ``load``.
    HISTORY_ATTRIBUTES = ("n_features_in_", "n_iter_", "t_", "loss_", "best_loss_",
                          "best_validation_score_", "_no_improvement_count",
                          "loss_curve_", "validation_scores_")
    #: Derived from the network (``coefs_`` and ``intercepts_`` are views of
    #: its parameters, which a pickled copy would no longer follow): never
    #: pickled nor saved, published again on unpickling and loading.
    DERIVED_ATTRIBUTES = ("coefs_", "intercepts_", "layers_", "n_layers_",
                          "out_activation_")
    #: What was learnt about this machine (the thread governor): neither.
    MACHINE_ATTRIBUTES = ("_governor",)

    @property
    def network_(self):
        """The fitted network (``pyconvnet._network.Network``): its layers,
        spec and flat parameter array."""
        check_is_fitted(self)
        return self._network

    @property
    def dtype_(self):
        """The precision the fitted network computes in."""
        check_is_fitted(self)
        return np.dtype(self._dtype)

    def as_images(self, X):
        """X validated as prediction validates it, as (n, C, H, W) images
        of the fitted shape and precision (dense)."""
        images = self._images(self._validate_predict_X(X))
        return self._rows(images, slice(None))

    def check_params(self):
        """Check every hyperparameter (a ValueError or TypeError naming it),
        the network ones included, without fitting."""
        self._validate_params()
        self._check_solver()
        self._architecture()

    def training_state(self, what="save"):
        """Where training stands, as plain data: ``{"history": the
        HISTORY_ATTRIBUTES, "optimizer": None before training, else
        {"settings": the solver and its hyperparameters it was built with,
        "scalars": ..., "arrays": ...}}``. A ValueError naming ``what`` if
        hyperparameters that shape the network were changed since the fit
        (the state would then describe another network)."""
        check_is_fitted(self)
        self._check_architecture_unchanged(what)
        state = {"history": {name: getattr(self, name)
                             for name in self.HISTORY_ATTRIBUTES},
                 "optimizer": None}
        optimizer = self._optimizer
        if optimizer is not None:
            scalars, arrays = optimizer.get_state()
            settings = getattr(optimizer, "settings", None)
            if settings is None:       # unpickled from a version without them
                settings = self._optimizer_settings()
            state["optimizer"] = {"settings": dict(settings), "scalars": scalars,
                                  "arrays": arrays}
        return state

    def restore(self, image_shape, dtype, spec, weights, state):
        """Make this estimator the fitted model of network ``spec`` (see
        ``network_spec``) with ``weights`` (its parameters in order) and a
        ``training_state()``; the subclass's target encoding (``classes_``)
        is set first. What ``pyconvnet.load`` does once it has checked a
        file; the values are trusted."""
        self._init_fitted_state(image_shape, dtype, spec)
        params = self._network.params
        if len(weights) != len(params):
            raise ValueError(f"{len(weights)} weight arrays for a network of "
                             f"{len(params)}")
        for target, value in zip(params, weights):
            target[...] = value
        optimizer = state.get("optimizer")
        if optimizer is not None:
            settings = optimizer["settings"]
            self._optimizer = SOLVERS[settings["solver"]].from_settings(self._network,
                                                                        settings)
            self._optimizer.set_state(optimizer["scalars"], optimizer["arrays"])
        for name, value in state["history"].items():
            setattr(self, name, value)
        if self.best_loss_ is None and not self.early_stopping:
            self.best_loss_ = np.inf
        return self

    def __getstate__(self):
        # A new dict: on Python >= 3.11, BaseEstimator.__getstate__ returns
        # the live __dict__, and removing keys from it would strip the
        # fitted attributes off the model being pickled (or deep-copied).
        state = dict(super().__getstate__())
        from . import __version__

        state["_pyconvnet_version"] = __version__
        for name in self.DERIVED_ATTRIBUTES + self.MACHINE_ATTRIBUTES:
            state.pop(name, None)
        return state

    def __setstate__(self, state):
        from . import __version__

        saved = state.pop("_pyconvnet_version", "unknown")
        if saved != __version__:
            warnings.warn(
                f"Unpickling a {type(self).__name__} saved by pyconvnet {saved} with "
                f"pyconvnet {__version__}: this might break or give wrong results. "
                "pyconvnet.save/load checks a model file instead of trusting it.",
                UserWarning,
            )
        # A hyperparameter added since the pickle was made takes its default.
        defaults = inspect.signature(type(self).__init__).parameters
        for name in self._get_param_names():
            if name not in state and defaults[name].default is not inspect.Parameter.empty:
                state[name] = defaults[name].default
        super().__setstate__(state)
        if "_network" in self.__dict__:
            self._adopt_older_network()
            self._publish_architecture()

    def _adopt_older_network(self):
        """A network pickled by pyconvnet 0.1.0 has no spec (and its
        convolutions no ``in_shape``): rebuild them from the
        hyperparameters it was built with, and check that they describe
        the pickled weights."""
        network = self._network
        if "spec" in network.__dict__:
            return
        built = self.__dict__.get("_built_params")
        params = dict(self.get_params(), **(built or {}))
        spec = clone_with(self, params).network_spec(
            self.image_shape_, network.layers[-1].out_shape[0], self._dtype,
            network.out_activation)
        shapes = [tuple(p.shape) for p in network.params]
        if ([tuple(s) for s in spec.param_shapes] != shapes
                or len(spec.layers) != len(network.layers)):
            raise ValueError("the pickled network does not match the "
                             "architecture its hyperparameters describe")
        network.spec = spec
        for layer, layer_spec in zip(network.layers, spec.layers):
            layer.__dict__.setdefault("in_shape", tuple(layer_spec.in_shape))

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

    def __sklearn_is_fitted__(self):
        return hasattr(self, "_network")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = True
        return tags


def with_parameters(**extra):
    """Class decorator: an ``__init__`` for an estimator that takes
    ``BaseConvNet``'s hyperparameters and, keyword-only after them, ``extra``
    (name=default). scikit-learn reads an estimator's hyperparameters from
    its ``__init__`` signature, so each estimator needs one that names them
    all; this one is written once, here, and each estimator adds its own
    (``label_smoothing``, ``normalize_y``) instead of restating the list.
    Like every scikit-learn ``__init__`` it only stores what it is given."""
    base = inspect.signature(BaseConvNet.__init__)
    signature = base.replace(parameters=[
        *base.parameters.values(),
        *(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
          for name, default in extra.items())])

    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        for name, value in list(bound.arguments.items())[1:]:
            setattr(self, name, value)

    __init__.__signature__ = signature

    def decorate(cls):
        __init__.__qualname__ = f"{cls.__name__}.__init__"
        cls.__init__ = __init__
        return cls
    return decorate


def clone_with(model, params):
    """An unfitted copy of ``model`` with ``params`` (by name) changed."""
    return type(model)(**{**model.get_params(deep=False), **params})


def _zeros_readonly(n, dtype):
    zeros = np.zeros(n, dtype)
    zeros.flags.writeable = False
    return zeros



def _warn_if_channels_last(shape):
    """Warn when (C, H, W) looks like (H, W, C): the last axis the size of
    colour channels and the first not."""
    channels = (1, 3, 4)
    if shape[2] in channels and shape[0] not in channels and shape[1] > 4:
        warnings.warn(
            f"X holds images of shape {tuple(shape)}, read as (channels, "
            f"height, width) = {shape[0]} channels of {shape[1]}x{shape[2]}; "
            f"if they are (height, width, channels) images, pass "
            "X.transpose(0, 3, 1, 2)",
            UserWarning,
        )
