"""The activations: one table, from which every other place derives them.

Each row holds an activation's name, the names scikit-learn's MLP
estimators also accept for it, its ONNX operator, the variance scale of the
initial weights of a layer it follows (He's 2 for ReLU), and its NumPy
definition, forward and backward. The compiled kernels know the same
activations by the codes of ``common.h``'s enum (``runtime.ACTIVATION_CODES``,
by name): ``code`` maps any accepted name to it, and the table must name
exactly the enum's activations (checked at import). The estimators'
accepted values, the command line's choices, the spec's canonical names,
the dense layers' activation, the naive reference convolution and the ONNX
export all read this table.
"""
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.special import expit

from ._kernels.runtime import ACTIVATION_CODES


@dataclass(frozen=True)
class Activation:
    name: str
    #: other names accepted for it (MLPClassifier's "logistic")
    aliases: tuple
    #: the ONNX operator, None for no node
    onnx: str
    #: variance scale of the initial weights of the layer it follows
    init_scale: float
    #: z -> activation(z), NaN propagating
    forward: Callable
    #: (dy, y) -> the gradient at the input, from the output y
    backward: Callable


TABLE = {a.name: a for a in (
    Activation("relu", (), "Relu", 2.0,
               lambda z: np.where(z < 0, z.dtype.type(0), z),
               lambda dy, y: np.where(y > 0, dy, dy.dtype.type(0))),
    Activation("sigmoid", ("logistic",), "Sigmoid", 1.0, expit,
               lambda dy, y: dy * y * (1 - y)),
    Activation("tanh", (), "Tanh", 1.0, np.tanh,
               lambda dy, y: dy * (1 - y * y)),
    Activation("identity", (), None, 1.0, lambda z: z, lambda dy, y: dy),
)}

#: every name accepted for an activation -> its canonical name
NAMES = {**{name: name for name in TABLE},
         **{alias: a.name for a in TABLE.values() for alias in a.aliases}}

if set(TABLE) != set(ACTIVATION_CODES):     # pragma: no cover - a build mismatch
    raise ImportError(f"the activation table {sorted(TABLE)} and the kernels' "
                      f"enum {sorted(ACTIVATION_CODES)} disagree")


def canonical(name):
    """The canonical name of an accepted ``name`` (None: "identity")."""
    return "identity" if name is None else NAMES[name]


def get(name):
    """The row of an accepted ``name`` (None: "identity")."""
    return TABLE[canonical(name)]


def code(name):
    """The kernels' code of an accepted ``name`` (None: "identity")."""
    return ACTIVATION_CODES[canonical(name)]
