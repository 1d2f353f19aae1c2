"""Stochastic optimizers: SGD with (Nesterov) momentum, Adam, and AdamW.

The semantics follow scikit-learn's MLPClassifier, so that its grids carry
over: the same parameter names, the same learning-rate schedules for SGD
("constant", "invscaling", "adaptive") and the same stopping rule for the
adaptive schedule. One more schedule, "cosine", applies to both solvers: the
step decays from ``learning_rate_init`` to 0 along half a cosine over
``max_iter`` epochs, updated every batch.

An optimizer updates the network's one flat parameter array in place from its
one flat gradient array (see ``Network``): a step is a handful of vectorised
passes, whatever the number of layers, and the state (velocities, moments)
is one flat array each, and a step is one compiled pass over them
(``pyconvnet/_kernels/optim.pxi``).
"""
import math

import numpy as np

from ._kernels import conv_module


def cosine_rate(rate_init, progress):
    """``rate_init * (1 + cos(pi * progress)) / 2``, progress clipped to
    [0, 1]: from rate_init at the start to 0 at the end of training."""
    progress = min(max(progress, 0.0), 1.0)
    return rate_init * 0.5 * (1.0 + math.cos(math.pi * progress))


class _Optimizer:
    """What both solvers share: the rate, the flat state, the stopping rule."""

    def __init__(self, params, learning_rate_init, lr_schedule="constant"):
        self.learning_rate_init = learning_rate_init
        self.learning_rate = float(learning_rate_init)
        self.lr_schedule = lr_schedule
        # The step size the solver starts from (Adam then corrects it for
        # its moments' bias): learning_rate_init, or the cosine's value.
        self.base_rate = float(learning_rate_init)
        # Epochs (fractions included) of the current schedule done so far.
        self.epochs_done = 0.0

    def set_progress(self, progress):
        """Called before every batch with the fraction of the schedule done
        (epochs done / max_iter); only the cosine schedule uses it."""
        if self.lr_schedule == "cosine":
            self.base_rate = cosine_rate(self.learning_rate_init, progress)
            self.learning_rate = self.base_rate

    #: the estimator's hyperparameters this solver is built from (besides
    #: ``solver``), by the estimator's names
    PARAMS = ("learning_rate_init", "learning_rate")
    #: names of the flat state arrays (velocities, moments)
    STATE = ()
    #: names of the scalars that change during training
    SCALARS = ("learning_rate", "base_rate", "epochs_done")
    #: whether the solver decays the weights itself (then ``alpha`` is no L2
    #: penalty in the loss)
    decoupled_decay = False

    @classmethod
    def check_settings(cls, settings):
        """What the settings (``solver`` and ``PARAMS`` by name) must
        satisfy together; a ValueError naming the parameters."""

    @classmethod
    def from_settings(cls, network, settings):
        """An optimizer of ``network``'s flat parameters, built from
        ``settings``, which it keeps (``settings``) to tell later whether
        they changed."""
        cls.check_settings(settings)
        optimizer = cls._build(network, settings)
        optimizer.settings = dict(settings)
        return optimizer

    def continue_from(self, old):
        """Take over where ``old`` (built from other settings) stands: its
        point of the schedule, and its state when it is of this kind."""
        self.epochs_done = old.epochs_done
        if type(old) is type(self):
            scalars, arrays = old.get_state()
            for name, array in arrays.items():
                getattr(self, name)[...] = array
            for name in set(self.SCALARS) - set(_Optimizer.SCALARS):
                setattr(self, name, scalars[name])

    def get_state(self):
        """What training has changed, as (scalars, arrays): enough for
        ``set_state`` on a new optimizer of the same kind and hyperparameters
        to continue exactly where this one stands (``save`` writes it)."""
        return ({name: getattr(self, name) for name in self.SCALARS},
                {name: getattr(self, name) for name in self.STATE})

    def set_state(self, scalars, arrays):
        """Restore ``get_state``'s values; the arrays are copied into this
        optimizer's own (of the parameters' size and dtype)."""
        for name in self.SCALARS:
            setattr(self, name, scalars[name])
        for name in self.STATE:
            getattr(self, name)[...] = arrays[name]

    def iteration_ends(self, time_step):
        """Called after each epoch with the number of samples seen so far."""

    def state_is_finite(self):
        """Whether every state array is finite. Adam's second moment holds
        squared gradients: it overflows first, and once it is infinite the
        steps it scales are zero, so training would stall silently."""
        return all(np.isfinite(getattr(self, name)).all() for name in self.STATE)

    def trigger_stopping(self, msg, verbose):
        if verbose:
            print(msg + " Stopping.")
        return True


class SGD(_Optimizer):
    PARAMS = _Optimizer.PARAMS + ("momentum", "nesterovs_momentum", "power_t")
    STATE = ("velocity",)

    @classmethod
    def _build(cls, network, p):
        return cls(network.flat_params, p["learning_rate_init"], p["learning_rate"],
                   p["momentum"], p["nesterovs_momentum"], p["power_t"])

    def __init__(self, params, learning_rate_init=0.1, lr_schedule="constant",
                 momentum=0.9, nesterov=True, power_t=0.5):
        super().__init__(params, learning_rate_init, lr_schedule)
        self.momentum = momentum
        self.nesterov = nesterov
        self.power_t = power_t
        self.velocity = np.zeros_like(params)

    def update(self, params, grads, n_threads=1):
        """One step on the flat arrays, in place, over ``n_threads`` threads:
        v = mu * v - lr * g;  p += v  (Nesterov: p += mu * v - lr * g)."""
        conv_module("optim").sgd_step(params, grads, self.velocity,
                                      self.learning_rate, self.momentum,
                                      self.nesterov, n_threads)

    def iteration_ends(self, time_step):
        if self.lr_schedule == "invscaling":
            self.learning_rate = (
                float(self.learning_rate_init) / (time_step + 1) ** self.power_t
            )

    def trigger_stopping(self, msg, verbose):
        """The adaptive schedule divides the rate by 5 instead of stopping,
        until it falls below 1e-6."""
        if self.lr_schedule != "adaptive":
            return super().trigger_stopping(msg, verbose)
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(msg + f" Setting learning rate to {self.learning_rate:f}")
        return False


class Adam(_Optimizer):
    PARAMS = _Optimizer.PARAMS + ("beta_1", "beta_2", "epsilon")
    STATE = ("m", "v")
    SCALARS = _Optimizer.SCALARS + ("t",)

    @classmethod
    def _build(cls, network, p):
        return cls(network.flat_params, p["learning_rate_init"], p["beta_1"],
                   p["beta_2"], p["epsilon"], p["learning_rate"])

    def __init__(self, params, learning_rate_init=0.001, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, lr_schedule="constant"):
        # As in MLPClassifier, Adam ignores "invscaling" and "adaptive";
        # "cosine" scales its step.
        super().__init__(params, learning_rate_init,
                         "cosine" if lr_schedule == "cosine" else "constant")
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.t = 0
        self.m = np.zeros_like(params)
        self.v = np.zeros_like(params)

    def update(self, params, grads, n_threads=1):
        """One step on the flat arrays, in place, over ``n_threads`` threads."""
        self.t += 1
        b1, b2 = self.beta_1, self.beta_2
        lr = (self.base_rate * np.sqrt(1 - b2 ** self.t)
              / (1 - b1 ** self.t))
        conv_module("optim").adam_step(params, grads, self.m, self.v, lr, b1,
                                       b2, self.epsilon, n_threads)
        self.learning_rate = lr


def check_weight_decay(learning_rate_init, weight_decay):
    """Refuse a decoupled weight decay whose per-step factor ``1 - step *
    weight_decay`` is not in (0, 1]: at ``learning_rate_init * weight_decay
    >= 1`` every weight becomes 0, flips its sign or grows each step (the
    step never exceeds ``learning_rate_init`` under any schedule). Named by
    the estimator's parameters."""
    if not learning_rate_init * weight_decay < 1:
        raise ValueError(
            "solver='adamw' multiplies the weights by 1 - learning_rate_init * "
            "alpha each step, which must lie in (0, 1]: learning_rate_init="
            f"{learning_rate_init!r} and alpha={weight_decay!r} give "
            f"{1 - learning_rate_init * weight_decay:.6g}; make their product "
            "smaller than 1 (alpha is the decay rate, 0.01 to 0.1 suit it)")


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019, as
    PyTorch's AdamW): no L2 term in the loss; after each Adam step every
    decayed weight is multiplied by ``1 - step * weight_decay``, where
    ``step`` is the schedule's current step size (``base_rate``: the
    initial rate, or the cosine's value). With an L2 penalty, Adam divides
    the penalty's gradient by the same running scale as the loss's, so
    weights with large gradients are barely decayed; here every weight
    decays at the same rate."""

    # alpha is the decay rate, a step hyperparameter here
    PARAMS = Adam.PARAMS + ("alpha",)
    decoupled_decay = True

    @classmethod
    def check_settings(cls, settings):
        check_weight_decay(settings["learning_rate_init"], settings["alpha"])

    @classmethod
    def _build(cls, network, p):
        return cls(network.flat_params, p["learning_rate_init"], p["beta_1"],
                   p["beta_2"], p["epsilon"], p["learning_rate"],
                   weight_decay=p["alpha"], decayed=network.decayed_slices())

    def __init__(self, params, learning_rate_init=0.001, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, lr_schedule="constant", weight_decay=0.01, decayed=()):
        check_weight_decay(learning_rate_init, weight_decay)
        super().__init__(params, learning_rate_init, beta_1, beta_2, epsilon,
                         lr_schedule)
        self.weight_decay = weight_decay
        self.decayed = list(decayed)

    def update(self, params, grads, n_threads=1):
        super().update(params, grads, n_threads)
        if self.weight_decay:
            factor = 1 - self.base_rate * self.weight_decay
            for part in self.decayed:
                params[part] *= factor


#: The solvers by the estimators' name for them: what an optimizer is built
#: from, what ``save`` and ``load`` read its settings and state by.
SOLVERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW}
