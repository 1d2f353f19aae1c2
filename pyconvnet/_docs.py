"""The estimators' docstrings, each parameter and attribute written once.

``ConvNetClassifier`` and ``ConvNetRegressor`` share most hyperparameters
and fitted attributes; each entry is written here once, and ``document``
assembles an estimator's numpydoc docstring from its summary, the entries
its signature names (the defaults read from the signature itself, so they
cannot drift), its own entries and short notes that say what is particular
to it.
"""
import inspect

#: name -> (type, text) of every hyperparameter ``BaseConvNet`` takes
PARAMETERS = {
    'conv_layers': ('sequence of tuples and "pool"', """\
One ``(n_filters, kernel_size)`` or ``(n_filters, kernel_size,
stride)`` per convolutional layer; ``kernel_size`` and ``stride`` are
ints or (h, w) pairs. Each layer is followed by the activation and,
when no entry is "pool", by a pooling layer. With "pool" entries,
pooling happens only where they stand, which builds blocks of
convolutions: ``((32, 3), (32, 3), "pool", (64, 3), (64, 3),
"pool")``. The default is the two conv-pool layers of Nielsen's
chapter 6 network. A kernel larger than its input is shrunk to it
(and a pooling window too; one that fits to 1x1 is left out)."""),
    'padding': ('{"same", "valid"}', """\
"same" pads each convolution's input with ``(kernel_size - 1) // 2``
zeros on each side, so odd kernels at stride 1 keep the image size
and features at the border are seen as often as those in the middle;
on small images (8x8 digits) this is worth about a point of accuracy.
"valid" (no padding) is Nielsen's and LeNet's choice."""),
    'pooling': ('{"max", "l2", "avg"} or None', """\
Pooling after each convolutional layer (or where ``conv_layers``
places it): the maximum, the L2 norm (square root of the sum of
squares) or the mean of each window; None for no pooling."""),
    'pool_size': ('int or (int, int)', """\
The pooling window, also its stride (windows do not overlap). A
window larger than its input is shrunk to it."""),
    'hidden_layer_sizes': ('tuple of int', """\
Fully connected layers after the convolutional stack."""),
    'activation': ('{"relu", "logistic", "sigmoid", "tanh", "identity"}', """\
Activation of the hidden layers, convolutional and fully connected.
The MLP estimators' names: "logistic" is the sigmoid (both names are
accepted, so their grids carry over), "identity" no
activation at all."""),
    'dropout': ('float in [0, 1)', """\
Dropout rate on the fully connected hidden layers, training only."""),
    'batch_norm': ('bool', """\
Batch normalisation after each convolution, before its activation:
in training each feature map is normalised with the batch's mean and
variance (over samples and positions), then scaled and shifted by
two learned parameters per feature map; prediction uses running
statistics (momentum 0.1, eps 1e-5, as PyTorch's ``BatchNorm2d``).
The convolutions then have no bias (the shift replaces it). It makes
larger learning rates stable and usually trains faster and better."""),
    'solver': ('{"adam", "adamw", "sgd"}', """\
Adam trains well across problems with its default step; SGD uses
``momentum`` and ``nesterovs_momentum``. "adamw" is Adam with
decoupled weight decay (Loshchilov & Hutter 2019; PyTorch's AdamW):
``alpha`` is then no L2 penalty in the loss but the decay rate, each
step multiplying the weights (not the biases nor batch norm's
parameters) by ``1 - step * alpha``, ``step`` the schedule's current
step size; values such as 0.01 to 0.1 suit it (PyTorch's default
is 0.01)."""),
    'alpha': ('float', """\
Strength of the L2 penalty on the weights; with ``solver="adamw"``,
the decoupled weight decay rate (``learning_rate_init * alpha`` must
then be below 1)."""),
    'batch_size': ('int or "auto"', """\
Samples per mini-batch; "auto" is ``min(64, n_samples)``. Smaller
batches than the MLP estimators' 200 take more, smaller steps per epoch,
which suits convolutional layers."""),
    'learning_rate': ('{"constant", "invscaling", "adaptive", "cosine"}', """\
Learning-rate schedule. "constant", "invscaling" and "adaptive" are
the MLP estimators', for ``solver="sgd"`` only. "cosine" works with both
solvers: the step decays from ``learning_rate_init`` to 0 along half
a cosine over ``max_iter`` epochs, ``learning_rate_init * (1 +
cos(pi * epochs_done / max_iter)) / 2``, updated every batch (each
``fit`` runs the whole schedule; ``partial_fit`` calls count as
epochs of one schedule, which stays at 0 after ``max_iter`` of them;
the position counts samples, zero-weighted ones included).
Early stopping may end a run before the step reaches 0."""),
    'learning_rate_init': ('float', """\
The initial step size (Adam's, or SGD's), that the schedule starts
from."""),
    'power_t': ('float', """\
Exponent of the "invscaling" schedule."""),
    'max_iter': ('int', """\
Maximum number of epochs (passes over the data)."""),
    'shuffle': ('bool', """\
Shuffle the samples before each epoch."""),
    'random_state': ('int, RandomState instance or None', """\
The only source of randomness: initial weights, shuffling, dropout
and the validation split. The same value gives bit-identical weights
whatever ``n_threads`` is."""),
    'tol': ('float', """\
Training stops when the loss (or the validation score, with
``early_stopping``) has not improved by ``tol`` for
``n_iter_no_change`` consecutive epochs."""),
    'verbose': ('bool or int', """\
Print the architecture and one line per epoch."""),
    'warm_start': ('bool', """\
Continue from the previous fit's weights. The hyperparameters that
shape the network (conv_layers, padding, pooling, pool_size,
hidden_layer_sizes, activation, dropout, batch_norm, an explicit
image_shape or dtype), and those of the target encoding
(``normalize_y``), must be those of the first fit: a change is a
ValueError naming it (``partial_fit`` and ``save`` refuse it too). As in the MLP estimators, each ``fit`` builds its
optimizer from the current solver and step hyperparameters."""),
    'momentum': ('float', """\
SGD's momentum, in [0, 1]."""),
    'nesterovs_momentum': ('bool', """\
Whether SGD uses Nesterov's momentum."""),
    'early_stopping': ('bool', """\
Hold out ``validation_fraction`` of the training data, stop when the
estimator's score on it (weighted by ``sample_weight``) stops
improving, and keep the best weights. ``partial_fit`` refuses
``early_stopping=True``, and a split whose training or validation part
has no sample weight is a ValueError."""),
    'validation_fraction': ('float', """\
The share of the training data held out with ``early_stopping``, in
(0, 1)."""),
    'beta_1': ('float', """\
Adam's decay rate of its first moment (the mean of the gradients), in
[0, 1)."""),
    'beta_2': ('float', """\
Adam's decay rate of its second moment (the mean of the squared
gradients), in [0, 1)."""),
    'epsilon': ('float', """\
Adam's guard against a division by zero, added to the square root
of the second moment."""),
    'n_iter_no_change': ('int', """\
Epochs without an improvement by ``tol`` after which training stops
(see ``tol``)."""),
    'image_shape': ('tuple of int or None', """\
``(height, width)`` or ``(channels, height, width)``: what each row of
a 2-D X is reshaped to. With None, a 4-D X ``(n, C, H, W)`` or 3-D X
``(n, H, W)`` is taken as images; a 2-D X whose row length is a
perfect square is one square channel; any other 2-D X is a
1 x n_features strip."""),
    'n_threads': ('int or None', """\
Threads of the compiled kernels. None follows ``OMP_NUM_THREADS`` and
threadpoolctl limits, so GridSearchCV(n_jobs=k) workers share the
cores instead of oversubscribing them. A negative value counts back
from the CPUs this process may use (-1: all of them). ``fit`` times
a few training steps now and then at ``n_threads`` and at one thread
fewer and trains with the faster: when another process holds a core,
one thread fewer avoids waiting for a descheduled thread. Results are
bit-identical for any thread count, so this never changes the model."""),
    'dtype': ('{"float32", "float64"} or None', """\
Precision of the computation. None: float32, except for float64
input, which keeps its precision (as in the MLP estimators). Pass
"float32" to train float64 data at single precision, about twice as
fast."""),
    'augment': ('str or None', """\
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
kept. Grid-searchable."""),
}

#: name -> (type, text) of the fitted attributes both estimators have
ATTRIBUTES = {
    "n_features_in_": ("int", ""),
    "feature_names_in_": ("ndarray of shape (n_features_in_,)", """\
Only when X had string column names (a DataFrame)."""),
    "image_shape_": ("tuple (channels, height, width)", """\
The shape each sample is read as."""),
    "layers_": ("list of dict", """\
The architecture built: each layer's name, kind, output shape and
parameter count."""),
    "coefs_": ("list of ndarray", """\
The weights of each layer with parameters: convolution filters of
shape (n_filters, n_channels, kernel_height, kernel_width), fully
connected weights of shape (n_in, n_out)."""),
    "intercepts_": ("list of ndarray", """\
The biases of the same layers."""),
    "n_iter_": ("int", """\
Epochs run by the last call to ``fit`` (or 1 after ``partial_fit``),
as in scikit-learn >= 1.9."""),
    "t_": ("int", """\
Training samples seen since the first fit."""),
    "loss_": ("float or None", """\
The last epoch's loss; None when training was interrupted
(KeyboardInterrupt) before a first epoch ended."""),
    "loss_curve_": ("list of float", """\
Each epoch's loss."""),
    "best_loss_": ("float or None", """\
The lowest epoch loss; None with ``early_stopping``."""),
    "validation_scores_": ("list of float or None", """\
Each epoch's score on the held-out split with ``early_stopping``,
else None."""),
    "best_validation_score_": ("float or None", """\
The best of them, or None."""),
    "n_layers_": ("int", """\
Layers with parameters, plus input and output."""),
}


def _entry(name, kind, text, default=inspect.Parameter.empty):
    head = f"    {name} : {kind}"
    if default is not inspect.Parameter.empty:
        value = f'"{default}"' if isinstance(default, str) else repr(default)
        head += f", default={value}"
    lines = [head] + [("        " + line) if line else "" for line in text.splitlines()]
    return "\n".join(lines)


def document(summary, parameters=None, attributes=None, notes=None):
    """Class decorator: the estimator's docstring, ``summary`` (its
    opening paragraphs, indented as in a class body) then a Parameters
    section of every hyperparameter in its ``__init__`` signature (from
    ``PARAMETERS`` and its own ``parameters``, name -> (type, text)),
    each with the signature's default, and an Attributes section
    (``ATTRIBUTES`` then its own ``attributes``). ``notes``, name -> text,
    adds a sentence or two to a shared entry."""
    own_parameters = parameters or {}
    own_attributes = attributes or {}
    notes = notes or {}

    def text_of(name, table):
        kind, text = table[name]
        note = notes.get(name)
        return kind, (text + ("\n" if text else "") + note) if note else text

    def decorate(cls):
        table = {**PARAMETERS, **own_parameters}
        signature = inspect.signature(cls.__init__).parameters
        params = [_entry(name, *text_of(name, table), signature[name].default)
                  for name in list(signature)[1:]]
        attr_table = {**own_attributes, **ATTRIBUTES}
        attrs = [_entry(name, *text_of(name, attr_table))
                 for name in {**own_attributes, **ATTRIBUTES}]
        cls.__doc__ = (summary.rstrip() + "\n\n    Parameters\n    ----------\n"
                       + "\n".join(params) + "\n\n    Attributes\n    ----------\n"
                       + "\n".join(attrs) + "\n    ")
        return cls
    return decorate
