"""Property-based tests: random shapes, strides, paddings, windows, dtypes and
memory layouts. Valid input matches the NumPy reference; invalid input raises
ValueError or TypeError — never a crash, a hang or a wrong answer."""
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyconvnet import ConvNetClassifier, ops

import reference as ref

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
TOL = {np.float32: dict(rtol=2e-4, atol=2e-4), np.float64: dict(rtol=1e-9, atol=1e-9)}


def _layout(a, kind):
    """The same values in another memory layout."""
    if kind == "fortran":
        return np.asfortranarray(a)
    if kind == "strided":
        big = np.zeros((a.shape[0] * 2 + 1,) + a.shape[1:], dtype=a.dtype)
        big[1::2] = a
        return big[1::2]
    if kind == "readonly":
        a = a.copy()
        a.setflags(write=False)
    return a


layouts = st.sampled_from(["c", "fortran", "strided", "readonly"])
dtypes = st.sampled_from([np.float32, np.float64])


@st.composite
def conv_cases(draw):
    n = draw(st.integers(0, 3))
    c = draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    kh = draw(st.integers(1, h + 2 * ph))
    kw = draw(st.integers(1, w + 2 * pw))
    f = draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return (n, c, h, w), (f, c, kh, kw), stride, (ph, pw)


@SETTINGS
@given(conv_cases(), dtypes, layouts, st.integers(0, 2**31 - 1))
def test_conv_matches_reference(case, dtype, layout, seed):
    xs, ws, stride, padding = case
    rng = np.random.default_rng(seed)
    x = _layout(rng.standard_normal(xs).astype(dtype), layout)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    y = ops.conv2d(x, w, b, stride=stride, padding=padding)
    np.testing.assert_allclose(y, ref.conv2d(x, w, b, stride, padding), **TOL[dtype])
    dy = rng.standard_normal(y.shape).astype(dtype)
    got = ops.conv2d_grad(_layout(dy, layout), x, w, stride=stride, padding=padding)
    for g, r in zip(got, ref.conv2d_grad(dy, x, w, stride, padding)):
        np.testing.assert_allclose(g, r, **TOL[dtype])


@st.composite
def pool_cases(draw):
    shape = (draw(st.integers(0, 3)), draw(st.integers(1, 3)),
             draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    size = (draw(st.integers(1, shape[2])), draw(st.integers(1, shape[3])))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    return shape, size, stride


@SETTINGS
@given(pool_cases(), st.sampled_from(ops.POOL_KINDS), dtypes, layouts,
       st.integers(0, 2**31 - 1))
def test_pool_matches_reference(case, kind, dtype, layout, seed):
    shape, size, stride = case
    rng = np.random.default_rng(seed)
    x = _layout(rng.standard_normal(shape).astype(dtype), layout)
    y = ops.pool2d(x, size, stride=stride, kind=kind)
    np.testing.assert_allclose(y, ref.pool2d(x, size, stride, kind), **TOL[dtype])
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = ops.pool2d_grad(dy, x, size, stride=stride, kind=kind)
    np.testing.assert_allclose(dx, ref.pool2d_grad(dy, x, size, stride, kind), **TOL[dtype])


@SETTINGS
@given(st.lists(st.integers(-2, 12), min_size=0, max_size=6),
       st.lists(st.integers(-2, 12), min_size=0, max_size=6),
       st.one_of(st.integers(-2, 4), st.tuples(st.integers(-2, 4), st.integers(-2, 4))),
       st.one_of(st.integers(-2, 3), st.tuples(st.integers(-2, 3), st.integers(-2, 3))))
def test_conv_any_shapes_never_crash(xs, ws, stride, padding):
    """Arbitrary (mostly invalid) shapes: a result or ValueError/TypeError."""
    try:
        x = np.ones([max(d, 0) for d in xs])
        w = np.ones([max(d, 0) for d in ws])
    except ValueError:
        return
    try:
        y = ops.conv2d(x, w, stride=stride, padding=padding)
    except (ValueError, TypeError):
        return
    np.testing.assert_allclose(y, ref.conv2d(x, w, None, stride, padding), rtol=1e-9)


@SETTINGS
@given(st.lists(st.integers(0, 10), min_size=0, max_size=6),
       st.one_of(st.integers(-1, 5), st.tuples(st.integers(-1, 5), st.integers(-1, 5))),
       st.one_of(st.none(), st.integers(-1, 4)),
       st.sampled_from(["max", "l2", "avg", "min", 3]))
def test_pool_any_shapes_never_crash(xs, size, stride, kind):
    x = np.ones(xs)
    try:
        y = ops.pool2d(x, size, stride=stride, kind=kind)
    except (ValueError, TypeError):
        return
    np.testing.assert_allclose(y, ref.pool2d(x, size, stride, kind), rtol=1e-9)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2, 25), st.integers(1, 30), st.integers(2, 4),
       st.sampled_from([None, "max", "l2", "avg"]), st.integers(0, 1000))
def test_estimator_on_random_small_data(n_samples, n_features, n_classes, pooling, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features))
    y = np.arange(n_samples) % n_classes
    model = ConvNetClassifier(conv_layers=((3, 5),), hidden_layer_sizes=(4,),
                              pooling=pooling, max_iter=2, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    proba = model.predict_proba(X)
    assert proba.shape == (n_samples, min(n_samples, n_classes))
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)
    with pytest.raises(ValueError):
        model.predict(X[:, :-1] if n_features > 1 else np.ones((2, 2)))


# --------------------------------------------------------------------------
# Sizes near the C int limits and allocations larger than the machine: run in
# a child interpreter, which must answer every case with a clean exception (or
# a correct result) and exit normally — a crash would kill the child, not the
# test run.
# --------------------------------------------------------------------------
_CHILD = r"""
import json, sys, warnings
# A legitimate but enormous request (a 17 GB im2col workspace is within the
# kernels' limits on a machine with the RAM for it) would only be slow here:
# capping the child's address space turns it into a quick MemoryError.
try:
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, resource.RLIM_INFINITY))
except (ImportError, ValueError, OSError):
    pass
import numpy as np
from pyconvnet import ConvNetClassifier, ops
warnings.simplefilter("ignore")
out = []
for kind, args in json.loads(sys.stdin.read()):
    try:
        if kind == "conv":
            xs, ws, stride, padding, n_threads, grad = args
            x = np.ones(xs, np.float32)
            w = np.ones(ws, np.float32)
            if grad:
                y = ops.conv2d(x, w, stride=stride, padding=padding, n_threads=n_threads)
                ops.conv2d_grad(y, x, w, stride=stride, padding=padding, n_threads=n_threads)
            else:
                ops.conv2d(x, w, stride=stride, padding=padding, n_threads=n_threads)
        elif kind == "pool":
            xs, size, stride = args
            ops.pool2d(np.ones(xs, np.float32), size, stride=stride)
        else:
            conv_layers, image, n_threads = args
            X = np.ones((4,) + tuple(image), np.float32)
            ConvNetClassifier(conv_layers=[tuple(c) for c in conv_layers],
                              max_iter=1, n_threads=n_threads).fit(X, [0, 1, 0, 1])
        out.append("ok")
    except (ValueError, TypeError, MemoryError) as exc:
        out.append(type(exc).__name__)
print(json.dumps(out))
"""

def _run_child(cases):
    """Run _CHILD on cases in a fresh interpreter, from this test folder: run
    from the repository's root, ``-c`` would import the uncompiled source
    folder instead of the installed package."""
    import json
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", _CHILD], input=json.dumps(cases),
                          capture_output=True, text=True, timeout=600,
                          cwd=os.path.dirname(os.path.abspath(__file__)))


big_ints = st.one_of(st.integers(1, 40), st.integers(2**15, 2**17),
                     st.integers(2**31 - 3, 2**31 + 3), st.just(10**30))


@st.composite
def hostile_cases(draw):
    kind = draw(st.sampled_from(["conv", "pool", "fit"]))
    small = st.integers(1, 6)
    if kind == "conv":
        xs = (draw(st.integers(0, 2)), draw(small), draw(st.integers(1, 64)),
              draw(st.integers(1, 64)))
        ws = (draw(small), xs[1], draw(st.integers(1, 40)), draw(st.integers(1, 40)))
        stride = (draw(big_ints), draw(big_ints))
        padding = (draw(st.one_of(st.integers(0, 3), big_ints)),
                   draw(st.one_of(st.integers(0, 3), big_ints)))
        n_threads = draw(st.one_of(st.none(), st.integers(-3, 3), big_ints))
        return kind, [xs, ws, stride, padding, n_threads, draw(st.booleans())]
    if kind == "pool":
        xs = (draw(st.integers(0, 2)), draw(small), draw(st.integers(1, 32)),
              draw(st.integers(1, 32)))
        return kind, [xs, draw(big_ints), draw(st.one_of(st.none(), big_ints))]
    layers = draw(st.lists(st.tuples(st.integers(1, 8), big_ints, big_ints),
                           min_size=1, max_size=2))
    image = (draw(st.integers(1, 3)), draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    n_threads = draw(st.one_of(st.none(), st.integers(1, 2), big_ints))
    return kind, [[list(l) for l in layers], image, n_threads]


@settings(max_examples=5, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(hostile_cases(), min_size=20, max_size=20))
def test_hostile_sizes_never_crash(cases):
    import json

    proc = _run_child(cases)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:], cases)
    answers = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(answers) == len(cases)


def test_reported_crashes_raise_cleanly():
    """The cases that killed the interpreter: each is now a ValueError."""
    import json

    cases = [
        ["conv", [[1, 1, 1000, 1000], [1, 1, 500, 500], 1, 0, None, False]],
        ["fit", [[[8, 300]], [3, 224, 224], None]],
        ["conv", [[1, 1, 1, 1], [1, 1, 1, 1], 1, 23171, None, False]],
        ["conv", [[2, 1, 8, 8], [3, 1, 5, 5], 2**31, 0, None, True]],
        ["conv", [[2, 1, 8, 8], [3, 1, 5, 5], 10**30, 0, None, False]],
        ["conv", [[2, 1, 8, 8], [3, 1, 5, 5], 1, 2**31, None, False]],
        ["conv", [[2, 1, 8, 8], [3, 1, 5, 5], 1, 0, 2**31, False]],
        ["conv", [[2, 1, 8, 8], [3, 1, 5, 5], 1, 0, 100000, False]],
        ["fit", [[[3, 5, 2**31]], [1, 8, 8], None]],
        ["fit", [[[3, 5]], [1, 8, 8], 100000]],
    ]
    proc = _run_child(cases)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == ["ValueError"] * len(cases)
