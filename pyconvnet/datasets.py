"""Data loaders: IDX files and Fashion-MNIST.

Nothing here downloads: Fashion-MNIST is read from a folder on disk (Debian's
package ``dataset-fashion-mnist`` installs it under
``/usr/share/datasets/fashion-mnist``).
"""
import gzip
import os

import numpy as np
from sklearn.utils import Bunch

__all__ = ["load_idx", "load_fashion_mnist", "FASHION_MNIST_CLASSES"]

# IDX type codes -> big-endian numpy dtypes
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def load_idx(path):
    """Read an IDX file (gzip-compressed or raw) into a numpy array.

    The IDX format: two zero bytes, a type code, the number of dimensions,
    each dimension as a big-endian uint32, then the values, big-endian.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    array : ndarray of the file's shape and dtype (native byte order)

    Raises
    ------
    ValueError
        If the file is not IDX (wrong magic number or type code), or is
        truncated, or has bytes past its declared size.
    """
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path}: corrupt or truncated gzip data ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"{path}: not an IDX file (magic number {raw[:4].hex() or 'missing'}; "
            "expected 00 00 <type> <ndim>)"
        )
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX type code 0x{code:02x}")
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(shape)) * dtype.itemsize
    got = len(raw) - header
    if got < expected:
        raise ValueError(
            f"{path}: truncated IDX file: shape {shape} needs {expected} bytes "
            f"of data, found {got}"
        )
    if got > expected:
        raise ValueError(
            f"{path}: {got - expected} unexpected bytes after the IDX data of shape {shape}"
        )
    data = np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape)), offset=header)
    return data.reshape(shape).astype(dtype.newbyteorder("="))


def _find(name, folders):
    for folder in folders:
        for candidate in (name, name + ".gz"):
            path = os.path.join(folder, candidate)
            if os.path.isfile(path):
                return path
    return None


def load_fashion_mnist(data_home=None, return_X_y=False):
    """Load Fashion-MNIST (60,000 training and 10,000 test images, 28x28).

    The IDX files (``train-images-idx3-ubyte[.gz]`` and the three others) are
    looked for in ``data_home`` (and its ``fashion-mnist`` subfolder) when it
    is given, and only there; otherwise in ``$PYCONVNET_DATA`` (and its
    ``fashion-mnist`` subfolder), then ``/usr/share/datasets/fashion-mnist``.

    Parameters
    ----------
    data_home : str, default=None
    return_X_y : bool, default=False
        Return ``(X_train, X_test, y_train, y_test)`` instead of a Bunch.

    Returns
    -------
    data : Bunch
        ``data`` (60000, 784) float32 in [0, 1], ``target`` (60000,) int64,
        ``images`` (60000, 28, 28) (a view of ``data``), ``data_test``,
        ``target_test``, ``images_test`` likewise for the 10,000 test images,
        ``target_names`` (the 10 class names), ``DESCR``.

    Raises
    ------
    FileNotFoundError
        When the files are in none of those folders; the message says how to
        install them.
    """
    if data_home is not None:
        # An explicit folder is the only place looked in: falling back to
        # another copy would train on data the caller did not name.
        data_home = os.fspath(data_home)
        if not os.path.isdir(data_home):
            raise FileNotFoundError(f"data_home {data_home!r} is not a folder")
        folders = [data_home, os.path.join(data_home, "fashion-mnist")]
    else:
        folders = []
        env = os.environ.get("PYCONVNET_DATA")
        if env:
            folders += [env, os.path.join(env, "fashion-mnist")]
        folders.append(_SYSTEM_DIR)
    paths = {key: _find(name, folders) for key, name in _FILES.items()}
    missing = [_FILES[k] for k, p in paths.items() if p is None]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST not found (missing {', '.join(missing)}) in: "
            f"{', '.join(folders)}. On Debian or Ubuntu, `apt-get install "
            "dataset-fashion-mnist` installs it in /usr/share/datasets/fashion-mnist; "
            "or put the four IDX files (gzip or raw) in a folder and pass it "
            "as data_home or $PYCONVNET_DATA."
        )
    arrays = {key: load_idx(path) for key, path in paths.items()}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"Fashion-MNIST {part} files disagree: images {images.shape}, "
                f"labels {labels.shape}"
            )
    X_train = (arrays["train_images"].reshape(len(arrays["train_images"]), -1)
               .astype(np.float32) / np.float32(255))
    X_test = (arrays["test_images"].reshape(len(arrays["test_images"]), -1)
              .astype(np.float32) / np.float32(255))
    y_train = arrays["train_labels"].astype(np.int64)
    y_test = arrays["test_labels"].astype(np.int64)
    if return_X_y:
        return X_train, X_test, y_train, y_test
    side = arrays["train_images"].shape[1:]
    return Bunch(
        data=X_train, target=y_train, images=X_train.reshape((-1,) + side),
        data_test=X_test, target_test=y_test, images_test=X_test.reshape((-1,) + side),
        target_names=np.array(FASHION_MNIST_CLASSES),
        DESCR=("Fashion-MNIST: 70,000 28x28 grey-scale images of 10 kinds of "
               "clothing (Zalando Research), 60,000 for training and 10,000 "
               "for testing; pixels scaled to [0, 1]."),
    )
