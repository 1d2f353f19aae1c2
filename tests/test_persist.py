import io
import pickle
import warnings
import zipfile

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

import pyconvnet
from pyconvnet import ConvNetClassifier


@pytest.fixture(scope="module")
def fitted():
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    labels = np.array(["zero", "one", "two", "three", "four", "five", "six",
                       "seven", "eight", "nine"])[y]
    model = ConvNetClassifier(conv_layers=((4, 3), (6, (2, 3), 1)), pooling="l2",
                              hidden_layer_sizes=(12, 8), dropout=0.1, max_iter=3,
                              learning_rate_init=0.01, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X[:400], labels[:400])
    return model, X


def test_save_load_predicts_bit_identically(fitted, tmp_path):
    model, X = fitted
    path = tmp_path / "model.npz"
    pyconvnet.save(model, path)
    loaded = pyconvnet.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.get_params() == model.get_params()
    assert loaded.loss_curve_ == model.loss_curve_ and loaded.n_iter_ == model.n_iter_
    assert loaded.layers_ == model.layers_
    # the archive is plain arrays: numpy reads it with pickle disabled
    with np.load(path, allow_pickle=False) as archive:
        assert "param_0" in archive.files


def test_loaded_model_keeps_training(fitted, tmp_path):
    model, X = fitted
    pyconvnet.save(model, tmp_path / "m.npz")
    loaded = pyconvnet.load(tmp_path / "m.npz")
    loaded.partial_fit(X[:50], model.predict(X[:50]))
    assert loaded.n_iter_ == 1
    assert loaded.loss_curve_ == model.loss_curve_ + loaded.loss_curve_[-1:]
    assert loaded.t_ == model.t_ + 50


def _rewrite(path, out, change):
    """Copy the npz at path to out, letting change(name, bytes) edit members."""
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            data = change(name, src.read(name))
            if data is not None:
                dst.writestr(name, data)


def test_tampered_and_truncated_files_raise(fitted, tmp_path):
    model, _ = fitted
    path = tmp_path / "model.npz"
    pyconvnet.save(model, path)
    raw = path.read_bytes()

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="model file"):
        pyconvnet.load(truncated)

    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="model file"):
        pyconvnet.load(garbage)

    def swap_shape(name, data):
        if name == "param_0.npy":
            buf = io.BytesIO()
            np.save(buf, np.zeros((3, 1, 3, 3), dtype=np.float32))
            return buf.getvalue()
        return data

    for change, match in [
        (swap_shape, "weight array 0"),
        (lambda n, d: None if n == "param_1.npy" else d, "weight arrays|weight array 1"),
        # Hyperparameters that describe another network than the stored one.
        (lambda n, d: d.replace(b'"hidden_layer_sizes": [12, 8]',
                                b'"hidden_layer_sizes": [13, 8]')
         if n == "__meta__.npy" else d, "network disagrees"),
        # A stored network that its hyperparameters do not build.
        (lambda n, d: d.replace(b'"n_out": 12', b'"n_out": 13')
         if n == "__meta__.npy" else d, "network disagrees"),
        (lambda n, d: d.replace(b'"kind": "dense"', b'"kind": "dens3"', 1)
         if n == "__meta__.npy" else d, "not a network spec"),
        (lambda n, d: d.replace(b'"ConvNetClassifier"', b'"ConvNetRegressors"')
         if n == "__meta__.npy" else d, "unknown estimator 'ConvNetRegressors'"),
        # A classifier's file that says it holds a regressor.
        (lambda n, d: d.replace(b'"ConvNetClassifier"', b'"ConvNetRegressor" ')
         if n == "__meta__.npy" else d, "label_smoothing.* not ConvNetRegressor's"),
        (lambda n, d: d.replace(b'"format_version": 2', b'"format_version": 3')
         if n == "__meta__.npy" else d, "unsupported model format version 3"),
        (lambda n, d: d.replace(b"pyconvnet-model", b"pyconvnet-xxxxx")
         if n == "__meta__.npy" else d, "not a pyconvnet model"),
        (lambda n, d: None if n == "__meta__.npy" else d, "no metadata"),
    ]:
        bad = tmp_path / "bad.npz"
        _rewrite(path, bad, change)
        with pytest.raises(ValueError, match=match):
            pyconvnet.load(bad)

    # an object array (which would need pickle) is refused, not unpickled
    def pickled(name, data):
        if name == "classes.npy":
            buf = io.BytesIO()
            np.save(buf, np.array([print, print], dtype=object), allow_pickle=True)
            return buf.getvalue()
        return data

    bad = tmp_path / "pickled.npz"
    _rewrite(path, bad, pickled)
    with pytest.raises(ValueError):
        pyconvnet.load(bad)


def test_save_rejects_unfitted_and_wrong_objects(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        pyconvnet.save(ConvNetClassifier(), tmp_path / "x.npz")
    with pytest.raises(TypeError):
        pyconvnet.save(object(), tmp_path / "x.npz")


def test_pickle_from_another_version_warns(fitted):
    model, X = fitted
    state = pickle.dumps(model)
    restored = pickle.loads(state)
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))
    tampered = state.replace(pyconvnet.__version__.encode(), b"0.0.9")
    with pytest.warns(UserWarning, match="pyconvnet 0.0.9"):
        pickle.loads(tampered)


def test_pickle_from_before_a_hyperparameter_existed_takes_its_default(fitted):
    model, X = fitted
    state = model.__getstate__()
    del state["label_smoothing"]        # a pickle from before it was added
    restored = ConvNetClassifier.__new__(ConvNetClassifier)
    restored.__setstate__(state)
    assert restored.get_params() == model.get_params()
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))


def _round_trips(model, tmp_path):
    import joblib

    yield "pickle", pickle.loads(pickle.dumps(model))
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    yield "joblib", joblib.load(path)
    path = tmp_path / "model.npz"
    pyconvnet.save(model, path)
    yield "save/load", pyconvnet.load(path)


@pytest.mark.parametrize("how", ["pickle", "joblib", "save/load"])
@pytest.mark.parametrize("warm", ["partial_fit", "warm_start"])
def test_training_after_a_round_trip_changes_what_predicts(fitted, tmp_path,
                                                           how, warm):
    """One owner per parameter: after any round trip, training moves the
    weights that predict, and coefs_ / intercepts_ follow them."""
    model, X = fitted
    loaded = dict(_round_trips(model, tmp_path))[how]
    before = loaded.predict_proba(X[:50])
    coef_before = [c.copy() for c in loaded.coefs_]
    y = model.classes_[np.arange(100) % len(model.classes_)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if warm == "partial_fit":
            loaded.partial_fit(X[:100], y)
        else:
            loaded.set_params(warm_start=True, max_iter=1).fit(X[:100], y)
    after = loaded.predict_proba(X[:50])
    assert np.abs(after - before).max() > 1e-6
    net = loaded._network
    for coef, intercept, layer in zip(loaded.coefs_, loaded.intercepts_,
                                      [l for l in net.layers if l.params]):
        assert np.shares_memory(coef, net.flat_params)
        assert np.shares_memory(intercept, net.flat_params)
        assert coef is layer.weight and intercept is layer.bias
    assert any(np.abs(c - b).max() > 0 for c, b in zip(loaded.coefs_, coef_before))
    # the original model is untouched by training its copy
    np.testing.assert_array_equal(model.predict_proba(X[:50]),
                                  fitted[0].predict_proba(X[:50]))


# --------------------------------------------------------------------------
# Hostile files: every one a ValueError, within 1 s and 50 MB, whatever it
# declares.
# --------------------------------------------------------------------------
def _load_bounded(path):
    """Load path, expecting ValueError; return (seconds, peak MB allocated)."""
    import time
    import tracemalloc

    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ValueError, match="model file"):
            pyconvnet.load(path)
    finally:
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return elapsed, peak


def _meta_of(path):
    import json

    with zipfile.ZipFile(path) as z, z.open("__meta__.npy") as f:
        return json.loads(np.lib.format.read_array(f).tobytes())


def _with_meta(path, out, meta):
    """Copy path to out with new metadata: a dict, or JSON text."""
    import json

    text = meta if isinstance(meta, str) else json.dumps(meta)

    def change(name, data):
        if name == "__meta__.npy":
            buf = io.BytesIO()
            np.save(buf, np.frombuffer(text.encode(), dtype=np.uint8))
            return buf.getvalue()
        return data

    _rewrite(path, out, change)


def _npy_header_claiming(shape, dtype="<f4"):
    """A .npy header declaring ``shape``, with no data after it."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(   # the magic string included
        buf, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


def _hostile_files(path, tmp_path):
    meta = _meta_of(path)
    out = []

    def meta_case(label, edit):
        m = json.loads(json.dumps(meta))
        edit(m)
        p = tmp_path / f"{label}.npz"
        _with_meta(path, p, m)
        out.append((label, p))

    import json

    meta_case("huge-dense", lambda m: m["params"].update(hidden_layer_sizes=[2000000]))
    meta_case("giant-dense", lambda m: m["params"].update(hidden_layer_sizes=[10**9]))
    meta_case("huge-image", lambda m: m.update(image_shape=[1, 2**30, 2**30]))
    meta_case("short-image", lambda m: m.update(image_shape=[1, 8]))
    for depth in (500, 5000):  # below and beyond the interpreter's recursion limit
        m = json.loads(json.dumps(meta))
        m["params"]["conv_layers"] = "NESTED"
        text = json.dumps(m).replace('"NESTED"', "[" * depth + "[4, 3]" + "]" * depth)
        p = tmp_path / f"nested-{depth}.npz"
        _with_meta(path, p, text)
        out.append((f"nested-{depth}", p))
    meta_case("curve-string", lambda m: m["fitted"].update(loss_curve_="x"))
    meta_case("huge-filters", lambda m: m["params"].update(conv_layers=[[10**9, 3]]))
    meta_case("no-fitted", lambda m: m.pop("fitted"))

    npy = tmp_path / "plain.npy"
    np.save(npy, np.zeros(10))
    out.append(("npy-not-npz", npy))

    # an extra member: 300 MB of zeros, deflated to a few hundred KB
    bomb = tmp_path / "bomb.npz"
    _rewrite(path, bomb, lambda n, d: d)
    with zipfile.ZipFile(bomb, "a", compression=zipfile.ZIP_DEFLATED) as z:
        with z.open("extra.npy", "w", force_zip64=True) as f:
            zeros = bytes(2**24)
            for _ in range(18):
                f.write(zeros)
    out.append(("zip-bomb", bomb))

    # a member whose header claims a huge array
    for label, shape in (("header-huge", (2**40,)), ("header-shape", (3, 1, 3, 3))):
        p = tmp_path / f"{label}.npz"
        _rewrite(path, p, lambda n, d, s=shape: _npy_header_claiming(s)
                 if n == "param_0.npy" else d)
        out.append((label, p))
    return out


def test_hostile_model_files_raise_quickly_in_little_memory(fitted, tmp_path):
    model, _ = fitted
    path = tmp_path / "model.npz"
    pyconvnet.save(model, path)
    for label, hostile in _hostile_files(path, tmp_path):
        seconds, peak_mb = _load_bounded(hostile)
        assert seconds < 1.0, (label, seconds)
        assert peak_mb < 50, (label, peak_mb)


def test_load_keeps_random_state_driving_training(fitted, tmp_path):
    """load builds its fitted state the way fit does: the saved random_state
    (not a fixed seed) drives dropout and shuffling afterwards."""
    import copy

    model, X = fitted
    y = model.predict(X[:100])
    runs = []
    for seed in (0, 0, 1):
        other = copy.deepcopy(model).set_params(random_state=seed)
        pyconvnet.save(other, tmp_path / f"m{seed}.npz")
        loaded = pyconvnet.load(tmp_path / f"m{seed}.npz")
        drop = [l for l in loaded._network.layers if l.kind == "dropout"]
        assert drop and all(l.rng is loaded._random_state for l in drop)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded.partial_fit(X[:100], y)
        runs.append(loaded)
    np.testing.assert_array_equal(runs[0].coefs_[0], runs[1].coefs_[0])
    assert not np.array_equal(runs[0].coefs_[0], runs[2].coefs_[0])


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats()
    | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_model_files_load_or_raise_value_error(fitted, tmp_path, data):
    """Mutated files (bytes, JSON fields, member headers) either load into a
    model that predicts (or, with a thread count this machine refuses, says
    so with a ValueError), or raise ValueError — nothing else."""
    import time

    model, X = fitted
    path = tmp_path / "model.npz"
    if not path.exists():
        pyconvnet.save(model, path)
    raw = bytearray(path.read_bytes())
    kind = data.draw(st.sampled_from(["bytes", "json", "header"]))
    bad = tmp_path / "fuzzed.npz"
    if kind == "bytes":
        for _ in range(data.draw(st.integers(1, 8))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        bad.write_bytes(bytes(raw))
    elif kind == "json":
        meta = _meta_of(path)
        section = data.draw(st.sampled_from(["params", "fitted", "top"]))
        target = meta if section == "top" else meta[section]
        key = data.draw(st.sampled_from(sorted(target)))
        target[key] = data.draw(_json_values)
        _with_meta(path, bad, meta)
    else:
        member = data.draw(st.sampled_from(["param_0.npy", "param_3.npy", "classes.npy"]))
        shape = data.draw(st.lists(st.integers(0, 2**40), max_size=4))
        dtype = data.draw(st.sampled_from(["<f4", "<f8", "|u1", "|O", "<i8"]))
        _rewrite(path, bad, lambda n, d: _npy_header_claiming(shape, dtype)
                 if n == member else d)
    start = time.perf_counter()
    try:
        loaded = pyconvnet.load(bad)
    except ValueError:
        loaded = None
    assert time.perf_counter() - start < 1.0
    if loaded is not None:
        try:
            proba = loaded.predict_proba(X[:5])
        except ValueError as exc:
            assert "n_threads" in str(exc)
        else:
            assert proba.shape == (5, len(loaded.classes_))


def test_loaded_model_with_too_many_threads_raises_on_use(fitted, tmp_path):
    """A file asking for more threads than this machine allows still loads;
    using it is a clean ValueError (it crashed inside OpenMP), and fixing
    n_threads makes it usable."""
    model, X = fitted
    pyconvnet.save(model, tmp_path / "m.npz")
    meta = _meta_of(tmp_path / "m.npz")
    for n_threads in (100000, 2**31):
        meta["params"]["n_threads"] = n_threads
        _with_meta(tmp_path / "m.npz", tmp_path / "t.npz", meta)
        loaded = pyconvnet.load(tmp_path / "t.npz")
        with pytest.raises(ValueError, match="n_threads"):
            loaded.predict(X[:5])
        with pytest.raises(ValueError, match="n_threads"):
            loaded.partial_fit(X[:5], model.predict(X[:5]))
        loaded.set_params(n_threads=None)
        np.testing.assert_array_equal(loaded.predict_proba(X[:5]),
                                      model.predict_proba(X[:5]))


def test_every_corrupted_byte_and_compression_field_gives_value_error(fitted, tmp_path):
    """Deterministic sweep: each zip header's compression method set to other
    codecs, and single bytes changed across the file, give a loaded model or
    a ValueError — never another exception (NotImplementedError, LZMAError
    and TokenError escaped before)."""
    import struct

    model, X = fitted
    path = tmp_path / "model.npz"
    pyconvnet.save(model, path)
    raw = path.read_bytes()
    variants = []
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        start = raw.find(signature)
        while start >= 0:
            for method in (8, 12, 14, 99):
                b = bytearray(raw)
                b[start + offset:start + offset + 2] = struct.pack("<H", method)
                variants.append(bytes(b))
            start = raw.find(signature, start + 1)
    rng = np.random.default_rng(0)
    for _ in range(400):
        b = bytearray(raw)
        b[rng.integers(len(b))] = rng.integers(256)
        variants.append(bytes(b))
    bad = tmp_path / "bad.npz"
    for data in variants:
        bad.write_bytes(data)
        try:
            loaded = pyconvnet.load(bad)
        except ValueError:
            continue
        assert loaded.predict_proba(X[:3]).shape == (3, len(loaded.classes_))


def test_declared_weights_without_their_data_are_refused_before_allocating(fitted,
                                                                           tmp_path):
    """A file whose metadata and headers agree on a 2 GB dense layer, but
    which holds none of its bytes: refused from the zip directory's sizes,
    not after building a 2 GB network."""
    model, _ = fitted
    path = tmp_path / "model.npz"
    pyconvnet.save(model, path)
    meta = _meta_of(path)
    hidden = [2**29 // 8]
    meta["params"]["hidden_layer_sizes"] = hidden
    meta["params"]["dropout"] = 0.0
    meta["optimizer"] = None
    spec = model.set_params(hidden_layer_sizes=tuple(hidden), dropout=0.0).network_spec(
        model.image_shape_, len(model.classes_), np.float32, "softmax")
    model.set_params(hidden_layer_sizes=(12, 8), dropout=0.1)
    shapes = spec.param_shapes
    meta["n_params"] = len(shapes)
    meta["network"] = spec.to_dict()
    staged = tmp_path / "staged.npz"
    _with_meta(path, staged, meta)
    hostile = tmp_path / "hostile.npz"
    with zipfile.ZipFile(staged) as src, zipfile.ZipFile(hostile, "w") as dst:
        dst.writestr("__meta__.npy", src.read("__meta__.npy"))
        dst.writestr("classes.npy", src.read("classes.npy"))
        for i, shape in enumerate(shapes):
            dst.writestr(f"param_{i}.npy",
                         _npy_header_claiming(tuple(int(v) for v in shape)))
    assert np.prod(shapes[-4]) * 4 >= 2**30          # the dense layer: >= 1 GiB
    seconds, peak_mb = _load_bounded(hostile)
    assert seconds < 1.0 and peak_mb < 50, (seconds, peak_mb)


@pytest.mark.parametrize("conv_layers, hidden", [
    (((4, 3), (4, 3), "pool", (6, 3), "pool"), (12,)),
    (((4, 3), (4, 3), "pool", (6, 3), "gap"), ()),       # all-convolutional
])
def test_block_network_round_trips(tmp_path, conv_layers, hidden):
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    model = ConvNetClassifier(conv_layers=conv_layers,
                              batch_norm=True, hidden_layer_sizes=hidden, max_iter=2,
                              random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X[:300], y[:300])
    pyconvnet.save(model, tmp_path / "blocks.npz")
    loaded = pyconvnet.load(tmp_path / "blocks.npz")
    assert loaded.get_params()["conv_layers"] == conv_layers
    assert loaded.layers_ == model.layers_
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    pickled = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(pickled.predict_proba(X), model.predict_proba(X))


def _regressor(**params):
    from pyconvnet import ConvNetRegressor

    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    # two targets in different units: ink in the left and right halves
    Y = np.stack([X.reshape(-1, 8, 8)[:, :, :4].sum(axis=(1, 2)) * 100,
                  X.reshape(-1, 8, 8)[:, :, 4:].sum(axis=(1, 2)) - 5], axis=1)
    model = ConvNetRegressor(conv_layers=((4, 3),), hidden_layer_sizes=(12,),
                             max_iter=3, random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X[:300], Y[:300])
    return model, X, Y


@pytest.mark.parametrize("params", [{}, {"batch_norm": True, "normalize_y": False}])
def test_regressor_round_trips_and_says_what_it_is(tmp_path, params):
    from pyconvnet import ConvNetClassifier, ConvNetRegressor

    model, X, Y = _regressor(**params)
    path = tmp_path / "regressor.npz"
    pyconvnet.save(model, path)
    for loaded in (pyconvnet.load(path), pyconvnet.load(path, estimator=ConvNetRegressor)):
        assert type(loaded) is ConvNetRegressor
        np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
        np.testing.assert_array_equal(loaded.y_scale_, model.y_scale_)
        assert loaded.get_params() == model.get_params() and loaded.n_outputs_ == 2
    # training continues as the saved model's would (in the same order: the
    # loaded model's random_state starts afresh)
    again = pyconvnet.load(path)
    for m in (model, again):
        m.set_params(shuffle=False).partial_fit(X[300:400], Y[300:400])
    np.testing.assert_array_equal(again.predict(X), model.predict(X))
    with pytest.raises(ValueError, match="holds a ConvNetRegressor, not a ConvNetClassifier"):
        pyconvnet.load(path, estimator=ConvNetClassifier)
    with pytest.raises(TypeError, match="estimator must be"):
        pyconvnet.load(path, estimator=int)

    def bad_scale(name, data):
        if name == "y_scale.npy":
            buf = io.BytesIO()
            np.save(buf, np.array([1.0, -1.0]))
            return buf.getvalue()
        return data

    for change, match in [
        (bad_scale, "positive scales"),
        (lambda n, d: None if n == "y_mean.npy" else d, "no y_mean"),
    ]:
        bad = tmp_path / "bad.npz"
        _rewrite(path, bad, change)
        with pytest.raises(ValueError, match=match):
            pyconvnet.load(bad)


@pytest.fixture(scope="module")
def fitted_regressor():
    return _regressor()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_regressor_files_load_or_raise_value_error(fitted_regressor, tmp_path, data):
    """The same for a regressor's file, whose targets' members (the mean and
    scale) are fuzzed too."""
    model, X, _ = fitted_regressor
    path = tmp_path / "regressor.npz"
    if not path.exists():
        pyconvnet.save(model, path)
    bad = tmp_path / "fuzzed.npz"
    kind = data.draw(st.sampled_from(["json", "header", "values"]))
    if kind == "json":
        meta = _meta_of(path)
        section = data.draw(st.sampled_from(["params", "top"]))
        target = meta if section == "top" else meta[section]
        target[data.draw(st.sampled_from(sorted(target)))] = data.draw(_json_values)
        _with_meta(path, bad, meta)
    else:
        member = data.draw(st.sampled_from(["y_mean.npy", "y_scale.npy"]))
        if kind == "header":
            shape = data.draw(st.lists(st.integers(0, 2**40), max_size=3))
            dtype = data.draw(st.sampled_from(["<f4", "<f8", "|O", "<i8"]))
            content = _npy_header_claiming(shape, dtype)
        else:
            buf = io.BytesIO()
            np.save(buf, np.array(data.draw(st.lists(
                st.floats(allow_nan=True, allow_infinity=True), max_size=3))))
            content = buf.getvalue()
        _rewrite(path, bad, lambda n, d: content if n == member else d)
    try:
        loaded = pyconvnet.load(bad)
    except ValueError:
        return
    assert loaded.predict(X[:5]).shape == (5, 2)
    assert np.isfinite(loaded.y_mean_).all() and (loaded.y_scale_ > 0).all()


def test_adamw_training_continues_after_a_round_trip(tmp_path):
    """The decoupled weight decay and its weights (AdamW's state) come back
    from the file: the next partial_fit equals the saved model's."""
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    model = ConvNetClassifier(conv_layers=((4, 3),), solver="adamw", alpha=0.1,
                              max_iter=2, shuffle=False, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X[:300], y[:300])
    pyconvnet.save(model, tmp_path / "adamw.npz")
    loaded = pyconvnet.load(tmp_path / "adamw.npz")
    assert loaded.training_state()["optimizer"]["settings"]["alpha"] == 0.1
    for m in (model, loaded):
        m.partial_fit(X[300:400], y[300:400])
    np.testing.assert_array_equal(loaded.network_.flat_params, model.network_.flat_params)
