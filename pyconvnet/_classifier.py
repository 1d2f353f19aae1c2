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
from sklearn.utils.validation import column_or_1d

from ._base import BaseConvNet, with_parameters


@with_parameters(label_smoothing=0.0)
class ConvNetClassifier(ClassifierMixin, BaseConvNet):
    """A convolutional neural network classifier.

    The network is a stack of convolution + activation + pooling layers
    (local receptive fields with shared weights, then pooling), then fully
    connected layers, then a softmax output trained on the log-likelihood
    (cross-entropy) cost. Parameters shared with scikit-learn's
    ``MLPClassifier`` have its names and meanings, so grids carry over.

    Parameters
    ----------
    conv_layers : sequence of tuples and "pool", default=((20, 5), (40, 5))
        One ``(n_filters, kernel_size)`` or ``(n_filters, kernel_size,
        stride)`` per convolutional layer; ``kernel_size`` and ``stride`` are
        ints or (h, w) pairs. Each layer is followed by the activation and,
        when no entry is "pool", by a pooling layer. With "pool" entries,
        pooling happens only where they stand, which builds blocks of
        convolutions: ``((32, 3), (32, 3), "pool", (64, 3), (64, 3),
        "pool")``. The default is the two conv-pool layers of Nielsen's
        chapter 6 network. A kernel larger than its input is shrunk to it
        (and a pooling window too; one that fits to 1x1 is left out).
    padding : {"same", "valid"}, default="same"
        "same" pads each convolution's input with ``(kernel_size - 1) // 2``
        zeros on each side, so odd kernels at stride 1 keep the image size
        and features at the border are seen as often as those in the middle;
        on small images (8x8 digits) this is worth about a point of accuracy.
        "valid" (no padding) is Nielsen's and LeNet's choice.
    pooling : {"max", "l2", "avg"} or None, default="max"
        Pooling after each convolutional layer (or where ``conv_layers``
        places it): the maximum, the L2 norm (square root of the sum of
        squares) or the mean of each window; None for no pooling.
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
    solver : {"adam", "adamw", "sgd"}, default="adam"
        Adam trains well across problems with its default step; SGD uses
        ``momentum`` and ``nesterovs_momentum``. "adamw" is Adam with
        decoupled weight decay (Loshchilov & Hutter 2019; PyTorch's AdamW):
        ``alpha`` is then no L2 penalty in the loss but the decay rate, each
        step multiplying the weights (not the biases nor batch norm's
        parameters) by ``1 - step * alpha``, ``step`` the schedule's current
        step size; values such as 0.01 to 0.1 suit it (PyTorch's default
        is 0.01).
    alpha : float, default=0.0001
        Strength of the L2 penalty on the weights; with ``solver="adamw"``,
        the decoupled weight decay rate.
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
    augment : str or None, default=None
        Augment each training batch on the fly: "shift" is Nielsen's
        expansion (each image left as it is or moved one pixel up, down,
        left or right with zero fill, with equal chance), "translate" moves
        each image by a random offset of up to 2 pixels along each axis
        (pad and crop, zero fill; for clothing and digits alike), "flip"
        mirrors images left-right with probability 1/2 (for clothing, not
        digits), "erase" is random erasing (Zhong et al. 2017: in half the
        images a rectangle of 2% to 40% of the area, of random shape and
        place, is filled with noise over the batch's range of values).
        Combine them with "+" in that order ("shift" or "translate", then
        "flip", then "erase"; e.g. "flip+erase").
        Only training batches are changed — never the validation split, nor
        a cross-validation test fold — and no enlarged copy of the data is
        kept. Grid-searchable.
    label_smoothing : float in [0, 1), default=0.0
        Label smoothing (Szegedy et al. 2016): train towards the target
        ``(1 - label_smoothing) * onehot + label_smoothing / n_classes``
        instead of the one-hot class (for multi-label y, each label towards
        ``(1 - label_smoothing) * y + label_smoothing / 2``). It keeps the
        network from pushing its scores ever higher on training images it
        already classifies, a regularisation that pays on data with
        ambiguous classes; ``predict_proba`` is then less confident by
        design. ``loss_curve_`` reports the smoothed loss, whose floor is
        above 0.

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
        if not first_pass and multilabel != (self.out_activation_ == "logistic"):
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
        if self.out_activation_ == "logistic":
            return self._predict_idx(X)
        return self.classes_[self._predict_idx(X)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags
