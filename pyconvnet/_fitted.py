"""The fitted state of an estimator, in one place: what a first fit (or
``load``) starts from, the training history, what pickling keeps and drops,
and the state ``pyconvnet.save`` writes and ``load`` restores.
"""
import inspect
import warnings

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._network import build_network
from ._hyperparameters import clone_with
from ._optimizers import SOLVERS


class FittedState:
    """The fitted network and history of an estimator."""

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
            self.image_shape_, network.layers[-1].params[0].shape[1], self._dtype,
            network.out_activation)
        shapes = [tuple(p.shape) for p in network.params]
        if ([tuple(s) for s in spec.param_shapes] != shapes
                or len(spec.layers) != len(network.layers)):
            raise ValueError("the pickled network does not match the "
                             "architecture its hyperparameters describe")
        network.spec = spec
        network.give_layers_their_specs()

    def __sklearn_is_fitted__(self):
        return hasattr(self, "_network")


def _zeros_readonly(n, dtype):
    zeros = np.zeros(n, dtype)
    zeros.flags.writeable = False
    return zeros
