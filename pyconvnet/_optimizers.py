"""Stochastic optimizers: SGD with (Nesterov) momentum, and Adam.

The semantics follow scikit-learn's MLPClassifier, so that its grids carry
over: the same parameter names, the same learning-rate schedules for SGD
("constant", "invscaling", "adaptive") and the same stopping rule for the
adaptive schedule. Parameters are updated in place, so a network's arrays stay
the arrays the estimator exposes.
"""
import numpy as np


class SGD:
    def __init__(self, params, learning_rate_init=0.1, lr_schedule="constant",
                 momentum=0.9, nesterov=True, power_t=0.5):
        self.learning_rate_init = learning_rate_init
        self.learning_rate = float(learning_rate_init)
        self.lr_schedule = lr_schedule
        self.momentum = momentum
        self.nesterov = nesterov
        self.power_t = power_t
        self.velocities = [np.zeros_like(p) for p in params]

    def update(self, params, grads):
        lr = self.learning_rate
        mu = self.momentum
        for p, g, v in zip(params, grads, self.velocities):
            # v = mu * v - lr * g;  p += v  (Nesterov: p += mu * v - lr * g)
            v *= mu
            v -= lr * g
            if self.nesterov:
                p += mu * v - lr * g
            else:
                p += v

    def iteration_ends(self, time_step):
        """Called after each epoch with the number of samples seen so far."""
        if self.lr_schedule == "invscaling":
            self.learning_rate = (
                float(self.learning_rate_init) / (time_step + 1) ** self.power_t
            )

    def trigger_stopping(self, msg, verbose):
        """The adaptive schedule divides the rate by 5 instead of stopping,
        until it falls below 1e-6."""
        if self.lr_schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(msg + f" Setting learning rate to {self.learning_rate:f}")
        return False


class Adam:
    def __init__(self, params, learning_rate_init=0.001, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8):
        self.learning_rate_init = learning_rate_init
        self.learning_rate = float(learning_rate_init)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.t = 0
        self.ms = [np.zeros_like(p) for p in params]
        self.vs = [np.zeros_like(p) for p in params]

    def update(self, params, grads):
        self.t += 1
        b1, b2 = self.beta_1, self.beta_2
        lr = (self.learning_rate_init * np.sqrt(1 - b2 ** self.t)
              / (1 - b1 ** self.t))
        for p, g, m, v in zip(params, grads, self.ms, self.vs):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            p -= (lr * m) / (np.sqrt(v) + self.epsilon)
        self.learning_rate = lr

    def iteration_ends(self, time_step):
        pass

    def trigger_stopping(self, msg, verbose):
        if verbose:
            print(msg + " Stopping.")
        return True
