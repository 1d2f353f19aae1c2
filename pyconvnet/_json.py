"""Plain JSON values for what a model file stores (its hyperparameters,
history, optimizer settings and the network's spec), and back: the one
conversion both ``_spec`` and ``_persist`` use."""
import numbers

import numpy as np


def to_json(value):
    """``value`` as JSON data: tuples become lists, NumPy scalars Python
    ones; a TypeError for anything else than numbers, strings, booleans,
    None, sequences and dicts of them (nothing is pickled)."""
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [to_json(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, numbers.Number, str)):
        return value
    raise TypeError(f"cannot save a value of type {type(value).__name__}")


def tupled(value):
    """JSON lists back as the tuples they were written from."""
    if isinstance(value, list):
        return tuple(tupled(v) for v in value)
    return value
