"""Saving and loading a fitted ConvNetClassifier without pickle.

Loading a pickle runs code; loading a model should not have to. ``save``
writes one ``.npz`` archive: the weights as plain arrays, and the
hyperparameters, fitted attributes and pyconvnet version as JSON text.
``load`` reads it with ``allow_pickle=False``, rebuilds the network from the
hyperparameters and checks every stored array against the shape and dtype
the network expects, so a tampered or truncated file raises an error — it
never runs code and never yields a model with mismatched shapes.
"""
import json
import numbers
import zipfile

import numpy as np

FORMAT = "pyconvnet-model"
FORMAT_VERSION = 1
_META_KEY = "__meta__"


def _jsonable(value):
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, numbers.Number, str)):
        return value
    raise TypeError(f"cannot save a parameter of type {type(value).__name__}")


def _tupled(value):
    if isinstance(value, list):
        return tuple(_tupled(v) for v in value)
    return value


_FITTED_SCALARS = ("n_features_in_", "n_iter_", "t_", "loss_", "best_loss_",
                   "best_validation_score_")
_FITTED_LISTS = ("loss_curve_", "validation_scores_")


def save(model, path):
    """Write a fitted ConvNetClassifier to ``path`` (a ``.npz`` archive).

    Parameters
    ----------
    model : ConvNetClassifier, fitted
    path : str or path-like or file object
    """
    from sklearn.utils.validation import check_is_fitted

    from . import __version__
    from ._classifier import ConvNetClassifier

    if not isinstance(model, ConvNetClassifier):
        raise TypeError(f"save takes a ConvNetClassifier, got {type(model).__name__}")
    check_is_fitted(model)
    params = model.get_params()
    if not (params["random_state"] is None or isinstance(params["random_state"], numbers.Integral)):
        params["random_state"] = None  # a RandomState object is not data
    classes = np.asarray(model.classes_)
    if classes.dtype == object:
        classes = np.asarray(classes.tolist())
        if classes.dtype == object:
            raise TypeError("classes_ of mixed types cannot be saved without pickle")
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "pyconvnet_version": __version__,
        "params": {k: _jsonable(v) for k, v in params.items()},
        "dtype": np.dtype(model._dtype).name,
        "image_shape": list(model.image_shape_),
        "fitted": {k: _jsonable(getattr(model, k)) for k in _FITTED_SCALARS + _FITTED_LISTS},
        "feature_names_in": (None if not hasattr(model, "feature_names_in_")
                             else [str(v) for v in model.feature_names_in_]),
        "n_params": len(model._network.params),
    }
    meta["fitted"] = {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                      for k, v in meta["fitted"].items()}
    arrays = {f"param_{i}": p for i, p in enumerate(model._network.params)}
    arrays["classes"] = classes
    # UTF-8 JSON text as bytes: readable with any zip tool and numpy.
    arrays[_META_KEY] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    np.savez(path, **arrays)


def load(path):
    """Read a model written by :func:`save`.

    Returns
    -------
    model : ConvNetClassifier
        Fitted; predicts exactly as the saved model did.

    Raises
    ------
    ValueError
        If the file is not a pyconvnet model, is truncated or corrupt, or
        its arrays do not match the architecture its hyperparameters describe.
    """
    from . import __version__
    from ._classifier import ConvNetClassifier, _check_conv_layers, _check_sizes
    from ._network import build_network

    try:
        with np.load(path, allow_pickle=False) as archive:
            files = {k: archive[k] for k in archive.files}
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
        raise ValueError(f"not a readable pyconvnet model file: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"corrupt pyconvnet model file: {exc}") from None
    if _META_KEY not in files:
        raise ValueError("not a pyconvnet model file: no metadata")
    try:
        raw_meta = files.pop(_META_KEY)
        if raw_meta.dtype != np.uint8 or raw_meta.ndim != 1:
            raise ValueError("bad metadata")
        meta = json.loads(raw_meta.tobytes().decode("utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("bad metadata")
        if meta.get("format") != FORMAT:
            raise ValueError("not a pyconvnet model file")
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported model format version {meta.get('format_version')!r}")
        params = {k: _tupled(v) for k, v in meta["params"].items()}
        model = ConvNetClassifier(**params)
        model._validate_params()
        dtype = np.dtype(meta["dtype"])
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"bad dtype {dtype}")
        image_shape = tuple(int(v) for v in meta["image_shape"])
        classes = files.pop("classes")
        if classes.ndim != 1 or len(classes) < 2:
            raise ValueError("bad classes")
        network = build_network(
            image_shape, len(classes), _check_conv_layers(model.conv_layers),
            model.padding, model.pooling, model.pool_size,
            _check_sizes(model.hidden_layer_sizes, "hidden_layer_sizes"),
            model.activation, model.dropout, np.random.RandomState(0), dtype.type,
        )
        expected = network.params
        if len(files) != len(expected) or meta["n_params"] != len(expected):
            raise ValueError(
                f"the file holds {len(files)} weight arrays, the architecture needs "
                f"{len(expected)}")
        for i, target in enumerate(expected):
            stored = files.get(f"param_{i}")
            if stored is None or stored.shape != target.shape or stored.dtype != target.dtype:
                raise ValueError(
                    f"weight array {i}: expected {target.shape} {target.dtype}, found "
                    f"{None if stored is None else (stored.shape, stored.dtype)}")
            if not np.all(np.isfinite(stored)):
                raise ValueError(f"weight array {i} holds non-finite values")
            target[...] = stored
        fitted = meta["fitted"]
        n_features = int(fitted["n_features_in_"])
        if n_features != int(np.prod(image_shape)):
            raise ValueError("n_features_in_ does not match image_shape")
    except ValueError as exc:
        raise ValueError(f"invalid pyconvnet model file: {exc}") from None
    except (KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise ValueError(f"invalid pyconvnet model file: missing or bad {exc}") from None

    if meta["pyconvnet_version"] != __version__:
        import warnings
        warnings.warn(f"model saved by pyconvnet {meta['pyconvnet_version']}, loaded by "
                      f"{__version__}", UserWarning)
    model._network = network
    model._dtype = dtype.type
    model._optimizer = None
    model._random_state = np.random.RandomState(model.random_state)
    model._no_improvement_count = 0
    model.classes_ = classes
    model.image_shape_ = image_shape
    for key in _FITTED_SCALARS + _FITTED_LISTS:
        setattr(model, key, fitted[key])
    model.n_features_in_ = n_features
    if model.best_loss_ is None and not model.early_stopping:
        model.best_loss_ = np.inf
    if meta.get("feature_names_in") is not None:
        model.feature_names_in_ = np.asarray(meta["feature_names_in"], dtype=object)
    model._publish_architecture()
    return model
