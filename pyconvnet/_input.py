"""Reading X as images: validation (dense, sparse, 2-D rows, 3-D and 4-D
images), the image shape each row is read as, and the batches of rows a
network takes.
"""
import warnings
from numbers import Integral

import numpy as np
from scipy import sparse
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ._geometry import INT_MAX
from .ops import FLOAT_DTYPES


def check_sizes(value, name):
    try:
        sizes = np.atleast_1d(np.asarray(value, dtype=object))
    except (ValueError, TypeError, RecursionError):
        sizes = None
    if sizes is None or sizes.ndim != 1 or not all(
        isinstance(v, (Integral, np.integer)) and not isinstance(v, bool)
        and 1 <= v <= INT_MAX for v in sizes
    ):
        raise ValueError(f"{name} must hold ints in [1, {INT_MAX}], got {value!r}")
    return tuple(int(v) for v in sizes)


class InputHandling:
    """How an estimator reads X (``image_shape``, ``dtype`` and the fitted
    ``image_shape_``, ``_dtype``)."""

    def _input_dtypes(self, reset=False):
        if self.dtype is not None:
            return np.dtype(self.dtype).type
        if hasattr(self, "_dtype") and not reset:
            # Predicting, or continuing a fit: the fitted precision. A new
            # fit (reset) takes the precision of its own X.
            return self._dtype
        # ops.result_dtype's rule for one array, with float32 as the
        # default: check_array keeps a dtype of this list and converts any
        # other to the first.
        return [np.float32] + [d for d in FLOAT_DTYPES if d != np.float32]

    def _validate_X(self, X, y=None, reset=True):
        """Validate X (and y); return the 2-D X, y and X's image shape if nd."""
        nd_shape = None
        if (hasattr(X, "__array__") and not hasattr(X, "dtype")
                and not hasattr(X, "columns") and not sparse.issparse(X)):
            # An array in another wrapper: its values' precision decides the
            # network's, as for the array itself.
            X = np.asarray(X)
        ndim = getattr(X, "ndim", None)
        if ndim is None and isinstance(X, (list, tuple)):
            ndim = np.ndim(X)
        if not sparse.issparse(X) and not hasattr(X, "iloc") and (ndim or 0) > 2:
            if ndim > 4:
                raise ValueError(
                    f"X must be 2-D (n_samples, n_features), 3-D (n_samples, "
                    f"height, width) or 4-D (n_samples, channels, height, "
                    f"width); got a {ndim}-D array"
                )
            X = check_array(X, allow_nd=True, dtype=self._input_dtypes(reset),
                            ensure_all_finite=True)
            nd_shape = X.shape[1:] if X.ndim == 4 else (1,) + X.shape[1:]
            if reset:
                _warn_if_channels_last(nd_shape)
            X = X.reshape(X.shape[0], -1)
        # Sparse X stays sparse (CSR, whose rows slice cheaply): batches are
        # densified one at a time, in training and in prediction.
        kwargs = dict(dtype=self._input_dtypes(reset), ensure_all_finite=True,
                      order="C", reset=reset, accept_sparse="csr")
        if y is None:
            X = validate_data(self, X, **kwargs)
        else:
            X, y = validate_data(self, X, y, multi_output=True,
                                 y_numeric=self._y_numeric, **kwargs)
            if sparse.issparse(y):
                y = y.toarray()
        return X, y, nd_shape

    def _resolve_image_shape(self, n_features, nd_shape):
        if self.image_shape is not None:
            shape = check_sizes(self.image_shape, "image_shape")
            if len(shape) not in (2, 3):
                raise ValueError(
                    "image_shape must be (height, width) or (channels, height, "
                    f"width), got {self.image_shape!r}"
                )
            if len(shape) == 2:
                shape = (1,) + shape
            if int(np.prod(shape)) != n_features:
                raise ValueError(
                    f"image_shape {tuple(self.image_shape)} holds "
                    f"{int(np.prod(shape))} values per sample, but X has "
                    f"{n_features} features"
                )
            if nd_shape is not None and tuple(nd_shape) != shape:
                # Reading (n, 28, 28) as, say, (1, 14, 56) would shuffle the
                # pixels, and predict on the same X would then fail.
                raise ValueError(
                    f"image_shape {tuple(self.image_shape)} disagrees with the "
                    f"images in X, of shape {tuple(nd_shape)}; pass 2-D X "
                    "(n_samples, n_features) to have its rows reshaped, or "
                    "leave image_shape=None"
                )
            return shape
        if nd_shape is not None:
            return tuple(int(s) for s in nd_shape)
        side = int(round(np.sqrt(n_features)))
        if side * side == n_features:
            return (1, side, side)
        return (1, 1, n_features)

    def _images(self, X):
        """Dense X as (n, C, H, W), a view; sparse X as it is (see _rows)."""
        if sparse.issparse(X):
            return X
        return X.reshape((X.shape[0],) + self.image_shape_)

    def _rows(self, images, rows):
        """The images at ``rows`` (indices or a slice) as a dense
        (n, C, H, W) array: only this batch is densified for sparse X."""
        if sparse.issparse(images):
            batch = images[rows].toarray().astype(self._dtype, copy=False)
            return batch.reshape((batch.shape[0],) + self.image_shape_)
        if isinstance(rows, slice):
            return images[rows]
        return np.take(images, rows, axis=0)

    def _validate_predict_X(self, X):
        check_is_fitted(self)
        X, _, nd_shape = self._validate_X(X, reset=False)
        if nd_shape is not None and tuple(nd_shape) != self.image_shape_:
            raise ValueError(
                f"X holds images of shape {tuple(nd_shape)}, but the model was "
                f"fitted on images of shape {self.image_shape_}"
            )
        return X.astype(self._dtype, copy=False)

    def as_images(self, X):
        """X validated as prediction validates it, as (n, C, H, W) images
        of the fitted shape and precision (dense)."""
        images = self._images(self._validate_predict_X(X))
        return self._rows(images, slice(None))


def _warn_if_channels_last(shape):
    """Warn when (C, H, W) looks like (H, W, C): the last axis the size of
    colour channels and the first not."""
    channels = (1, 3, 4)
    if shape[2] in channels and shape[0] not in channels and shape[1] > 4:
        warnings.warn(
            f"X holds images of shape {tuple(shape)}, read as (channels, "
            f"height, width) = {shape[0]} channels of {shape[1]}x{shape[2]}; "
            f"if they are (height, width, channels) images, pass "
            "X.transpose(0, 3, 1, 2)",
            UserWarning,
        )
