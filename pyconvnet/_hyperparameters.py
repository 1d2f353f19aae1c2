"""The estimators' hyperparameters: their constraints, the one ``__init__``
every estimator shares (``with_parameters`` adds each one's own), and what
the first fit fixes (the architecture, a target encoding), normalised so that
equal settings compare equal.
"""
import inspect
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, Options, StrOptions

from . import _activations, _geometry
from ._augment import AUGMENT_KINDS
from ._geometry import INT_MAX
from ._input import check_sizes
from ._optimizers import SOLVERS
from ._spec import parse_conv_layers
from .ops import POOL_KINDS


class Hyperparameters:
    """The hyperparameters every estimator takes (documented in ``_docs``)."""

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
            image_shape = check_sizes(p["image_shape"], "image_shape")
            image_shape = (1,) * (3 - len(image_shape)) + image_shape
        conv_layers = parse_conv_layers(p["conv_layers"], p["pooling"])
        return {
            "conv_layers": conv_layers,
            "padding": p["padding"],
            "pooling": p["pooling"],
            "pool_size": pool,
            "hidden_layer_sizes": check_sizes(p["hidden_layer_sizes"],
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


def with_parameters(**extra):
    """Class decorator: an ``__init__`` for an estimator that takes
    ``Hyperparameters``' (``BaseConvNet``'s) hyperparameters and, keyword-only after them, ``extra``
    (name=default). scikit-learn reads an estimator's hyperparameters from
    its ``__init__`` signature, so each estimator needs one that names them
    all; this one is written once, here, and each estimator adds its own
    (``label_smoothing``, ``normalize_y``) instead of restating the list.
    Like every scikit-learn ``__init__`` it only stores what it is given."""
    base = inspect.signature(Hyperparameters.__init__)
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
