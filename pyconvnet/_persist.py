"""Saving and loading a fitted ConvNetClassifier or ConvNetRegressor without
pickle.

Loading a pickle runs code; loading a model should not have to. ``save``
writes one ``.npz`` archive: the weights as plain arrays, and the
hyperparameters, fitted attributes, the estimator's class and pyconvnet
version as JSON text, and the targets' encoding (a classifier's classes, a
regressor's standardisation) as arrays (``_ClassifierTargets``,
``_RegressorTargets``).
``load`` reads it with ``allow_pickle=False``, rebuilds the network from the
hyperparameters and checks every stored array against the shape and dtype
the network expects (and the optimizer's state, so that training continues
where it stood), so a tampered or truncated file raises an error — it
never runs code and never yields a model with mismatched shapes.
"""
import json
import numbers
import zipfile

import numpy as np

from ._json import to_json, tupled
from ._optimizers import SOLVERS

FORMAT = "pyconvnet-model"
# 2: the file also holds the network's spec (``_spec.NetworkSpec.to_dict``)
# and the estimator's class name. Version 1 files (without them) still load.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
_META_KEY = "__meta__"


# The history's lists (the estimator's HISTORY_ATTRIBUTES holds the rest).
_FITTED_LISTS = ("loss_curve_", "validation_scores_")


def _estimators():
    """Each estimator a file can hold, by class name (``register_estimator``);
    each owns its targets' encoding (``target_encoding``)."""
    from . import _classifier, _regressor  # noqa: F401 - they register themselves
    from ._base import ESTIMATORS

    return ESTIMATORS


def save(model, path):
    """Write a fitted ConvNetClassifier or ConvNetRegressor to ``path`` (a
    ``.npz`` archive).

    Parameters
    ----------
    model : ConvNetClassifier or ConvNetRegressor, fitted
    path : str or path-like or file object
    """
    from . import __version__

    known = _estimators()
    if known.get(type(model).__name__) is not type(model):
        raise TypeError(f"save takes one of {', '.join(known)}, got "
                        f"{type(model).__name__}")
    targets = type(model).target_encoding
    # The file describes the network by the hyperparameters: ones changed by
    # set_params since the fit would describe another network (refused).
    state = model.training_state("save")
    params = model.get_params()
    if not (params["random_state"] is None or isinstance(params["random_state"], numbers.Integral)):
        params["random_state"] = None  # a RandomState object is not data
    network = model.network_
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "pyconvnet_version": __version__,
        "estimator": type(model).__name__,
        "network": network.spec.to_dict(),
        "params": {k: to_json(v) for k, v in params.items()},
        "dtype": model.dtype_.name,
        "image_shape": list(model.image_shape_),
        "fitted": {k: to_json(v) for k, v in state["history"].items()},
        "feature_names_in": (None if not hasattr(model, "feature_names_in_")
                             else [str(v) for v in model.feature_names_in_]),
        "n_params": len(network.params),
        "multilabel": model.multilabel_,
        "optimizer": None,
    }
    arrays = {f"param_{i}": p for i, p in enumerate(network.params)}
    # Where training stands (the schedule's position, a decayed rate, Adam's
    # step count and moments): a loaded model continues as the saved one
    # would, as a pickled copy does. The hyperparameters the optimizer was
    # built with are saved too: if set_params changed the solver's since,
    # the next partial_fit of the loaded model takes the new ones as the
    # saved model's would.
    optimizer = state["optimizer"]
    if optimizer is not None:
        meta["optimizer"] = {
            "params": {k: to_json(v) for k, v in optimizer["settings"].items()},
            **{k: to_json(v) for k, v in optimizer["scalars"].items()}}
        arrays.update({f"optimizer_{name}": a
                       for name, a in optimizer["arrays"].items()})
    meta["fitted"] = {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                      for k, v in meta["fitted"].items()}
    arrays.update(targets.arrays(model))
    # UTF-8 JSON text as bytes: readable with any zip tool and numpy.
    arrays[_META_KEY] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    np.savez(path, **arrays)


# Limits of what load reads, whatever the file declares: no metadata larger
# than this, no longer training history (and no more outputs than
# _base.MAX_OUTPUTS, which the estimators' target encodings check).
_MAX_META_BYTES = 1 << 20
_MAX_HISTORY = 1 << 20


def _npy_header(archive, info):
    """(shape, dtype, fortran_order, header length) of one .npy member, read
    from its header alone: the data is not decompressed."""
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(
                f, max_header_size=10000)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(
                f, max_header_size=10000)
        else:
            raise ValueError(f"{info.filename}: unsupported .npy version {version}")
        return shape, dtype, fortran, f.tell()


def _check_member_size(info, header):
    """The member's size (from the zip directory) is its header's declared
    array and nothing else: checked before anything is allocated for it."""
    shape, dtype, _, offset = header
    n_bytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if info.file_size != offset + n_bytes:
        raise ValueError(
            f"{info.filename}: {info.file_size} bytes, but its header declares "
            f"{offset + n_bytes}")


def _read_member(archive, info, header):
    """The array of one member whose header was checked, read with pickle
    disabled and its declared size matched to the bytes that follow."""
    _check_member_size(info, header)
    with archive.open(info) as f:
        return np.lib.format.read_array(f, allow_pickle=False)


def _check_number(value, name, integer=False, none=False, low=None):
    if value is None and none:
        return None
    kinds = (numbers.Integral,) if integer else (numbers.Real,)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ValueError(f"{name} must be {'an int' if integer else 'a number'}, "
                         f"got {type(value).__name__}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


def _check_fitted(fitted):
    if not isinstance(fitted, dict):
        raise ValueError("bad fitted attributes")
    out = {}
    for key in ("n_features_in_", "n_iter_", "t_"):
        out[key] = _check_number(fitted[key], key, integer=True, low=0)
    # Epochs without improvement so far (absent from older files): the
    # stopping rule and the adaptive schedule continue from it.
    out["_no_improvement_count"] = _check_number(
        fitted.get("_no_improvement_count", 0), "_no_improvement_count",
        integer=True, low=0)
    out["loss_"] = _check_number(fitted["loss_"], "loss_", none=True)
    out["best_loss_"] = _check_number(fitted["best_loss_"], "best_loss_", none=True)
    out["best_validation_score_"] = _check_number(
        fitted["best_validation_score_"], "best_validation_score_", none=True)
    for key in _FITTED_LISTS:
        value = fitted[key]
        if value is None and key == "validation_scores_":
            out[key] = None
            continue
        if not isinstance(value, list) or len(value) > _MAX_HISTORY:
            raise ValueError(f"{key} must be a list of numbers")
        out[key] = [float(_check_number(v, key)) for v in value]
    return out


def _layer_slices(spec):
    """(layer spec, (first, end) of its parameters in the network's order)."""
    start = 0
    for layer in spec.layers:
        end = start + len(layer.param_shapes)
        yield layer, (start, end)
        start = end


def _check_params(cls, params):
    """An estimator of class ``cls`` with ``params`` read from a file, judged
    by the estimator's own checks — and more strictly on one point:
    scikit-learn's validation takes True for an int; a file does not get to."""
    defaults = cls().get_params()
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(f"parameters {unknown} are not {cls.__name__}'s")
    model = cls(**params)
    model.check_params()
    for key, value in params.items():
        if isinstance(value, bool) and not isinstance(defaults.get(key), bool):
            raise ValueError(f"parameter {key} must not be a bool, got {value!r}")
    return model


def _check_optimizer(stored, model):
    """The saved optimizer, checked: (the solver and its hyperparameters it
    was built with — judged by the estimator's own checks —, its scalars,
    the names of the state arrays the file must hold); (None, None, ()) for
    a file without one (written before the optimizer was saved, or never
    trained)."""
    if stored is None:
        return None, None, ()
    settings = stored.get("params") if isinstance(stored, dict) else None
    kind = SOLVERS.get(settings.get("solver") if isinstance(settings, dict) else None)
    if kind is None or set(settings) != {"solver", *kind.PARAMS}:
        raise ValueError("bad optimizer state")
    _check_params(type(model), {**model.get_params(), **settings})
    kind.check_settings(settings)
    scalars = {}
    for name in kind.SCALARS:
        value = _check_number(stored.get(name), f"optimizer {name}",
                              integer=name == "t", low=0)
        if not np.isfinite(value) or value > 2**53:
            raise ValueError(f"optimizer {name} must be finite, got {value}")
        scalars[name] = value
    if set(stored) != {"params", *kind.SCALARS}:
        raise ValueError(f"unexpected optimizer fields {sorted(stored)}")
    return dict(settings), scalars, kind.STATE


def load(path, estimator=None):
    """Read a model written by :func:`save`.

    The file is checked before anything large is allocated or decompressed:
    the archive's member names and sizes, the metadata (at most 1 MB of
    JSON, every field of the right type), the architecture it describes
    (within the kernels' limits), and every weight array's shape and dtype,
    read from the .npy headers, against that architecture. Only then are
    the arrays read, with pickle disabled. Opening a file never runs code.

    Parameters
    ----------
    path : str or path-like or file object
    estimator : {ConvNetClassifier, ConvNetRegressor} or None, default=None
        The class the file must hold; None takes the one it says it holds.

    Returns
    -------
    model : ConvNetClassifier or ConvNetRegressor
        Fitted; predicts exactly as the saved model did, and its
        ``random_state`` drives any further training as in ``fit``.

    Raises
    ------
    ValueError
        If the file is not a pyconvnet model, is truncated, corrupt or
        tampered with, declares an architecture its arrays do not match, or
        holds another estimator than ``estimator``.
    """
    from . import __version__

    known = {cls: name for name, cls in _estimators().items()}
    if estimator is not None and estimator not in known:
        raise TypeError(f"estimator must be one of {', '.join(known.values())} or "
                        f"None, got {estimator!r}")

    # Whatever a malformed file makes the zip, zlib/lzma, .npy or JSON
    # readers raise (a flipped byte has given NotImplementedError,
    # LZMAError and tokenize's TokenError besides the usual ones), the caller
    # gets a ValueError: the contract is one exception type for a bad file.
    try:
        archive = zipfile.ZipFile(path)
    except Exception as exc:
        raise ValueError(f"not a readable pyconvnet model file: "
                         f"{type(exc).__name__}: {exc}") from None
    try:
        with archive:
            model, meta = _load_checked(archive, known.get(estimator))
    except ValueError as exc:
        raise ValueError(f"invalid pyconvnet model file: {exc}") from None
    except Exception as exc:
        raise ValueError(
            f"invalid pyconvnet model file: missing or bad {type(exc).__name__}: "
            f"{exc}") from None

    if meta["pyconvnet_version"] != __version__:
        import warnings
        warnings.warn(f"model saved by pyconvnet {meta['pyconvnet_version']}, loaded by "
                      f"{__version__}", UserWarning)
    return model


def _load_checked(archive, expected):
    """The work of :func:`load` on an open archive: check, then read
    (``expected``: the estimator class name the file must hold, or None)."""
    infos = {info.filename: info for info in archive.infolist()}
    meta_info = infos.get(_META_KEY + ".npy")
    if meta_info is None:
        raise ValueError("not a pyconvnet model file: no metadata")
    if meta_info.file_size > _MAX_META_BYTES:
        raise ValueError(f"metadata of {meta_info.file_size} bytes")
    header = _npy_header(archive, meta_info)
    if header[1] != np.uint8 or len(header[0]) != 1:
        raise ValueError("bad metadata")
    raw_meta = _read_member(archive, meta_info, header)
    meta = json.loads(raw_meta.tobytes().decode("utf-8"))
    if not isinstance(meta, dict):
        raise ValueError("bad metadata")
    if meta.get("format") != FORMAT:
        raise ValueError("not a pyconvnet model file")
    version = meta.get("format_version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise ValueError(f"unsupported model format version {version!r}")
    # Version 1 files held classifiers only.
    name = meta.get("estimator") if version >= 2 else "ConvNetClassifier"
    if name not in _estimators():
        raise ValueError(f"the file holds an unknown estimator {name!r}")
    if expected is not None and name != expected:
        raise ValueError(f"the file holds a {name}, not a {expected}")
    cls = _estimators()[name]
    targets = cls.target_encoding
    if not isinstance(meta.get("pyconvnet_version"), str):
        raise ValueError("bad pyconvnet_version")
    if not isinstance(meta["params"], dict):
        raise ValueError("bad params")
    params = {k: tupled(v) for k, v in meta["params"].items()}
    model = _check_params(cls, params)
    # n_threads is not checked against this machine here: a model saved on a
    # 64-core machine with n_threads=32 still loads on a laptop, and fit or
    # predict then refuse the count with a ValueError naming n_threads until
    # it is set to one this machine allows.
    dtype = np.dtype(meta["dtype"])
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"bad dtype {dtype}")
    if model.dtype is not None and np.dtype(model.dtype) != dtype:
        raise ValueError(f"the dtype parameter {model.dtype!r} disagrees with the "
                         f"stored weights' {dtype.name}")
    image_shape = meta["image_shape"]
    if not (isinstance(image_shape, list) and len(image_shape) == 3 and all(
            isinstance(v, int) and not isinstance(v, bool) and 1 <= v < 2**31
            for v in image_shape)):
        raise ValueError(f"image_shape must be 3 positive ints, got {image_shape!r}")
    image_shape = tuple(image_shape)
    fitted = _check_fitted(meta["fitted"])
    if fitted["n_features_in_"] != int(np.prod(image_shape, dtype=object)):
        raise ValueError("n_features_in_ does not match image_shape")
    names = meta["feature_names_in"]
    if names is not None and not (
            isinstance(names, list) and len(names) == fitted["n_features_in_"]
            and all(isinstance(v, str) for v in names)):
        raise ValueError("bad feature_names_in")

    # The members: exactly the metadata, the targets' encoding and the
    # parameters of the architecture, each checked from its header before
    # it is read.
    target_headers = {}
    for member in targets.members:
        info = infos.get(member + ".npy")
        if info is None:
            raise ValueError(f"no {member}")
        target_headers[member] = (*_npy_header(archive, info), info)
    n_outputs, head = targets.check_headers(target_headers, meta)
    spec = model.network_spec(image_shape, n_outputs, dtype, head)
    if version >= 2:
        # The network the file describes must be the one its
        # hyperparameters build here.
        from ._spec import NetworkSpec
        if NetworkSpec.from_dict(meta.get("network")) != spec:
            raise ValueError("the file's network disagrees with the network "
                             "its hyperparameters describe")
    expected = spec.param_shapes
    optimizer = _check_optimizer(meta.get("optimizer"), model)
    wanted = {_META_KEY + ".npy"} | {m + ".npy" for m in targets.members} | {
        f"param_{i}.npy" for i in range(len(expected))} | {
        f"optimizer_{name}.npy" for name in optimizer[2]}
    if set(infos) != wanted or meta.get("n_params") != len(expected):
        raise ValueError(
            f"the file holds members {sorted(infos)[:8]}..., the architecture "
            f"needs {len(expected)} weight arrays")
    headers = {}
    for i, target in enumerate(expected):
        info = infos[f"param_{i}.npy"]
        header = _npy_header(archive, info)
        if (tuple(header[0]) != tuple(target) or header[1] != dtype
                or header[2]):
            raise ValueError(
                f"weight array {i}: expected {tuple(target)} {dtype.name}, found "
                f"{tuple(header[0])} {header[1]}")
        headers[i] = (info, header)
    n_values = sum(int(np.prod(shape, dtype=object)) for shape in expected)
    for name in optimizer[2]:
        info = infos[f"optimizer_{name}.npy"]
        header = _npy_header(archive, info)
        if tuple(header[0]) != (n_values,) or header[1] != dtype or header[2]:
            raise ValueError(
                f"optimizer state {name}: expected ({n_values},) {dtype.name}, "
                f"found {tuple(header[0])} {header[1]}")
        headers[name] = (info, header)

    # Every member holds exactly what its header declares, before the network
    # (as large as the declared weights) is allocated.
    for info, header in headers.values():
        _check_member_size(info, header)
    # Everything declared matches: now read, into the network built the way
    # fit builds it.
    target_arrays = {member: _read_member(archive, h[4], h[:4])
                     for member, h in target_headers.items()}
    weights = []
    for i in range(len(expected)):
        stored = _read_member(archive, *headers[i])
        if not np.isfinite(stored).all():
            raise ValueError(f"weight array {i} holds non-finite values")
        weights.append(stored)
    for layer, (start, stop) in _layer_slices(spec):
        problem = layer.params_problem(weights[start:stop])
        if problem:
            raise ValueError(problem)
    settings, scalars, state_names = optimizer
    state = {"history": fitted, "optimizer": None}
    if settings is not None:
        arrays = {}
        for name in state_names:
            arrays[name] = _read_member(archive, *headers[name])
            if not np.isfinite(arrays[name]).all():
                raise ValueError(f"optimizer state {name} holds non-finite values")
        state["optimizer"] = {"settings": settings,
                              "scalars": scalars, "arrays": arrays}
    targets.set(model, target_arrays, head)
    model.restore(image_shape, dtype.type, spec, weights, state)
    if names is not None:
        model.feature_names_in_ = np.asarray(names, dtype=object)
    return model, meta
