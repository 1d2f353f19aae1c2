"""Data loaders: IDX files, Fashion-MNIST, and a regression task made from
scikit-learn's digits.

Nothing here downloads: Fashion-MNIST is read from a folder on disk (Debian's
package ``dataset-fashion-mnist`` installs it under
``/usr/share/datasets/fashion-mnist``); the digit sums are drawn from the
8x8 digits that ship with scikit-learn.
"""
import gzip
import os

import numpy as np
from sklearn.utils import Bunch

__all__ = ["load_idx", "load_fashion_mnist", "make_digit_sums",
           "FASHION_MNIST_CLASSES"]

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
        Return ``(X_train, X_test, y_train, y_test)`` instead of a Bunch,
        the X as images, (60000, 28, 28) and (10000, 28, 28), which is how
        the estimators read them (``X.reshape(len(X), -1)`` gives the rows
        of pixels that other models take).

    Returns
    -------
    data : Bunch
        ``data`` (60000, 784) float32 in [0, 1], ``target`` (60000,) int64,
        ``images`` (60000, 28, 28) (a view of ``data``), ``data_test``,
        ``target_test``, ``images_test`` likewise for the 10,000 test images,
        ``image_shape`` (28, 28), the shape of one image (pass it as an
        estimator's ``image_shape`` with the rows of ``data``),
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
    side = tuple(int(s) for s in arrays["train_images"].shape[1:])
    if return_X_y:
        return (X_train.reshape((-1,) + side), X_test.reshape((-1,) + side),
                y_train, y_test)
    return Bunch(
        data=X_train, target=y_train, images=X_train.reshape((-1,) + side),
        data_test=X_test, target_test=y_test, images_test=X_test.reshape((-1,) + side),
        image_shape=side, target_names=np.array(FASHION_MNIST_CLASSES),
        DESCR=("Fashion-MNIST: 70,000 28x28 grey-scale images of 10 kinds of "
               "clothing (Zalando Research), 60,000 for training and 10,000 "
               "for testing; pixels scaled to [0, 1]."),
    )


def make_digit_sums(n_train=6000, n_test=2000, random_state=0, return_X_y=False):
    """A regression task of images: the sum of the two handwritten digits
    on a 16x24 canvas, wherever they sit.

    Each canvas holds two of scikit-learn's 8x8 digits (1,797 scans of 0-9),
    one in its left half and one in its right, each at a random place
    (up to 8 rows down and 4 columns across within its half); the target is
    the sum of the two digits' values, 0 to 18. It depends on what the
    digits are, not on where they sit: a network must recognise shapes
    wherever they appear, which is what convolutions with shared weights
    do and what a model of the raw pixels (an MLP, gradient-boosted trees)
    learns only place by place. The training and the test canvases are
    drawn from two disjoint halves of the scans (stratified by digit), so
    no test canvas shows a scan seen in training.

    Parameters
    ----------
    n_train, n_test : int, default=6000, 2000
    random_state : int, RandomState or None, default=0
    return_X_y : bool, default=False
        Return ``(X_train, X_test, y_train, y_test)`` instead of a Bunch,
        the X as images, (n_train, 16, 24) and (n_test, 16, 24), which is
        how the estimators read them (``X.reshape(len(X), -1)`` gives the
        rows of pixels that other models take).

    Returns
    -------
    data : Bunch
        ``data`` (n_train, 384) float32 in [0, 1] (rows of 16x24 images),
        ``target`` (n_train,) float64, ``images`` (n_train, 16, 24) (a view
        of ``data``), ``data_test``, ``target_test``, ``images_test``
        likewise, ``image_shape`` (16, 24), the shape of one image (pass it
        as an estimator's ``image_shape`` with the rows of ``data``: 384 is
        no square, and rows alone would be read as 1x384 strips),
        ``DESCR``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state

    for name, n in (("n_train", n_train), ("n_test", n_test)):
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise ValueError(f"{name} must be an int >= 1, got {n!r}")
    rng = check_random_state(random_state)
    digits = load_digits()
    scans = (digits.images / 16.0).astype(np.float32)
    train_idx, test_idx = train_test_split(
        np.arange(len(scans)), test_size=0.5, stratify=digits.target,
        random_state=rng.randint(2**31 - 1))

    def canvases(pool, n):
        pairs = pool[rng.randint(0, len(pool), size=(n, 2))]
        rows = rng.randint(0, 9, size=(n, 2))
        cols = rng.randint(0, 5, size=(n, 2)) + np.array([0, 12])
        images = np.zeros((n, 16, 24), np.float32)
        for k in range(2):
            for i in range(n):
                r, c = rows[i, k], cols[i, k]
                images[i, r:r + 8, c:c + 8] = scans[pairs[i, k]]
        target = digits.target[pairs].sum(axis=1).astype(np.float64)
        return images, target

    images_train, y_train = canvases(train_idx, n_train)
    images_test, y_test = canvases(test_idx, n_test)
    if return_X_y:
        return images_train, images_test, y_train, y_test
    return Bunch(
        data=images_train.reshape(n_train, -1), target=y_train, images=images_train,
        data_test=images_test.reshape(n_test, -1), target_test=y_test,
        images_test=images_test, image_shape=(16, 24),
        DESCR=("Digit sums: 16x24 canvases holding two of scikit-learn's 8x8 "
               "handwritten digits at random places; the target is the sum "
               "of their values (0 to 18)."),
    )
