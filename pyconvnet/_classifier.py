"""ConvNetClassifier: a convolutional network as a scikit-learn classifier."""
import time
import warnings
from numbers import Integral, Real

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.multiclass import (_check_partial_fit_first_call,
                                      check_classification_targets,
                                      type_of_target)
from sklearn.utils.validation import (_check_sample_weight, check_array,
                                      column_or_1d,
                                      check_is_fitted, validate_data)

from ._augment import AUGMENT_KINDS, augment_batch
from ._network import build_network, check_batch
from ._spec import ALIASES, build_spec
from ._optimizers import SGD, Adam
from ._threads import ThreadGovernor, blas_single_threaded, effective_n_threads
from . import _geometry
from ._geometry import INT_MAX
from .ops import POOL_KINDS

# predict_proba works through the data this many samples at a time, so memory
# stays bounded whatever the number of samples — fewer when one layer's output
# for that many samples would exceed PREDICT_BYTES (large images).
PREDICT_BATCH = 1024
PREDICT_BYTES = 256 * 2**20


def _check_conv_layers(conv_layers):
    """Normalise conv_layers to a tuple of (n_filters, (kh, kw), (sh, sw))."""
    try:
        specs = list(conv_layers)
    except TypeError:
        specs = None
    if specs is None:
        raise ValueError(
            "conv_layers must be a sequence of (n_filters, kernel_size) or "
            f"(n_filters, kernel_size, stride) tuples, got {conv_layers!r}"
        )
    out = []
    for spec in specs:
        try:
            parts = list(spec)
        except TypeError:
            parts = []
        if len(parts) not in (2, 3):
            raise ValueError(
                "each entry of conv_layers must be (n_filters, kernel_size) or "
                f"(n_filters, kernel_size, stride), got {spec!r}"
            )
        try:
            n_filters = _geometry.pair(parts[0], "n_filters")[0]
            if not isinstance(parts[0], (Integral, np.integer)):
                raise TypeError("n_filters is one int")
            kernel = _geometry.pair(parts[1], "kernel_size")
            stride = _geometry.pair(parts[2], "stride") if len(parts) == 3 else (1, 1)
        except (TypeError, ValueError):
            raise ValueError(
                "n_filters, kernel_size and stride in conv_layers must be "
                f"ints in [1, {INT_MAX}] (kernel_size and stride may be "
                f"(h, w) pairs), got {spec!r}"
            ) from None
        out.append((n_filters, kernel, stride))
    return tuple(out)


def _check_sizes(value, name, allow_pair=True):
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


class ConvNetClassifier(ClassifierMixin, BaseEstimator):
    """A convolutional neural network classifier.

    The network is a stack of convolution + activation + pooling layers
    (local receptive fields with shared weights, then pooling), then fully
    connected layers, then a softmax output trained on the log-likelihood
    (cross-entropy) cost. Parameters shared with scikit-learn's
    ``MLPClassifier`` have its names and meanings, so grids carry over.

    Parameters
    ----------
    conv_layers : sequence of tuples, default=((20, 5), (40, 5))
        One ``(n_filters, kernel_size)`` or ``(n_filters, kernel_size,
        stride)`` per convolutional layer; ``kernel_size`` and ``stride`` are
        ints or (h, w) pairs. Each layer is followed by the activation and a
        pooling layer. The default is the two conv-pool layers of Nielsen's
        chapter 6 network. A kernel larger than its input is shrunk to it.
    padding : {"same", "valid"}, default="same"
        "same" pads each convolution's input with ``(kernel_size - 1) // 2``
        zeros on each side, so odd kernels at stride 1 keep the image size
        and features at the border are seen as often as those in the middle;
        on small images (8x8 digits) this is worth about a point of accuracy.
        "valid" (no padding) is Nielsen's and LeNet's choice.
    pooling : {"max", "l2", "avg"} or None, default="max"
        Pooling after each convolutional layer: the maximum, the L2 norm
        (square root of the sum of squares) or the mean of each window;
        None for no pooling.
    pool_size : int or (int, int), default=2
        The pooling window, also its stride (windows do not overlap). A
        window larger than its input is shrunk to it.
    hidden_layer_sizes : tuple of int, default=(100,)
        Fully connected layers after the convolutional stack.
    activation : {"relu", "logistic", "sigmoid", "tanh", "identity"}, default="relu"
        Activation of the hidden layers, convolutional and fully connected.
        MLPClassifier's names: "logistic" is the sigmoid (both names are
        accepted, so MLPClassifier's grids carry over), "identity" no
        activation at all.
    dropout : float in [0, 1), default=0.0
        Dropout rate on the fully connected hidden layers, training only.
    batch_norm : bool, default=False
        Batch normalisation after each convolution, before its activation:
        in training each feature map is normalised with the batch's mean and
        variance (over samples and positions), then scaled and shifted by
        two learned parameters per feature map; prediction uses running
        statistics (momentum 0.1, eps 1e-5, as PyTorch's ``BatchNorm2d``).
        The convolutions then have no bias (the shift replaces it). It makes
        larger learning rates stable and usually trains faster and better.
    solver : {"adam", "sgd"}, default="adam"
        Adam trains well across problems with its default step; SGD uses
        ``momentum`` and ``nesterovs_momentum``.
    alpha : float, default=0.0001
        Strength of the L2 penalty on the weights.
    batch_size : int or "auto", default="auto"
        Samples per mini-batch; "auto" is ``min(64, n_samples)``. Smaller
        batches than MLPClassifier's 200 take more, smaller steps per epoch,
        which suits convolutional layers.
    learning_rate : {"constant", "invscaling", "adaptive", "cosine"}, default="constant"
        Learning-rate schedule. "constant", "invscaling" and "adaptive" are
        MLPClassifier's, for ``solver="sgd"`` only. "cosine" works with both
        solvers: the step decays from ``learning_rate_init`` to 0 along half
        a cosine over ``max_iter`` epochs, ``learning_rate_init * (1 +
        cos(pi * epochs_done / max_iter)) / 2``, updated every batch (each
        ``fit`` runs the whole schedule; ``partial_fit`` calls count as
        epochs of one schedule, which stays at 0 after ``max_iter`` of them;
        the position counts samples, zero-weighted ones included).
        Early stopping may end a run before the step reaches 0.
    learning_rate_init : float, default=0.001
    power_t : float, default=0.5
        Exponent of the "invscaling" schedule.
    max_iter : int, default=100
        Maximum number of epochs (passes over the data).
    shuffle : bool, default=True
        Shuffle the samples before each epoch.
    random_state : int, RandomState instance or None, default=None
        The only source of randomness: initial weights, shuffling, dropout
        and the validation split. The same value gives bit-identical weights
        whatever ``n_threads`` is.
    tol : float, default=1e-4
        Training stops when the loss (or the validation score, with
        ``early_stopping``) has not improved by ``tol`` for
        ``n_iter_no_change`` consecutive epochs.
    verbose : bool or int, default=False
        Print the architecture and one line per epoch.
    warm_start : bool, default=False
        Continue from the previous fit's weights. The hyperparameters that
        shape the network (conv_layers, padding, pooling, pool_size,
        hidden_layer_sizes, activation, dropout, batch_norm, an explicit
        image_shape or dtype) must be those of the first fit: a change is a
        ValueError naming it. As in MLPClassifier, each ``fit`` builds its
        optimizer from the current solver and step hyperparameters.
    momentum : float, default=0.9
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
        Hold out a stratified ``validation_fraction`` of the training data,
        stop when its accuracy (weighted by ``sample_weight``) stops
        improving, and keep the best weights. As in MLPClassifier, a class
        with a single sample cannot be stratified and raises ValueError, and
        ``partial_fit`` refuses ``early_stopping=True``.
    validation_fraction : float, default=0.1
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's parameters.
    n_iter_no_change : int, default=10
    image_shape : tuple of int or None, default=None
        ``(height, width)`` or ``(channels, height, width)``: what each row of
        a 2-D X is reshaped to. With None, a 4-D X ``(n, C, H, W)`` or 3-D X
        ``(n, H, W)`` is taken as images; a 2-D X whose row length is a
        perfect square is one square channel; any other 2-D X is a
        1 x n_features strip.
    n_threads : int or None, default=None
        Threads of the compiled kernels. None follows ``OMP_NUM_THREADS`` and
        threadpoolctl limits, so GridSearchCV(n_jobs=k) workers share the
        cores instead of oversubscribing them. A negative value counts back
        from the CPUs this process may use (-1: all of them). ``fit`` times
        a few training steps now and then at ``n_threads`` and at one thread
        fewer and trains with the faster: when another process holds a core,
        one thread fewer avoids waiting for a descheduled thread. Results are
        bit-identical for any thread count, so this never changes the model.
    dtype : {"float32", "float64"} or None, default=None
        Precision of the computation. None: float32, except for float64
        input, which keeps its precision (as in MLPClassifier). Pass
        "float32" to train float64 data at single precision, about twice as
        fast.
    augment : {"shift", "translate", "flip", "shift+flip", "translate+flip"} or None, default=None
        Augment each training batch on the fly: "shift" is Nielsen's
        expansion (each image left as it is or moved one pixel up, down,
        left or right with zero fill, with equal chance), "translate" moves
        each image by a random offset of up to 2 pixels along each axis
        (pad and crop, zero fill; for clothing and digits alike), "flip"
        mirrors images left-right with probability 1/2 (for clothing, not
        digits).
        Only training batches are changed — never the validation split, nor
        a cross-validation test fold — and no enlarged copy of the data is
        kept. Grid-searchable.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when X had string column names (a DataFrame).
    image_shape_ : tuple (channels, height, width)
        The shape each sample is read as.
    layers_ : list of dict
        The architecture built: each layer's name, kind, output shape and
        parameter count.
    coefs_ : list of ndarray
        The weights of each layer with parameters: convolution filters of
        shape (n_filters, n_channels, kernel_height, kernel_width), fully
        connected weights of shape (n_in, n_out).
    intercepts_ : list of ndarray
        The biases of the same layers.
    n_iter_ : int
        Epochs run by the last call to ``fit`` (or 1 after ``partial_fit``),
        as in scikit-learn >= 1.9.
    t_ : int
        Training samples seen since the first fit.
    loss_ : float or None
        The last epoch's loss; None when training was interrupted
        (KeyboardInterrupt) before a first epoch ended.
    loss_curve_ : list of float
    best_loss_ : float or None
        None with ``early_stopping``.
    validation_scores_ : list of float or None
    best_validation_score_ : float or None
    n_layers_ : int
        Layers with parameters, plus input and output.
    out_activation_ : str
        "softmax".
    """

    _parameter_constraints = {
        "conv_layers": ["array-like"],
        "padding": [StrOptions({"same", "valid"})],
        "pooling": [StrOptions(set(POOL_KINDS)), None],
        "pool_size": [Interval(Integral, 1, None, closed="left"), tuple, list],
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({"relu", "sigmoid", "logistic", "tanh",
                                   "identity"})],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "batch_norm": ["boolean"],
        "solver": [StrOptions({"sgd", "adam"})],
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
        # Keep float64 and float32 as they are; anything else -> float32.
        return [np.float32, np.float64]

    def _validate_X(self, X, y=None, reset=True):
        """Validate X (and y); return the 2-D X, y and X's image shape if nd."""
        nd_shape = None
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
            X, y = validate_data(self, X, y, multi_output=True, **kwargs)
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
        """Train the network on images X and labels y.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n_samples, height,
            width) or (n_samples, channels, height, width)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample's loss; a weight of 2 counts a sample twice.

        Returns
        -------
        self
        """
        self._validate_params()
        return self._fit(X, y, sample_weight, incremental=False)

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
        if not hasattr(self, "classes_"):
            self._validate_params()
        if self.early_stopping:
            # As MLPClassifier: a held-out split of one batch means nothing.
            raise ValueError("partial_fit does not support early_stopping=True")
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

    def _fit(self, X, y, sample_weight, incremental):
        n_threads = effective_n_threads(self.n_threads)
        first_pass = not hasattr(self, "_network") or (
            not self.warm_start and not incremental
        )
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
        if not first_pass and multilabel != (self.out_activation_ == "logistic"):
            raise ValueError(
                "y is " + ("a multi-label indicator matrix" if multilabel else
                           "a vector of class labels") + ", but the model was "
                "fitted on " + ("class labels" if multilabel else
                                "a multi-label indicator matrix"))
        if multilabel:
            return self._fit_checked(X, y, sample_weight, incremental, first_pass,
                                     nd_shape, n_threads, multilabel=True)
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
        y_idx = np.searchsorted(self.classes_, y).astype(np.intp)
        return self._fit_checked(X, y_idx, sample_weight, incremental, first_pass,
                                 nd_shape, n_threads, multilabel=False)

    def _fit_checked(self, X, y, sample_weight, incremental, first_pass, nd_shape,
                     n_threads, multilabel):
        """Fit on validated X and encoded targets: class indices, or for a
        multi-label problem the (n_samples, n_labels) 0/1 matrix."""
        if multilabel:
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
            y = np.asarray(y, dtype=np.float64)
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                             ensure_non_negative=True)
        if sample_weight.sum() <= 0:
            raise ValueError("sample_weight must not sum to zero")

        if first_pass:
            image_shape = self._resolve_image_shape(X.shape[1], nd_shape)
            spec = self._network_spec(image_shape, len(self.classes_),
                                      X.dtype.type, multilabel)
            # The training batches' memory, before any weight is allocated
            # (_train checks the exact sizes, after a validation split).
            check_batch(spec, self._batch_size(X.shape[0]),
                        X.dtype.itemsize, training=True)
            self._init_fitted_state(image_shape, self.classes_, X.dtype.type,
                                    spec=spec, multilabel=multilabel)
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
            self._train(X, y, sample_weight, incremental, n_threads)
        return self

    # The hyperparameters each solver takes, by the estimator's names.
    _SOLVER_PARAMS = {
        "sgd": ("learning_rate_init", "learning_rate", "momentum",
                "nesterovs_momentum", "power_t"),
        "adam": ("learning_rate_init", "learning_rate", "beta_1", "beta_2",
                 "epsilon"),
    }

    def _optimizer_settings(self):
        """The solver and its hyperparameters, by the estimator's names:
        what an optimizer is built from, and what ``save`` writes."""
        return {"solver": self.solver,
                **{name: getattr(self, name) for name in self._SOLVER_PARAMS[self.solver]}}

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
        new = self._new_optimizer(self._network.flat_params)
        if incremental and old is not None:
            scalars, arrays = old.get_state()
            new.epochs_done = scalars["epochs_done"]
            if type(old) is type(new):
                for name, array in arrays.items():
                    getattr(new, name)[...] = array
                if isinstance(new, Adam):
                    new.t = old.t
        return new

    def _new_optimizer(self, flat_params):
        """An optimizer of ``flat_params`` with these hyperparameters, which
        it keeps as ``settings`` to tell later whether they changed."""
        p = settings = self._optimizer_settings()
        if p["solver"] == "sgd":
            optimizer = SGD(flat_params, p["learning_rate_init"], p["learning_rate"],
                            p["momentum"], p["nesterovs_momentum"], p["power_t"])
        else:
            optimizer = Adam(flat_params, p["learning_rate_init"], p["beta_1"],
                             p["beta_2"], p["epsilon"], p["learning_rate"])
        optimizer.settings = settings
        return optimizer

    # The hyperparameters that shape the network.
    _ARCHITECTURE_PARAMS = ("conv_layers", "padding", "pooling", "pool_size",
                            "hidden_layer_sizes", "activation", "dropout",
                            "batch_norm", "image_shape", "dtype")

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
        return {
            "conv_layers": _check_conv_layers(p["conv_layers"]),
            "padding": p["padding"],
            "pooling": p["pooling"],
            "pool_size": pool,
            "hidden_layer_sizes": _check_sizes(p["hidden_layer_sizes"],
                                               "hidden_layer_sizes"),
            "activation": ALIASES.get(p["activation"], p["activation"]),
            "dropout": float(p["dropout"]),
            "batch_norm": bool(p["batch_norm"]),
            "image_shape": image_shape,
            # A name, not a numpy dtype: np.dtype(None) is float64, and
            # float64 would compare equal to None.
            "dtype": None if p["dtype"] is None else np.dtype(p["dtype"]).name,
        }

    def _check_architecture_unchanged(self, what):
        """A warm start, ``partial_fit`` or ``save`` works on the network
        built by the first fit: refuse when a hyperparameter that shaped it
        has been changed since (``set_params``), instead of silently keeping
        the old network (or writing a file whose parameters describe another
        one)."""
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
        if changed:
            params = self.get_params()
            raise ValueError(
                f"{what} continues the network built by the first fit, but "
                "hyperparameters that shape it were changed since: "
                + ", ".join(f"{name}={params[name]!r}" for name in changed)
                + " (the network was built with "
                + ", ".join(f"{name}={built_params[name]!r}" for name in changed)
                + "); set them back, or fit a new model with warm_start=False")

    def _network_spec(self, image_shape, n_classes, dtype, multilabel=False):
        """The network these hyperparameters describe (checked here)."""
        arch = self._architecture()
        return build_spec(
            image_shape, n_classes, arch["conv_layers"], arch["padding"],
            arch["pooling"], arch["pool_size"], arch["hidden_layer_sizes"],
            arch["activation"], arch["dropout"], np.dtype(dtype).itemsize,
            arch["batch_norm"], self._plan_threads(),
            head="logistic" if multilabel else "softmax")

    def _plan_threads(self):
        """The threads whose workspaces the plan checks: ``n_threads`` as
        it resolves here, or the default for a value this machine refuses
        (a file saved elsewhere still loads; using it then says why not)."""
        try:
            return effective_n_threads(self.n_threads)
        except (TypeError, ValueError):
            return effective_n_threads(None)

    def _init_fitted_state(self, image_shape, classes, dtype, spec=None,
                           multilabel=False):
        """Everything a first fit starts from — and ``load`` too, which then
        overwrites the weights and the training history: the network built
        from the one ``random_state`` (which keeps driving shuffling and
        dropout afterwards), no optimizer yet, an empty history."""
        if spec is None:
            spec = self._network_spec(image_shape, len(classes), dtype, multilabel)
        self.classes_ = classes
        self._dtype = dtype
        self.image_shape_ = tuple(image_shape)
        self._random_state = check_random_state(self.random_state)
        self._network = build_network(spec, self._random_state, dtype)
        self._optimizer = None
        params = self.get_params()
        self._built_params = {name: params[name] for name in self._ARCHITECTURE_PARAMS}
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

    def _train(self, X, y, sample_weight, incremental, n_threads):
        rng = self._random_state
        early_stopping = self.early_stopping and not incremental
        if (self.validation_scores_ is not None) != early_stopping:
            # A warm start or partial_fit after early_stopping was switched:
            # the other rule starts afresh.
            self._start_stopping_rule(early_stopping)
        if early_stopping:
            X, X_val, y, y_val, sample_weight, sw_val = _validation_split(
                X, y, sample_weight, self.validation_fraction, rng,
                stratify=y.ndim == 1)
            self._best_params = self._network.flat_params.copy()
        # As in scikit-learn >= 1.9, n_iter_ counts the epochs of this call;
        # t_ counts every sample seen since the first fit.
        self.n_iter_ = 0
        n_samples = X.shape[0]
        if self.batch_size != "auto" and self.batch_size > n_samples:
            warnings.warn(
                "Got `batch_size` less than 1 or larger than sample size. "
                "It is going to be clipped"
            )
        batch_size = self._batch_size(n_samples)

        network = self._network
        # The full batches and the last one, which is smaller unless batches
        # divide the samples evenly.
        for size in {batch_size, n_samples % batch_size or batch_size}:
            network.check_batch(size, training=True)
        params = network.flat_params
        optimizer = self._optimizer
        images = self._images(X)
        max_epochs = 1 if incremental else self.max_iter
        total_weight = float(sample_weight.sum())
        progress = _progress_factory(self.verbose, n_samples, batch_size)
        snapshot = params.copy()
        governor = self.__dict__.get("_governor")
        if governor is None or governor.n_threads != n_threads:
            governor = self._governor = ThreadGovernor(network.set_threads, n_threads)
        else:
            governor.resume(network.set_threads)
        epoch = 0
        try:
            for epoch in range(max_epochs):
                start = time.perf_counter()
                order = rng.permutation(n_samples) if self.shuffle else np.arange(n_samples)
                epoch_loss = 0.0
                epoch_start = optimizer.epochs_done
                bar = progress()
                for lo in range(0, n_samples, batch_size):
                    idx = order[lo:lo + batch_size]
                    sw = sample_weight[idx]
                    progress_before = optimizer.epochs_done
                    # The schedule's position counts samples, not steps: a
                    # batch skipped for zero weights is still part of the
                    # epoch, and an epoch ends at a whole number exactly.
                    optimizer.epochs_done = epoch_start + (lo + len(idx)) / n_samples
                    if sw.sum() <= 0:
                        continue
                    batch = self._rows(images, idx)
                    if self.augment is not None:
                        batch = augment_batch(batch, self.augment, rng)
                    governor.start()
                    optimizer.set_progress(progress_before / self.max_iter)
                    loss = network.train_step_grads(batch, y[idx], sw, self.alpha)
                    if not np.isfinite(loss):
                        params[...] = snapshot
                        raise _diverged(f"the training loss became {loss}",
                                        self.n_iter_ + 1)
                    optimizer.update(params, network.flat_grads,
                                     network.n_threads)
                    governor.stop(len(idx))
                    epoch_loss += loss * float(sw.sum())
                    if bar is not None:
                        bar.update(len(idx))
                if bar is not None:
                    bar.close()
                if not np.isfinite(params).all():
                    params[...] = snapshot
                    raise _diverged("the weights became non-finite", self.n_iter_ + 1)
                if not self._optimizer.state_is_finite():
                    params[...] = snapshot
                    raise _diverged("the gradients overflowed (the optimizer's "
                                    "state became non-finite)", self.n_iter_ + 1)
                snapshot[...] = params
                self.n_iter_ += 1
                self.t_ += n_samples
                self.loss_ = epoch_loss / total_weight
                self.loss_curve_.append(self.loss_)
                self._optimizer.iteration_ends(self.t_)
                elapsed = time.perf_counter() - start
                if early_stopping:
                    score = self._validation_score(X_val, y_val, sw_val)
                    self.validation_scores_.append(score)
                if self.verbose:
                    msg = f"Epoch {self.n_iter_}, loss = {self.loss_:.8f}"
                    if early_stopping:
                        msg += f", validation score = {score:.4f}"
                    msg += f", {elapsed:.2f} s, {n_samples / max(elapsed, 1e-9):,.0f} images/s"
                    print(msg)
                self._update_no_improvement_count(early_stopping)
                if self._no_improvement_count > self.n_iter_no_change:
                    if early_stopping:
                        msg = (
                            "Validation score did not improve more than "
                            f"tol={self.tol:f} for {self.n_iter_no_change} "
                            "consecutive epochs."
                        )
                    else:
                        msg = (
                            "Training loss did not improve more than "
                            f"tol={self.tol:f} for {self.n_iter_no_change} "
                            "consecutive epochs."
                        )
                    if self._optimizer.trigger_stopping(msg, self.verbose):
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
                if epoch + 1 == self.max_iter:
                    warnings.warn(
                        f"Stochastic Optimizer: Maximum iterations "
                        f"({self.max_iter}) reached and the optimization "
                        "hasn't converged yet.",
                        ConvergenceWarning,
                    )
        except KeyboardInterrupt:
            # A half-applied update is still a valid (finite) model; restore
            # the last finished epoch only if something went wrong.
            if not np.isfinite(params).all():
                params[...] = snapshot
            if not hasattr(self, "loss_"):
                # Interrupted in the first epoch: no epoch's loss exists yet,
                # and a model that predicts must also save.
                self.loss_ = None
            warnings.warn(
                f"Training interrupted by the user after {self.n_iter_} "
                "epochs; the model keeps the weights it had reached.",
                UserWarning,
            )
        if early_stopping:
            params[...] = self._best_params
            del self._best_params

    def _batch_size(self, n_samples):
        if self.batch_size == "auto":
            return min(64, n_samples)
        return int(np.clip(self.batch_size, 1, n_samples))

    def _update_no_improvement_count(self, early_stopping):
        if early_stopping:
            score = self.validation_scores_[-1]
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_params[...] = self._network.flat_params
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    # ------------------------------------------------------------------
    # Prediction
    # ------------------------------------------------------------------
    def _log_proba_of_valid(self, X):
        """Log-probabilities of validated 2-D X, in bounded-memory batches
        (of classes; of each label for a multi-label model)."""
        images = self._images(X)
        out = np.empty((X.shape[0], len(self.classes_)), dtype=self._dtype)
        network = self._network
        per_sample = network.spec.largest_output * network.dtype.itemsize
        step = int(np.clip(PREDICT_BYTES // per_sample, 1, PREDICT_BATCH))
        network.check_batch(min(step, X.shape[0]), training=False)
        network.set_threads(effective_n_threads(self.n_threads))
        with blas_single_threaded():
            for lo in range(0, X.shape[0], step):
                out[lo:lo + step] = network.predict_log_proba(
                    self._rows(images, slice(lo, lo + step)))
        return out

    def _predict_idx(self, X):
        """Class indices, or the 0/1 label matrix of a multi-label model."""
        log_proba = self._log_proba_of_valid(X)
        if self.out_activation_ == "logistic":
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

    def _validate_predict_X(self, X):
        check_is_fitted(self)
        X, _, nd_shape = self._validate_X(X, reset=False)
        if nd_shape is not None and tuple(nd_shape) != self.image_shape_:
            raise ValueError(
                f"X holds images of shape {tuple(nd_shape)}, but the model was "
                f"fitted on images of shape {self.image_shape_}"
            )
        return X.astype(self._dtype, copy=False)

    def predict_log_proba(self, X):
        """Log of the class probabilities, shape (n_samples, n_classes)."""
        return self._log_proba_of_valid(self._validate_predict_X(X))

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
        if self.out_activation_ == "logistic":
            return self._predict_idx(X)
        return self.classes_[self._predict_idx(X)]

    def __getstate__(self):
        # A new dict: on Python >= 3.11, BaseEstimator.__getstate__ returns
        # the live __dict__, and removing keys from it would strip the
        # fitted attributes off the model being pickled (or deep-copied).
        state = dict(super().__getstate__())
        from . import __version__

        state["_pyconvnet_version"] = __version__
        # coefs_ and intercepts_ are views of the network's parameters: a
        # pickled copy of them would no longer follow training after a
        # reload. They are bound again on unpickling.
        state.pop("coefs_", None)
        state.pop("intercepts_", None)
        # What the thread governor learnt is about this machine, not the model.
        state.pop("_governor", None)
        return state

    def __setstate__(self, state):
        from . import __version__

        saved = state.pop("_pyconvnet_version", "unknown")
        if saved != __version__:
            warnings.warn(
                f"Unpickling a ConvNetClassifier saved by pyconvnet {saved} with "
                f"pyconvnet {__version__}: this might break or give wrong results. "
                "pyconvnet.save/load checks a model file instead of trusting it.",
                UserWarning,
            )
        super().__setstate__(state)
        if "_network" in self.__dict__:
            self._publish_architecture()

    def __sklearn_is_fitted__(self):
        return hasattr(self, "_network")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = True
        tags.classifier_tags.multi_label = True
        return tags


def _zeros_readonly(n, dtype):
    zeros = np.zeros(n, dtype)
    zeros.flags.writeable = False
    return zeros


def _diverged(what, epoch):
    return ValueError(
        f"Training diverged in epoch {epoch}: {what}. The weights of the last "
        "finite epoch were kept. Try a smaller learning_rate_init."
    )


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


def _validation_split(X, y, sample_weight, fraction, rng, stratify=True):
    """Hold out a stratified ``fraction`` of the data, as MLPClassifier does:
    a class with a single member, or a split too small to hold every class,
    is a ValueError rather than a silently unstratified split. (A multi-label
    problem is split without stratification, as MLPClassifier does.)"""
    X, X_val, y, y_val, sample_weight, sw_val = train_test_split(
        X, y, sample_weight, random_state=rng, test_size=fraction,
        stratify=y if stratify else None)
    if X_val.shape[0] < 2:
        raise ValueError(
            "The validation set is too small. Increase 'validation_fraction' "
            "or the size of your dataset."
        )
    return X, X_val, y, y_val, sample_weight, sw_val


def _progress_factory(verbose, n_samples, batch_size):
    """A function that opens a progress bar for an epoch, or returns None.

    Bars appear with ``verbose`` for epochs of at least 100 batches, when tqdm
    is installed (it is an optional dependency).
    """
    if not verbose or n_samples < 100 * batch_size:
        return lambda: None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return lambda: None
    return lambda: tqdm(total=n_samples, unit="img", leave=False)
