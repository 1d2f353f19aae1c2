import gzip
import struct

import numpy as np
import pytest

from pyconvnet.datasets import load_fashion_mnist, load_idx


def _idx_bytes(array, code=0x08):
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    dtype = {0x08: ">u1", 0x0B: ">i2", 0x0D: ">f4"}[code]
    return header + array.astype(dtype).tobytes()


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("code, values", [
    (0x08, np.arange(24, dtype=np.uint8).reshape(2, 3, 4)),
    (0x0B, np.array([-3, 0, 300], dtype=np.int16)),
    (0x0D, np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2)),
])
def test_load_idx_round_trip(tmp_path, compress, code, values):
    raw = _idx_bytes(values, code)
    path = tmp_path / ("x.idx.gz" if compress else "x.idx")
    path.write_bytes(gzip.compress(raw) if compress else raw)
    out = load_idx(path)
    assert out.shape == values.shape
    np.testing.assert_array_equal(out, values)
    assert out.dtype.byteorder in "=|"


def test_load_idx_rejects_bad_files(tmp_path):
    good = _idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4))
    cases = {
        "truncated": good[:-1],
        "trailing": good + b"\x00",
        "magic": b"\x01\x02" + good[2:],
        "typecode": good[:2] + b"\x42" + good[3:],
        "header": good[:6],
        "empty": b"",
    }
    messages = {"truncated": "truncated", "trailing": "unexpected bytes",
                "magic": "not an IDX file", "typecode": "type code",
                "header": "truncated IDX header", "empty": "not an IDX file"}
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ValueError, match=messages[name]):
            load_idx(path)
    path = tmp_path / "corrupt.gz"
    path.write_bytes(gzip.compress(good)[:-8])
    with pytest.raises(ValueError, match="gzip"):
        load_idx(path)


def _write_fake_fashion(folder, n_train=6, n_test=4, compress=True):
    rng = np.random.default_rng(0)
    files = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    for name, values in files.items():
        raw = _idx_bytes(values.astype(np.uint8))
        if compress:
            (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return files


def test_load_fashion_mnist_from_data_home_and_env(tmp_path, monkeypatch):
    files = _write_fake_fashion(tmp_path)
    data = load_fashion_mnist(data_home=tmp_path)
    assert data.data.shape == (6, 784) and data.data.dtype == np.float32
    assert data.images.shape == (6, 28, 28)
    np.testing.assert_allclose(data.images * 255, files["train-images-idx3-ubyte"], atol=1e-4)
    np.testing.assert_array_equal(data.target, files["train-labels-idx1-ubyte"])
    assert data.data_test.shape == (4, 784) and len(data.target_names) == 10
    env_dir = tmp_path / "env" / "fashion-mnist"
    env_dir.mkdir(parents=True)
    _write_fake_fashion(env_dir, n_train=3, n_test=2, compress=False)
    monkeypatch.setenv("PYCONVNET_DATA", str(tmp_path / "env"))
    X_train, X_test, y_train, y_test = load_fashion_mnist(return_X_y=True)
    # images, as the estimators read them; the Bunch's rows with their shape
    assert X_train.shape == (3, 28, 28) and X_test.shape == (2, 28, 28)
    np.testing.assert_array_equal(X_train.reshape(3, -1), load_fashion_mnist().data)
    assert load_fashion_mnist().image_shape == (28, 28)


def test_load_fashion_mnist_missing_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PYCONVNET_DATA", str(tmp_path))
    import pyconvnet.datasets as ds
    monkeypatch.setattr(ds, "_SYSTEM_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(data_home=tmp_path)
