"""The kernels package: builds per instruction set and their dispatch, the
shared activation codes."""
import os
import subprocess
import sys

import numpy as np
import pytest

import pyconvnet._kernels as kernels
from pyconvnet import ops
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
        assert kernels.current_isa() == kernels.available_isas()[-1]


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
    for isa in kernels.ISAS:
        assert importlib.util.find_spec(f"pyconvnet._kernels.unfold_{isa}"), isa


def test_set_isa_refuses_an_unknown_or_unavailable_one(restore_isa):
    with pytest.raises(ValueError, match="isa must be one of"):
        kernels.set_isa("sse9")
    missing = [isa for isa in kernels.ISAS if isa not in kernels.available_isas()]
    for isa in missing:
        with pytest.raises(ValueError, match="cannot run"):
            kernels.set_isa(isa)
    assert kernels.set_isa(None) == kernels.available_isas()[-1]


def test_an_unusable_isa_in_the_environment_warns_and_falls_back(tmp_path):
    code = ("import warnings, pyconvnet._kernels as k; "
            "print(k.current_isa(), k.available_isas()[-1])")
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
            np.testing.assert_array_equal(got, want, err_msg=isa)
    # And right: the generic build against the numpy reference.
    from reference import conv2d as conv2d_ref
    np.testing.assert_allclose(reference[0], conv2d_ref(x, w, b, stride, padding),
                               rtol=1e-4 if dtype == np.float32 else 1e-10,
                               atol=1e-4 if dtype == np.float32 else 1e-10)


def test_activation_codes_are_one_list():
    codes = runtime.ACTIVATIONS
    assert codes[None] == codes["identity"] == 0
    assert codes["sigmoid"] == codes["logistic"]
    assert sorted(set(codes.values())) == [0, 1, 2, 3]
    # The codes mean what their names say in a fused kernel.
    x = np.linspace(-2, 2, 16, dtype=np.float64).reshape(1, 1, 4, 4)
    w = np.ones((1, 1, 1, 1))
    expected = {"relu": np.maximum(x, 0), "sigmoid": 1 / (1 + np.exp(-x)),
                "tanh": np.tanh(x), "identity": x}
    for name, want in expected.items():
        got = ops._conv_forward(x, w, None, (1, 1), (0, 0), 1, name)
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=name)
