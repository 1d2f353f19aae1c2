"""Stochastic optimizers: SGD with (Nesterov) momentum, and Adam.

The semantics follow scikit-learn's MLPClassifier, so that its grids carry
over: the same parameter names, the same learning-rate schedules for SGD
("constant", "invscaling", "adaptive") and the same stopping rule for the
adaptive schedule.

An optimizer updates the network's one flat parameter array in place from its
one flat gradient array (see ``Network``): a step is a handful of vectorised
passes, whatever the number of layers, and the state (velocities, moments)
is one flat array each. Scratch for the step is allocated once.
"""
import numpy as np


class _Optimizer:
    """What both solvers share: the rate, the flat state, the stopping rule."""

    def __init__(self, params, learning_rate_init):
        self.learning_rate_init = learning_rate_init
        self.learning_rate = float(learning_rate_init)
        self._tmp = np.empty_like(params)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_tmp"] = state["_tmp"].size  # scratch, rebuilt on unpickling
        return state

    def __setstate__(self, state):
        state["_tmp"] = np.empty(state["_tmp"], dtype=self._state_dtype(state))
        self.__dict__.update(state)

    def iteration_ends(self, time_step):
        """Called after each epoch with the number of samples seen so far."""

    def trigger_stopping(self, msg, verbose):
        if verbose:
            print(msg + " Stopping.")
        return True


class SGD(_Optimizer):
    def __init__(self, params, learning_rate_init=0.1, lr_schedule="constant",
                 momentum=0.9, nesterov=True, power_t=0.5):
        super().__init__(params, learning_rate_init)
        self.lr_schedule = lr_schedule
        self.momentum = momentum
        self.nesterov = nesterov
        self.power_t = power_t
        self.velocity = np.zeros_like(params)

    @staticmethod
    def _state_dtype(state):
        return state["velocity"].dtype

    def update(self, params, grads):
        """One step on the flat arrays, in place:
        v = mu * v - lr * g;  p += v  (Nesterov: p += mu * v - lr * g)."""
        dt = params.dtype.type
        lr, mu = dt(self.learning_rate), dt(self.momentum)
        v, tmp = self.velocity, self._tmp
        v *= mu
        np.multiply(grads, lr, out=tmp)
        v -= tmp
        if self.nesterov:
            params -= tmp
            np.multiply(v, mu, out=tmp)
            params += tmp
        else:
            params += v

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
    def __init__(self, params, learning_rate_init=0.001, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8):
        super().__init__(params, learning_rate_init)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.t = 0
        self.m = np.zeros_like(params)
        self.v = np.zeros_like(params)

    @staticmethod
    def _state_dtype(state):
        return state["m"].dtype

    def update(self, params, grads):
        """One step on the flat arrays, in place."""
        self.t += 1
        b1, b2 = self.beta_1, self.beta_2
        lr = (self.learning_rate_init * np.sqrt(1 - b2 ** self.t)
              / (1 - b1 ** self.t))
        dt = params.dtype.type
        m, v, tmp = self.m, self.v, self._tmp
        m *= dt(b1)
        np.multiply(grads, dt(1 - b1), out=tmp)
        m += tmp
        v *= dt(b2)
        np.multiply(grads, grads, out=tmp)
        tmp *= dt(1 - b2)
        v += tmp
        # p -= lr * m / (sqrt(v) + eps)
        np.sqrt(v, out=tmp)
        tmp += dt(self.epsilon)
        np.divide(m, tmp, out=tmp)
        tmp *= dt(lr)
        params -= tmp
        self.learning_rate = lr
