"""Data larger than memory, on Dask: train a ConvNetClassifier or a
ConvNetRegressor from a Dask array block by block
with ``partial_fit``, and predict a Dask array in parallel.

    import dask.array as da
    from pyconvnet import ConvNetClassifier
    from pyconvnet import dask as pcd

    X = da.from_zarr(...)            # (n_samples, n_features) or images
    y = da.from_zarr(...)
    model = ConvNetClassifier(random_state=0)
    pcd.partial_fit(model, X, y, classes=np.arange(10), epochs=5)
    proba = pcd.predict_proba(model, X_test)     # a lazy Dask array
    proba.to_zarr(...)                           # or .compute() if it fits

Training holds at most two blocks of rows in this process: the one it
trains on and the next, which is computed (on the cluster, if a distributed
``Client`` is active) while the current one trains. Each block is one
``partial_fit`` call, so the result is exactly that of calling
``partial_fit`` on the same blocks in memory, in the same order. Prediction
maps the fitted model over the blocks (``map_blocks``): every worker predicts
its own blocks, and nothing is gathered unless you ask for it.

Needs Dask: ``pip install "pyconvnet[distributed]"``.
"""
import inspect
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.utils import check_random_state

try:
    import dask
    import dask.array as da
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "pyconvnet.dask needs dask: pip install 'pyconvnet[distributed]'"
    ) from exc

__all__ = ["partial_fit", "predict", "predict_proba", "predict_log_proba"]


def _rows_only(X, name="X"):
    """X chunked along its first axis only (whole rows per block), with its
    row chunk sizes known (after boolean-mask filtering, say, they are not:
    they are then computed, which reads X once)."""
    if not isinstance(X, da.Array):
        raise TypeError(f"{name} must be a dask array, got {type(X).__name__}")
    if X.ndim < 2 or X.ndim > 4:
        raise ValueError(f"{name} must be 2-D, 3-D or 4-D, got {X.ndim}-D")
    X = _known_rows(X)
    if any(len(c) > 1 for c in X.chunks[1:]):
        X = X.rechunk({axis: -1 for axis in range(1, X.ndim)})
    return X


def _known_rows(v):
    if any(np.isnan(c) for c in v.chunks[0]):
        v = v.compute_chunk_sizes()
    return v


def _aligned(v, X, name):
    """A per-sample array (y, sample_weight) cut into X's row blocks: a dask
    array is rechunked to them, an in-memory one sliced."""
    if v is None:
        return [None] * X.numblocks[0]
    if isinstance(v, da.Array):
        v = _known_rows(v)
        if v.shape[0] != X.shape[0]:
            raise ValueError(f"{name} has {v.shape[0]} rows, X has {X.shape[0]}")
        v = v.rechunk((X.chunks[0],) + tuple((s,) for s in v.shape[1:]))
        return [v.blocks[i] for i in range(v.numblocks[0])]
    v = np.asarray(v)
    if v.shape[0] != X.shape[0]:
        raise ValueError(f"{name} has {v.shape[0]} rows, X has {X.shape[0]}")
    bounds = np.cumsum((0,) + X.chunks[0])
    return [v[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]


def partial_fit(model, X, y, *, classes=None, sample_weight=None, epochs=1,
                shuffle_blocks=False, random_state=None):
    """Train ``model`` on a Dask array, one block of rows at a time.

    Parameters
    ----------
    model : ConvNetClassifier or ConvNetRegressor
        Trained in place with ``partial_fit`` (one call per block).
    X : dask array of shape (n_samples, ...)
        Rows, or images (3-D or 4-D); blocks of rows are what is held in
        memory, so choose the row chunks accordingly.
    y : dask or numpy array of shape (n_samples,) or (n_samples, n_labels)
    classes : array-like, default=None
        A classifier's classes; required unless the model was already
        trained (or y is a multi-label indicator matrix). A regressor takes
        none (its first block sets the targets' standardisation).
    sample_weight : dask or numpy array of shape (n_samples,), default=None
    epochs : int, default=1
        Passes over the blocks.
    shuffle_blocks : bool, default=False
        Visit the blocks in a new random order every epoch (the model
        shuffles the rows within a block itself).
    random_state : int, RandomState or None
        Seeds the block order.

    Returns
    -------
    model
    """
    X = _rows_only(X)
    # A classifier's partial_fit takes the classes; a regressor's none.
    takes_classes = "classes" in inspect.signature(model.partial_fit).parameters
    if not takes_classes and classes is not None:
        raise ValueError(f"classes is for classifiers; a {type(model).__name__} "
                         "takes none")
    if not isinstance(epochs, (int, np.integer)) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    ys = _aligned(y, X, "y")
    weights = _aligned(sample_weight, X, "sample_weight")
    rng = check_random_state(random_state)
    n_blocks = X.numblocks[0]

    def fetch(i):
        return dask.compute(X.blocks[i], ys[i], weights[i])

    with ThreadPoolExecutor(max_workers=1) as prefetcher:
        for _ in range(epochs):
            order = rng.permutation(n_blocks) if shuffle_blocks else np.arange(n_blocks)
            pending = prefetcher.submit(fetch, order[0])
            for k in range(n_blocks):
                Xb, yb, wb = pending.result()
                if k + 1 < n_blocks:
                    pending = prefetcher.submit(fetch, order[k + 1])
                if len(Xb):        # a boolean mask may have emptied a block
                    if takes_classes:
                        model.partial_fit(Xb, yb, classes=classes, sample_weight=wb)
                    else:
                        model.partial_fit(Xb, yb, sample_weight=wb)
                classes = None if hasattr(model, "classes_") else classes
                del Xb, yb, wb
    return model


def _predict_block(block, model, method, tail, dtype):
    if block.shape[0] == 0:
        # A block that a boolean mask emptied: the model refuses 0 samples,
        # its part of the result is empty, of shape (0, *tail).
        return np.empty((0,) + tail, dtype)
    return getattr(model, method)(block)


def _map(model, X, method):
    """``model.<method>`` over X's row blocks: one task per block, each
    predicting its whole block of rows (images stay images: the model reads
    3-D and 4-D blocks itself). The model enters the graph once, as one
    Delayed object that every task refers to, so it is sent to each worker
    once, not with every task."""
    # The estimator lays its results out; what it lacks (a regressor's
    # predict_proba) it refuses here, as it refuses the method itself, not
    # when the lazy result is computed.
    tail, dtype = model.prediction_layout(method)
    X = _rows_only(X)
    return _blocks(X, dask.delayed(model, pure=True), method, tail, np.dtype(dtype))


def _blocks(X, shared, method, tail, dtype):
    """The lazy array of ``method``'s results, (n,) + ``tail`` (no tail or
    one axis), block by block of X's rows."""
    if not tail:
        return X.map_blocks(_predict_block, shared, method, (), dtype.str,
                            dtype=dtype, drop_axis=list(range(1, X.ndim)),
                            meta=np.empty((0,), dtype))
    return X.map_blocks(_predict_block, shared, method, tail, dtype.str,
                        dtype=dtype, drop_axis=list(range(2, X.ndim)),
                        chunks=(X.chunks[0], tail), meta=np.empty((0,) + tail, dtype))


def predict(model, X):
    """``model.predict`` over the blocks of a Dask array, in parallel; a lazy
    Dask array of shape (n_samples,) (or (n_samples, n_labels))."""
    return _map(model, X, "predict")


def predict_proba(model, X):
    """``model.predict_proba`` over the blocks of a Dask array, in parallel;
    a lazy Dask array of shape (n_samples, n_classes)."""
    return _map(model, X, "predict_proba")


def predict_log_proba(model, X):
    """``model.predict_log_proba`` over the blocks of a Dask array."""
    return _map(model, X, "predict_log_proba")
