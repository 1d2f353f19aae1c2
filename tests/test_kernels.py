"""The kernels package: builds per instruction set and their dispatch, the
shared activation codes."""
import os
import subprocess
import sys

import numpy as np
import pytest

import pyconvnet._kernels as kernels
from pyconvnet import _dispatch, ops
from pyconvnet._kernels import runtime


@pytest.fixture
def restore_isa():
    before = kernels.current_isa()
    yield
    kernels.set_isa(before)


def test_the_isa_asked_for_by_the_environment_runs():
    """CI runs the kernel tests once per instruction set, naming it in
    PYCONVNET_ISA and PYCONVNET_EXPECT_ISA: the one asked for must be the
    one that runs."""
    expected = os.environ.get("PYCONVNET_EXPECT_ISA")
    if expected:
        assert kernels.current_isa() == expected
    else:
        assert kernels.current_isa() == kernels.default_isa()
    # The default is the best available build that is not opt-in.
    assert kernels.default_isa() == [isa for isa in kernels.available_isas()
                                     if isa not in kernels.OPT_IN][-1]


def test_cpu_instruction_sets_are_ordered_and_built_ones_available():
    found = runtime.cpu_instruction_sets()
    assert found[0] == "generic"
    assert list(found) == [isa for isa in kernels.ISAS if isa in found]
    available = kernels.available_isas()
    assert "generic" in available and set(available) <= set(found)


def test_a_wheel_for_x86_64_holds_every_instruction_set():
    import platform
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("instruction-set builds are made on x86-64 only")
    import importlib.util
    for base in kernels.ISA_MODULES:
        for isa in kernels.ISAS:
            assert importlib.util.find_spec(f"pyconvnet._kernels.{base}_{isa}"), (base, isa)


def test_set_isa_refuses_an_unknown_or_unavailable_one(restore_isa):
    with pytest.raises(ValueError, match="isa must be one of"):
        kernels.set_isa("sse9")
    missing = [isa for isa in kernels.ISAS if isa not in kernels.available_isas()]
    for isa in missing:
        with pytest.raises(ValueError, match="cannot run"):
            kernels.set_isa(isa)
    assert kernels.set_isa(None) == kernels.default_isa()


def test_an_unusable_isa_in_the_environment_warns_and_falls_back(tmp_path):
    code = ("import warnings, pyconvnet._kernels as k; "
            "print(k.current_isa(), k.default_isa())")
    env = dict(os.environ, PYCONVNET_ISA="sse9")
    # From another folder: the installed package, never a source tree.
    out = subprocess.run([sys.executable, "-W", "always", "-c", code], env=env,
                         capture_output=True, text=True, check=True,
                         cwd=tmp_path)
    current, best = out.stdout.split()
    assert current == best
    assert "PYCONVNET_ISA='sse9' ignored" in out.stderr


GEOMETRIES = [
    # x shape, weight shape, stride, padding
    ((3, 2, 9, 9), (4, 2, 3, 3), (1, 1), (1, 1)),     # padded copy path
    ((3, 3, 11, 7), (5, 3, 5, 3), (2, 1), (2, 0)),    # strided, plain path
    ((2, 4, 30, 30), (3, 4, 5, 5), (1, 1), (2, 2)),   # rows >= 16 (memcpy)
    ((2, 1, 6, 6), (2, 1, 7, 7), (1, 1), (3, 3)),     # kernel > input
    ((2, 3, 5, 5), (2, 3, 1, 1), (1, 1), (0, 0)),     # 1x1: no unfolding
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_every_isa_gives_the_same_bits(geometry, dtype, restore_isa):
    x_shape, w_shape, stride, padding = geometry
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    results = {}
    for isa in kernels.available_isas():
        kernels.set_isa(isa)
        y = ops.conv2d(x, w, b, stride=stride, padding=padding, n_threads=2)
        dy = np.cos(y)
        results[isa] = (y,) + ops.conv2d_grad(dy, x, w, stride=stride,
                                              padding=padding, n_threads=2)
    reference = results["generic"]
    for isa, result in results.items():
        for got, want in zip(result, reference):
            if isa == "avx512" and dtype == np.float32:
                # That build's own float32 products (sgemm.h): another
                # order of the same sums.
                np.testing.assert_allclose(got, want, rtol=1e-5,
                                           atol=1e-5 * np.abs(want).max(),
                                           err_msg=isa)
            else:
                np.testing.assert_array_equal(got, want, err_msg=isa)
    # And right: the generic build against the numpy reference.
    from reference import conv2d as conv2d_ref
    np.testing.assert_allclose(reference[0], conv2d_ref(x, w, b, stride, padding),
                               rtol=1e-4 if dtype == np.float32 else 1e-10,
                               atol=1e-4 if dtype == np.float32 else 1e-10)


def test_activation_codes_are_one_list(capsys):
    from pyconvnet import _activations

    codes = runtime.ACTIVATION_CODES
    assert set(codes) == set(_activations.TABLE)
    assert _activations.code(None) == codes["identity"] == 0
    assert _activations.code("logistic") == codes["sigmoid"]
    assert sorted(set(codes.values())) == [0, 1, 2, 3]
    # every accepted name: the estimators', the command line's
    from pyconvnet import ConvNetClassifier
    from pyconvnet.__main__ import main

    accepted = ConvNetClassifier._parameter_constraints["activation"][0].options
    assert accepted == set(_activations.NAMES) == {"relu", "sigmoid", "logistic",
                                                   "tanh", "identity"}
    for name in _activations.NAMES:
        with pytest.raises(SystemExit) as info:
            main(["--activation", name, "--epochs", "0"])   # refused after parsing
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert "invalid choice" not in err and "--epochs" in err
    # The codes mean what their names say in a fused kernel.
    x = np.linspace(-2, 2, 16, dtype=np.float64).reshape(1, 1, 4, 4)
    w = np.ones((1, 1, 1, 1))
    expected = {"relu": np.maximum(x, 0), "sigmoid": 1 / (1 + np.exp(-x)),
                "tanh": np.tanh(x), "identity": x}
    for name, want in expected.items():
        got = _dispatch.conv_forward(x, w, None, (1, 1), (0, 0), 1, name)[0]
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=name)


# --------------------------------------------------------------------------
# The registry of convolution implementations
# --------------------------------------------------------------------------
from pyconvnet._kernels import registry  # noqa: E402

TOL = {np.float32: dict(rtol=2e-4, atol=2e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}
ACTIVATION_NAMES = [None, "relu", "sigmoid", "tanh"]


def test_the_registry_holds_the_compiled_convolutions_and_the_reference():
    assert set(ops.implementations()) == {"winograd4", "winograd2", "im2col", "naive"}
    assert registry.get("naive").reference
    from pyconvnet._geometry import ConvGeometry

    geometry = ConvGeometry.of_arrays((1, 1, 5, 5), (1, 1, 3, 3), (1, 1), (0, 0))
    # "auto" never picks a reference.
    assert registry.select("auto", geometry, np.float32).name == "im2col"
    assert registry.select("naive", geometry, np.float32).name == "naive"


def _geometry(x_shape, w_shape, stride=(1, 1), padding=(1, 1)):
    from pyconvnet._geometry import ConvGeometry
    return ConvGeometry.of_arrays(x_shape, w_shape, stride, padding)


@pytest.mark.parametrize("x_shape, w_shape, stride, dtype, expected", [
    # the table of registry.py: Winograd from 8 input channels, F(4x4)
    # where its tiles fit the output, im2col for the rest
    ((64, 1, 28, 28), (32, 1, 3, 3), 1, np.float32, "im2col"),
    ((64, 3, 32, 32), (32, 3, 3, 3), 1, np.float32, "im2col"),
    ((64, 32, 14, 14), (64, 32, 3, 3), 1, np.float32, "winograd4"),
    ((64, 32, 6, 6), (64, 32, 3, 3), 1, np.float32, "winograd2"),
    ((64, 32, 14, 14), (64, 32, 3, 3), 2, np.float32, "im2col"),
    ((64, 32, 14, 14), (64, 32, 5, 5), 1, np.float32, "winograd4"),
    ((64, 8, 14, 14), (64, 8, 5, 5), 1, np.float32, "im2col"),
    ((64, 32, 14, 14), (64, 32, 11, 11), 1, np.float32, "im2col"),
    ((64, 32, 14, 14), (64, 32, 5, 5), 1, np.float64, "im2col"),
    ((16, 32, 14, 14), (64, 32, 5, 5), 1, np.float32, "im2col"),
    ((64, 20, 12, 12), (40, 20, 5, 5), 1, np.float32,   # 20 of 32 or of 24 lanes
     "im2col" if kernels.current_isa() == "avx512" else "winograd4"),
    ((4, 32, 14, 14), (64, 32, 3, 3), 1, np.float32, "winograd4"),
    ((64, 32, 14, 14), (64, 32, 3, 3), 1, np.float64, "winograd2"),
    ((64, 8, 14, 14), (64, 8, 3, 3), 1, np.float64, "im2col"),
])
def test_auto_follows_the_measured_table(x_shape, w_shape, stride, dtype,
                                         expected):
    geometry = _geometry(x_shape, w_shape, (stride, stride))
    assert registry.select("auto", geometry, dtype, x_shape[0]).name == expected
    # And it is a choice, not a timing: the same every time.
    assert registry.select(None, geometry, dtype, x_shape[0]).name == expected
    # One image goes to im2col (the transforms cost more than they save).
    assert registry.select(None, geometry, dtype, 1).name == "im2col"


def _implementation_cases(geometries, dtypes=(np.float32, np.float64)):
    """(name, dtype, geometry) for every compiled implementation and every
    geometry it supports."""
    return [(name, dtype, geometry)
            for name in registry.names() if name != "naive"
            for dtype in dtypes for geometry in geometries
            if registry.get(name).supports(_geometry(*geometry), dtype) is None]


@pytest.mark.parametrize("name, dtype, geometry", _implementation_cases(GEOMETRIES))
@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
def test_every_implementation_agrees_with_the_naive_one(name, dtype, geometry,
                                                        activation):
    """Forward (with bias and the fused activation) and every gradient, each
    implementation against the registered reference."""
    x_shape, w_shape, stride, padding = geometry
    rng = np.random.default_rng(1)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = (rng.standard_normal(w_shape) / 3).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    results = {}
    for impl in (name, "naive"):
        y, _, saved = _dispatch.conv_forward(x, w, b, stride, padding, 2, activation,
                                        implementation=impl)
        dy = np.cos(3 * y).astype(dtype)
        grads = _dispatch.conv_backward(dy, x, w, stride, padding, True, 2, activation,
                                   y, saved, implementation=impl)
        results[impl] = (y,) + grads
    for got, want, what in zip(results[name], results["naive"],
                               ("y", "dx", "dweight", "dbias")):
        tol = dict(TOL[dtype])
        if dtype == np.float32:
            # Winograd's float32 error is bounded relative to the result's
            # scale (FLOAT32_ERROR), not value by value.
            tol["atol"] = max(tol["atol"], FLOAT32_ERROR[name] * np.abs(want).max())
        np.testing.assert_allclose(got, want, err_msg=what, **tol)


@pytest.mark.parametrize("name", [n for n in registry.names() if n != "naive"])
@pytest.mark.parametrize("pool", [(2, 2), (3, 2)])
def test_every_implementation_pools_as_the_naive_one(name, pool):
    """The fused max pooling: the same values, the same argmax (the first
    maximum of each window), the same gradients."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 2, 9, 8))
    w = rng.standard_normal((4, 2, 3, 3)) / 3
    b = rng.standard_normal(4)
    results = {}
    for impl in (name, "naive"):
        y, argmax, saved = _dispatch.conv_forward(x, w, b, (1, 1), (1, 1), 2, "relu",
                                             pool=pool, implementation=impl)
        dy = np.sin(5 * y)
        grads = _dispatch.conv_backward(dy, x, w, (1, 1), (1, 1), True, 2, "relu", y,
                                   saved, argmax=argmax, implementation=impl)
        results[impl] = (y, argmax) + grads
    for got, want, what in zip(results[name], results["naive"],
                               ("y", "argmax", "dx", "dweight", "dbias")):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10, err_msg=what)


def test_ops_takes_an_implementation_and_refuses_unknown_ones():
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 2, 6, 6)), rng.standard_normal((3, 2, 3, 3))
    np.testing.assert_allclose(ops.conv2d(x, w, implementation="naive"),
                               ops.conv2d(x, w, implementation="im2col"), rtol=1e-12)
    for bad in ("winograd9", "auto2"):
        with pytest.raises(ValueError, match="unknown convolution implementation"):
            ops.conv2d(x, w, implementation=bad)
    with pytest.raises(TypeError, match="implementation must be a string"):
        ops.conv2d_grad(ops.conv2d(x, w), x, w, implementation=3)


def test_an_unsupported_forced_implementation_is_refused(monkeypatch):
    narrow = registry.ConvImplementation(
        "narrow-test", registry.get("naive").forward, registry.get("naive").backward,
        dtypes=(np.dtype(np.float64),), supports_geometry=lambda g: g.stride == (1, 1))
    monkeypatch.setitem(registry._REGISTRY, "narrow-test", narrow)
    x, w = np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3))
    ops.conv2d(x, w, implementation="narrow-test")
    with pytest.raises(ValueError, match="cannot run this layer.*float64"):
        ops.conv2d(x.astype(np.float32), w.astype(np.float32),
                   implementation="narrow-test")
    with pytest.raises(ValueError, match="cannot run this layer.*geometry"):
        ops.conv2d(x, w, stride=2, implementation="narrow-test")


def test_the_environment_forces_an_implementation_on_a_whole_network(monkeypatch):
    """PYCONVNET_CONV=naive trains a network through the reference: the same
    model as the compiled convolution's, to float rounding."""
    from sklearn.datasets import load_digits

    from pyconvnet import ConvNetClassifier

    calls = []
    naive = registry.get("naive")
    spy = registry.ConvImplementation(
        "naive", lambda *a, **k: calls.append("f") or naive.forward(*a, **k),
        naive.backward, reference=True)
    monkeypatch.setitem(registry._REGISTRY, "naive", spy)
    X, y = load_digits(return_X_y=True)
    X, y = X[:120] / 16, y[:120]
    params = dict(conv_layers=((4, 3),), hidden_layer_sizes=(8,), max_iter=2,
                  random_state=0, dtype="float64", batch_size=40)
    compiled = ConvNetClassifier(**params).fit(X, y)
    assert not calls
    monkeypatch.setenv("PYCONVNET_CONV", "naive")
    reference = ConvNetClassifier(**params).fit(X, y)
    assert calls
    np.testing.assert_allclose(reference.coefs_[0], compiled.coefs_[0], rtol=1e-7,
                               atol=1e-9)
    np.testing.assert_allclose(reference.predict_proba(X), compiled.predict_proba(X),
                               atol=1e-9)
    monkeypatch.setenv("PYCONVNET_CONV", "nonesuch")
    with pytest.raises(ValueError, match="unknown convolution implementation"):
        ConvNetClassifier(**params).fit(X, y)


# --------------------------------------------------------------------------
# Winograd F(2x2, 3x3) and F(4x4, 3x3)
# --------------------------------------------------------------------------
WINOGRAD = ["winograd2", "winograd4"]
WINOGRAD_GEOMETRIES = [
    # x shape, weight shape, stride, padding
    ((3, 9, 9, 9), (4, 9, 5, 5), (1, 1), (2, 2)),       # 5x5: 2x2 pieces
    ((2, 3, 13, 12), (5, 3, 7, 4), (1, 1), (3, 1)),     # 7x4: 3x2 pieces
    ((2, 2, 9, 9), (2, 2, 9, 9), (1, 1), (0, 0)),       # 9x9: one output
    ((2, 16, 5, 6), (8, 16, 2, 2), (1, 1), (0, 0)),     # 2x2: one piece
    ((13, 16, 12, 12), (8, 16, 5, 5), (1, 1), (0, 0)),  # Nielsen's second
    ((1, 1, 3, 3), (2, 1, 3, 3), (1, 1), (0, 0)),       # one output pixel
    ((3, 9, 7, 9), (10, 9, 3, 3), (1, 1), (1, 1)),      # C, F past the lanes
    ((13, 16, 14, 14), (8, 16, 3, 3), (1, 1), (1, 1)),  # a ragged last group
    ((5, 8, 5, 6), (16, 8, 3, 3), (1, 1), (2, 2)),      # wide padding
    ((2, 3, 30, 17), (4, 3, 3, 3), (1, 1), (0, 0)),     # ragged tiles
    ((20, 2, 30, 30), (3, 2, 3, 3), (1, 1), (1, 1)),    # chunks of groups
    ((2, 3, 6, 7), (3, 3, 3, 3), (1, 1), (1, 0)),       # unequal padding
]


def _forward_backward(name, x, w, b, stride, padding, activation, dy):
    y, _, saved = _dispatch.conv_forward(x, w, b, stride, padding, 2, activation,
                                    implementation=name)
    return (y,) + _dispatch.conv_backward(dy, x, w, stride, padding, True, 2,
                                     activation, y, saved, implementation=name)


@pytest.mark.parametrize("name, dtype, geometry, activation",
                         [case + (activation,)
                          for case in _implementation_cases(WINOGRAD_GEOMETRIES)
                          if case[0] in WINOGRAD
                          # float32 without activation: its error is bounded
                          # relative to the pre-activation's scale (a ReLU's
                          # kink would turn a rounding into a whole gradient)
                          for activation in ([None] if case[1] == np.float32
                                             else [None, "relu"])])
def test_winograd_agrees_with_the_naive_one(name, dtype, geometry, activation):
    """Against the reference in float64 (to 1e-10 of the result's scale: the
    naive convolution runs in float64 whatever the input), and in float32
    within the bound of FLOAT32_ERROR below."""
    x_shape, w_shape, stride, padding = geometry
    rng = np.random.default_rng(1)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = (rng.standard_normal(w_shape) / 3).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    # One output gradient for both: the gradients' own error, not the
    # forward pass's propagated through dy.
    y = _dispatch.conv_forward(x, w, b, stride, padding, 1, activation,
                          implementation="naive")[0]
    dy = np.cos(3 * y).astype(dtype)
    got = _forward_backward(name, x, w, b, stride, padding, activation, dy)
    want = _forward_backward("naive", x, w, b, stride, padding, activation, dy)
    bound = 1e-10 if dtype == np.float64 else FLOAT32_ERROR[name]
    for g, r, what in zip(got, want, ("y", "dx", "dweight", "dbias")):
        np.testing.assert_allclose(g, r, rtol=0, atol=bound * np.max(np.abs(r)),
                                   err_msg=what)


# The float32 error of each implementation against the float64 reference,
# relative to the largest value of the result, on unit-normal data: the
# transforms add rounding that a direct sum has not (measured up to: im2col
# 3e-7, F(2x2) 1e-6, F(4x4) 2e-5: each of their outputs sums
# transformed values several times larger than the inputs).
FLOAT32_ERROR = {"im2col": 2e-6, "winograd2": 4e-6, "winograd4": 5e-5}


@pytest.mark.parametrize("name", sorted(FLOAT32_ERROR))
@pytest.mark.parametrize("channels", [16, 64])
def test_float32_error_is_bounded(name, channels):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, channels, 15, 13))
    w = rng.standard_normal((24, channels, 3, 3))
    b = rng.standard_normal(24)
    y = ops.conv2d(x, w, b, padding=1, implementation="naive")
    dy = rng.standard_normal(y.shape)
    want = (y,) + ops.conv2d_grad(dy, x, w, padding=1, implementation="naive")
    f32 = [a.astype(np.float32) for a in (x, w, b, dy)]
    got = (ops.conv2d(*f32[:3], padding=1, implementation=name),) + ops.conv2d_grad(
        f32[3], f32[0], f32[1], padding=1, implementation=name)
    for g, r, what in zip(got, want, ("y", "dx", "dweight", "dbias")):
        error = np.max(np.abs(g - r)) / np.max(np.abs(r))
        assert error < FLOAT32_ERROR[name], (what, error)


@pytest.mark.parametrize("name", WINOGRAD)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel", [3, 5])
def test_winograd_is_identical_for_any_thread_count(name, dtype, kernel,
                                                    restore_isa):
    """The weight gradient sums over fixed chunks of sample groups (never
    over what a thread did): each build gives the same bits for any thread
    count. Every build gives the same bits as the others, but for the
    float32 products of the AVX-512 build (sgemm.h), a few ulps away."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((37, 12, 10, 11)).astype(dtype)
    w = rng.standard_normal((9, 12, kernel, kernel)).astype(dtype)
    b = rng.standard_normal(9).astype(dtype)
    pad = kernel // 2
    dy = np.cos(ops.conv2d(x, w, b, padding=pad)).astype(dtype)
    results = {}
    for isa in kernels.available_isas():
        kernels.set_isa(isa)
        for n_threads in (1, 2, 3):
            y = ops.conv2d(x, w, b, padding=pad, n_threads=n_threads,
                           implementation=name)
            results[isa, n_threads] = (y,) + ops.conv2d_grad(
                dy, x, w, padding=pad, n_threads=n_threads,
                implementation=name)
    for (isa, n_threads), result in results.items():
        own_products = isa == "avx512" and dtype == np.float32
        for got, want in zip(result, results[isa, 1]):
            np.testing.assert_array_equal(got, want)
        for got, want in zip(result, results["generic", 1]):
            if own_products:
                # Both within FLOAT32_ERROR of the exact result.
                np.testing.assert_allclose(
                    got, want, rtol=0,
                    atol=2 * FLOAT32_ERROR[name] * np.abs(want).max())
            else:
                np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", WINOGRAD)
def test_winograd_trains_the_same_network_as_im2col(name, monkeypatch):
    """A network of 3x3 convolutions forced through each implementation
    learns the same model (float64: rounding only)."""
    from sklearn.datasets import load_digits

    from pyconvnet import ConvNetClassifier

    X, y = load_digits(return_X_y=True)
    X, y = X[:150] / 16, y[:150]
    params = dict(conv_layers=((8, 3), (16, 3)), padding="same",
                  hidden_layer_sizes=(16,), max_iter=3, random_state=0,
                  dtype="float64", batch_size=50, batch_norm=True)
    models = {}
    for impl in ("im2col", name):
        monkeypatch.setenv("PYCONVNET_CONV", impl)
        models[impl] = ConvNetClassifier(**params).fit(X, y)
    np.testing.assert_allclose(models[name].predict_proba(X),
                               models["im2col"].predict_proba(X), atol=1e-9)
