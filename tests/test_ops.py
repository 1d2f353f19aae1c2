import os

import numpy as np
import pytest

import pyconvnet
from pyconvnet import _dispatch, _geometry, ops

import reference as ref

TOL = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}

# (x shape, weight shape, stride, padding)
CONV_CASES = [
    ((1, 1, 5, 5), (1, 1, 3, 3), 1, 0),            # batch 1, C = F = 1
    ((3, 2, 7, 6), (4, 2, 3, 2), 1, 0),            # non-square kernel and input
    ((2, 3, 9, 8), (5, 3, 3, 3), 2, 1),            # stride 2, padding
    ((2, 2, 10, 11), (3, 2, 4, 3), 3, (2, 1)),     # stride 3, uneven padding
    ((2, 3, 6, 5), (4, 3, 1, 1), 1, 0),            # 1x1 kernel, direct path
    ((2, 3, 6, 5), (4, 3, 1, 1), 2, 1),            # 1x1 kernel with stride/pad
    ((2, 2, 5, 4), (3, 2, 5, 4), 1, 0),            # kernel == input
    ((2, 2, 3, 2), (3, 2, 5, 4), 1, 1),            # kernel == padded input
    ((3, 1, 28, 28), (20, 1, 5, 5), 1, 0),         # Nielsen's first layer
    ((2, 4, 12, 12), (6, 4, 5, 5), 1, 0),          # Nielsen's second layer, small
    ((19, 3, 8, 8), (2, 3, 3, 3), (1, 2), (0, 1)), # batch > chunk count
    # Stride 1 unfolds through a padded copy in blocks of 8 values:
    ((2, 3, 7, 9), (4, 3, 3, 3), 1, 1),            # "same", rows of 9
    ((3, 2, 14, 14), (5, 2, 5, 5), 1, 2),          # "same" 5x5, rows of 14
    ((2, 2, 4, 5), (3, 2, 3, 2), 1, (1, 0)),       # rows of 4 (< one block)
    ((2, 1, 30, 30), (3, 1, 3, 3), 1, 1),          # rows of 30 (4 blocks)
]


def _data(shape, dtype, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs, ws, stride, padding", CONV_CASES)
def test_conv2d_matches_reference(xs, ws, stride, padding, dtype):
    x, w, b = _data(xs, dtype, 0), _data(ws, dtype, 1), _data(ws[0], dtype, 2)
    y = ops.conv2d(x, w, b, stride=stride, padding=padding)
    assert y.dtype == dtype
    expected = ref.conv2d(x, w, b, stride, padding)
    np.testing.assert_allclose(y, expected, **TOL[dtype])
    y_nobias = ops.conv2d(x, w, stride=stride, padding=padding)
    np.testing.assert_allclose(y_nobias, ref.conv2d(x, w, None, stride, padding),
                               **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs, ws, stride, padding", CONV_CASES)
def test_conv2d_grad_matches_reference(xs, ws, stride, padding, dtype):
    x, w = _data(xs, dtype, 0), _data(ws, dtype, 1)
    out_shape = ops.conv2d(x, w, stride=stride, padding=padding).shape
    dy = _data(out_shape, dtype, 3)
    dx, dw, db = ops.conv2d_grad(dy, x, w, stride=stride, padding=padding)
    rdx, rdw, rdb = ref.conv2d_grad(dy, x, w, stride, padding)
    for got, want in ((dx, rdx), (dw, rdw), (db, rdb)):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, **TOL[dtype])
    dx2, dw2, db2 = ops.conv2d_grad(dy, x, w, stride=stride, padding=padding,
                                    input_grad=False)
    assert dx2 is None
    np.testing.assert_array_equal(dw2, dw)
    np.testing.assert_array_equal(db2, db)


@pytest.mark.parametrize("xs, ws, stride, padding", CONV_CASES[:8])
def test_conv2d_grad_numerical(xs, ws, stride, padding):
    x, w, b = _data(xs, np.float64, 4), _data(ws, np.float64, 5), _data(ws[0], np.float64, 6)
    g = _data(ops.conv2d(x, w, b, stride=stride, padding=padding).shape, np.float64, 7)

    def loss(x_=x, w_=w, b_=b):
        return float((ops.conv2d(x_, w_, b_, stride=stride, padding=padding) * g).sum())

    dx, dw, db = ops.conv2d_grad(g, x, w, stride=stride, padding=padding)
    np.testing.assert_allclose(dx, ref.numerical_grad(lambda v: loss(x_=v), x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dw, ref.numerical_grad(lambda v: loss(w_=v), w), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(db, ref.numerical_grad(lambda v: loss(b_=v), b), rtol=1e-6, atol=1e-7)


# (x shape, size, stride)
POOL_CASES = [
    ((1, 1, 4, 4), 2, None),
    ((2, 3, 7, 9), 2, None),          # ragged edges dropped
    ((2, 2, 9, 8), (3, 2), None),     # non-square window
    ((2, 2, 9, 9), 3, 2),             # overlapping windows
    ((2, 2, 8, 7), 2, 1),             # stride 1
    ((3, 1, 6, 6), (2, 3), (3, 1)),   # stride larger than window on one axis
    ((2, 2, 5, 4), (5, 4), None),     # window == input
    ((2, 3, 6, 6), 1, None),          # 1x1 window
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ops.POOL_KINDS)
@pytest.mark.parametrize("xs, size, stride", POOL_CASES)
def test_pool2d_matches_reference(xs, size, stride, kind, dtype):
    x = _data(xs, dtype, 8)
    y = ops.pool2d(x, size, stride=stride, kind=kind)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, ref.pool2d(x, size, stride, kind), **TOL[dtype])
    dy = _data(y.shape, dtype, 9)
    dx = ops.pool2d_grad(dy, x, size, stride=stride, kind=kind)
    assert dx.dtype == dtype and dx.shape == x.shape
    np.testing.assert_allclose(dx, ref.pool2d_grad(dy, x, size, stride, kind),
                               **TOL[dtype])


@pytest.mark.parametrize("kind", ops.POOL_KINDS)
@pytest.mark.parametrize("xs, size, stride", POOL_CASES)
def test_pool2d_grad_numerical(xs, size, stride, kind):
    # A permutation of distinct values spaced well apart: no max ties, and
    # no maximum that a step of eps could change.
    rng = np.random.default_rng(10)
    x = (rng.permutation(np.prod(xs)).reshape(xs) - np.prod(xs) / 2) * 0.1 + 0.05
    g = _data(ops.pool2d(x, size, stride=stride, kind=kind).shape, np.float64, 11)

    def loss(v):
        return float((ops.pool2d(v, size, stride=stride, kind=kind) * g).sum())

    dx = ops.pool2d_grad(g, x, size, stride=stride, kind=kind)
    np.testing.assert_allclose(dx, ref.numerical_grad(loss, x), rtol=1e-6, atol=1e-7)


def test_max_pool_ties_go_to_first_maximum():
    x = np.array([[[[1.0, 3.0], [3.0, 3.0]]]])
    dx = ops.pool2d_grad(np.ones((1, 1, 1, 1)), x, 2)
    np.testing.assert_array_equal(dx, [[[[0.0, 1.0], [0.0, 0.0]]]])


@pytest.mark.parametrize("size", [2, 3, (2, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_propagates_nan_from_any_position(size, dtype):
    kh, kw = (size, size) if np.isscalar(size) else size
    for pos in range(kh * kw):
        for second in (None, (pos + 1) % (kh * kw)):
            window = np.arange(kh * kw, dtype=dtype)
            window[pos] = np.nan
            if second is not None and second > pos:
                window[second] = np.nan  # two NaNs: the first one wins
            x = window.reshape(1, 1, kh, kw)
            y = ops.pool2d(x, size, kind="max")
            assert np.isnan(y).all(), (pos, y)
            dx = ops.pool2d_grad(np.ones_like(y), x, size, kind="max")
            expected = np.zeros(kh * kw)
            expected[pos] = 1
            np.testing.assert_array_equal(dx.ravel(), expected)


def test_l2_pool_zero_window_has_zero_gradient():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 0, 0] = 2.0
    dx = ops.pool2d_grad(np.ones((1, 1, 2, 2)), x, 2, kind="l2")
    assert np.all(np.isfinite(dx))
    expected = np.zeros_like(x)
    expected[0, 0, 0, 0] = 1.0
    np.testing.assert_array_equal(dx, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_identical_for_1_and_2_threads(dtype):
    x, w, b = _data((37, 3, 12, 12), dtype, 12), _data((8, 3, 5, 5), dtype, 13), _data(8, dtype, 14)
    y1 = ops.conv2d(x, w, b, padding=1, n_threads=1)
    y2 = ops.conv2d(x, w, b, padding=1, n_threads=2)
    np.testing.assert_array_equal(y1, y2)
    g1 = ops.conv2d_grad(y1, x, w, padding=1, n_threads=1)
    g2 = ops.conv2d_grad(y1, x, w, padding=1, n_threads=2)
    for a, b_ in zip(g1, g2):
        np.testing.assert_array_equal(a, b_)
    for kind in ops.POOL_KINDS:
        p1 = ops.pool2d(x, 2, kind=kind, n_threads=1)
        p2 = ops.pool2d(x, 2, kind=kind, n_threads=2)
        np.testing.assert_array_equal(p1, p2)
        np.testing.assert_array_equal(
            ops.pool2d_grad(p1, x, 2, kind=kind, n_threads=1),
            ops.pool2d_grad(p1, x, 2, kind=kind, n_threads=2),
        )


def test_layouts_fortran_noncontiguous_readonly():
    x = _data((3, 2, 9, 8), np.float64, 15)
    w = _data((4, 2, 3, 3), np.float64, 16)
    expected = ops.conv2d(x, w)
    xf = np.asfortranarray(x)
    big = np.zeros((6, 2, 18, 8))
    big[::2, :, ::2] = x
    xs = big[::2, :, ::2]
    assert not xs.flags.c_contiguous
    xr = x.copy()
    xr.setflags(write=False)
    wr = w.copy()
    wr.setflags(write=False)
    for variant in (xf, xs, xr):
        np.testing.assert_array_equal(ops.conv2d(variant, wr), expected)
        np.testing.assert_array_equal(ops.pool2d(variant, 2), ops.pool2d(x, 2))
    dy = expected.copy()
    dy.setflags(write=False)
    for a, b in zip(ops.conv2d_grad(dy, xr, wr), ops.conv2d_grad(expected, x, w)):
        np.testing.assert_array_equal(a, b)


def test_dtype_rules():
    x32 = _data((2, 1, 6, 6), np.float32, 17)
    w32 = _data((2, 1, 3, 3), np.float32, 18)
    assert ops.conv2d(x32, w32).dtype == np.float32
    assert ops.conv2d(x32, w32.astype(np.float64)).dtype == np.float64
    assert ops.conv2d(np.ones((2, 1, 6, 6), dtype=int), w32).dtype == np.float64
    assert ops.pool2d(np.ones((1, 1, 4, 4), dtype=np.int8)).dtype == np.float64
    assert ops.pool2d(np.ones((1, 1, 4, 4), dtype=bool)).dtype == np.float64
    # a nested list is numeric input too
    np.testing.assert_array_equal(
        ops.pool2d([[[[1, 2], [3, 4]]]]), [[[[4.0]]]]
    )


def test_empty_batch():
    y = ops.conv2d(np.zeros((0, 2, 5, 5)), np.ones((3, 2, 3, 3)))
    assert y.shape == (0, 3, 3, 3)
    dx, dw, db = ops.conv2d_grad(np.zeros((0, 3, 3, 3)), np.zeros((0, 2, 5, 5)),
                                 np.ones((3, 2, 3, 3)))
    assert dx.shape == (0, 2, 5, 5)
    np.testing.assert_array_equal(dw, 0)
    np.testing.assert_array_equal(db, 0)
    assert ops.pool2d(np.zeros((0, 2, 4, 4))).shape == (0, 2, 2, 2)


X = np.zeros((2, 3, 8, 8))
W = np.zeros((4, 3, 3, 3))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: ops.conv2d(X[0], W), ValueError, "x must be a 4-D"),
        (lambda: ops.conv2d(X, W[0]), ValueError, "weight must be a 4-D"),
        (lambda: ops.conv2d(X, np.zeros((4, 2, 3, 3))), ValueError, "channels"),
        (lambda: ops.conv2d(X, W, np.zeros(3)), ValueError, "bias must have shape"),
        (lambda: ops.conv2d(X, W, np.zeros((4, 1))), ValueError, "bias must be a 1-D"),
        (lambda: ops.conv2d(X, np.zeros((4, 3, 9, 3))), ValueError, "kernel height 9"),
        (lambda: ops.conv2d(X, np.zeros((4, 3, 3, 11)), padding=1), ValueError, "kernel width 11"),
        (lambda: ops.conv2d(X, W, stride=0), ValueError, "stride must be >= 1"),
        (lambda: ops.conv2d(X, W, stride=(1, -1)), ValueError, "stride must be >= 1"),
        (lambda: ops.conv2d(X, W, padding=-1), ValueError, "padding must be >= 0"),
        (lambda: ops.conv2d(X, W, stride=1.5), TypeError, "stride must be an int"),
        (lambda: ops.conv2d(X, W, padding=(1, 2, 3)), TypeError, "padding must be an int"),
        (lambda: ops.conv2d(X, W, stride=True), TypeError, "stride must be an int"),
        (lambda: ops.conv2d(X.astype(str), W), TypeError, "real numbers"),
        (lambda: ops.conv2d(X, W.astype(complex)), TypeError, "real numbers"),
        (lambda: ops.conv2d(np.empty((2, 3, 8, 8), dtype=object), W), TypeError, "real numbers"),
        (lambda: ops.conv2d(np.zeros((2, 3, 0, 8)), W), ValueError, "non-zero"),
        (lambda: ops.conv2d(X, W, n_threads=0), ValueError, "n_threads"),
        (lambda: ops.conv2d(X, W, n_threads="2"), TypeError, "n_threads"),
        (lambda: ops.conv2d_grad(np.zeros((2, 4, 5, 6)), X, W), ValueError, "dy must have the shape"),
        (lambda: ops.conv2d_grad(np.zeros((2, 4, 6)), X, W), ValueError, "dy must be a 4-D"),
        (lambda: ops.conv2d_grad(np.zeros((2, 4, 6, 6)), X, np.zeros((4, 1, 3, 3))), ValueError, "channels"),
        (lambda: ops.pool2d(X[0]), ValueError, "x must be a 4-D"),
        (lambda: ops.pool2d(X, 9), ValueError, "window height 9"),
        (lambda: ops.pool2d(X, (2, 9)), ValueError, "window width 9"),
        (lambda: ops.pool2d(X, 0), ValueError, "size must be >= 1"),
        (lambda: ops.pool2d(X, 2, stride=0), ValueError, "stride must be >= 1"),
        (lambda: ops.pool2d(X, kind="median"), ValueError, "kind must be one of"),
        (lambda: ops.pool2d(X, kind=None), ValueError, "kind must be one of"),
        (lambda: ops.pool2d(X.astype(str)), TypeError, "real numbers"),
        (lambda: ops.pool2d_grad(np.zeros((2, 3, 3, 4)), X), ValueError, "dy must have the shape"),
        (lambda: ops.pool2d_grad(np.zeros((2, 3, 4, 4)), X, kind="L2"), ValueError, "kind must be one of"),
    ],
)
def test_bad_input_raises(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_built_as_expected():
    """The build has OpenMP unless the tester says it was built serially on
    purpose (PYCONVNET_EXPECT_OPENMP=0, set by CI's serial build)."""
    expected = os.environ.get("PYCONVNET_EXPECT_OPENMP", "1") != "0"
    assert pyconvnet.openmp_enabled() is expected


def test_n_threads_follows_openmp_limits():
    from threadpoolctl import threadpool_limits

    from pyconvnet._threads import effective_n_threads

    if pyconvnet.openmp_enabled():
        assert effective_n_threads(3) == 3
        assert effective_n_threads(-1) >= 1
        with threadpool_limits(limits=1, user_api="openmp"):
            assert effective_n_threads(None) == 1
    else:
        # A serial build runs every kernel on one thread, whatever is asked
        # (out-of-range requests are still refused).
        assert [effective_n_threads(n) for n in (None, 1, 3, -1)] == [1] * 4
        with pytest.raises(ValueError):
            effective_n_threads(0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernels_return_early_on_an_empty_batch(dtype):
    """Called directly (no ops guard), the kernels do nothing on N = 0 and
    the weight gradients come back zero."""
    from pyconvnet._kernels import conv_module
    _pool = conv_module("pool")

    _conv = conv_module()

    x = np.zeros((0, 2, 6, 6), dtype)
    w = np.ones((3, 2, 3, 3), dtype)
    y = np.zeros((0, 3, 4, 4), dtype)
    dw = np.full_like(w, 7)
    db = np.full(3, 7, dtype)
    _conv.conv2d_forward(x, w, np.ones(3, dtype), y, None, 1, 1, 0, 0, 1, 2)
    _conv.conv2d_backward(y, y, x, w, None, np.zeros_like(x), dw, db, 1, 1, 0, 0,
                          1, 2)
    assert not dw.any() and not db.any()
    p = np.zeros((0, 2, 3, 3), dtype)
    _pool.max_pool_forward(x, p, np.zeros(p.shape, np.intc), 2, 2, 2, 2, 2)
    _pool.sum_pool_forward(x, p, 2, 2, 2, 2, True, 2)
    _pool.max_pool_backward(p, np.zeros(p.shape, np.intc), x, 2)
    _pool.l2_pool_backward(p, x, p, x, 2, 2, 2, 2, 2)
    _pool.avg_pool_backward(p, x, 2, 2, 2, 2, 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(64, 3136, 256), (300, 65, 129), (5, 7, 3),
                                   (257, 1, 65), (0, 4, 3), (3, 0, 4)])
def test_dense_matmul_tiles_match_numpy_for_any_thread_count(shape, dtype):
    # The dense layers' products: every operand layout the layers use
    # (x @ W, x.T @ dy, dy @ W.T), shapes across and inside the tile sizes,
    # the same bits for 1, 2, 3 and 8 threads.
    m, k, n = shape
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal((m, k)).astype(dtype)
    w = rng.standard_normal((k, n)).astype(dtype)
    dy = rng.standard_normal((m, n)).astype(dtype)
    tol = dict(rtol=1e-4, atol=1e-4 * np.sqrt(k + m + n)) if dtype == np.float32 else {}
    for a, b, out_shape in ((x, w, (m, n)), (x.T, dy, (k, n)), (dy, w.T, (m, k))):
        outs = []
        for n_threads in (1, 2, 3, 8):
            out = np.full(out_shape, np.nan, dtype)
            assert _dispatch.matmul(a, b, out, n_threads) is out
            outs.append(out)
        np.testing.assert_allclose(outs[0], a.astype(np.float64) @ b, **tol)
        for other in outs[1:]:
            np.testing.assert_array_equal(other, outs[0])


@pytest.mark.parametrize("shape", [(1, 5, 3), (4, 1, 3), (4, 5, 1), (1, 1, 1)])
def test_dense_matmul_with_unit_dimensions(shape):
    # A dimension of 1 leaves NumPy free to give it any stride (a (1, n)
    # array is contiguous whatever its first stride): the leading dimensions
    # come from the shapes, never from such a stride.
    m, k, n = shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((m, k))
    w = rng.standard_normal((k, n))
    dy = rng.standard_normal((m, n))
    for a, b in ((x, w), (x.T, dy), (dy, w.T), (x[:, :1], w[:1]),
                 (np.lib.stride_tricks.as_strided(x, strides=(8 * 1000, 8)) if m == 1
                  else x, w)):
        out = np.empty((a.shape[0], b.shape[1]))
        np.testing.assert_allclose(_dispatch.matmul(a, b, out, 2), a @ b, rtol=1e-12)


def test_dense_matmul_falls_back_on_layouts_blas_cannot_take():
    x = np.arange(24.0).reshape(4, 6)[:, ::2]          # neither stride is 8
    w = np.ones((3, 2))
    out = np.empty((4, 2))
    np.testing.assert_array_equal(_dispatch.matmul(x, w, out, 2), x @ w)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs, ws, padding", [
    ((1, 2, 4, 5), (3, 2, 3, 2), (1, 0)),   # rows of 4: blocks would spill
    ((1, 1, 9, 9), (2, 1, 3, 3), (1, 1)),   # rows of 9
    ((1, 3, 6, 6), (2, 3, 5, 5), (2, 2)),   # rows of 6
])
def test_conv_unfolding_stays_inside_its_sample(xs, ws, padding, dtype):
    # Each sample's im2col lands in its own row of the cache, which the
    # backward pass reads; the unfolding moves rows in blocks of 8 values and
    # must not write past its sample's row (another thread may be filling the
    # next one). The cache row of a one-sample batch is followed here by a
    # sentinel row that has to stay as it was.
    x, w = _data(xs, dtype, 0), _data(ws, dtype, 1)
    cols_shape = _geometry.cols_shape(xs, ws, (1, 1), padding)
    cache = np.full((2 * cols_shape[1] + 16,), 7.0, dtype)
    cols = cache[:cols_shape[1]].reshape(cols_shape)
    from pyconvnet._kernels import conv_module

    conv_im2col = conv_module()

    out = np.empty(_geometry.conv_output_shape(xs, ws, (1, 1), padding), dtype)
    conv_im2col.conv2d_forward(x, w, None, out, cols, 1, 1, *padding, 0, 2)
    np.testing.assert_array_equal(cache[cols_shape[1]:], 7.0)
    np.testing.assert_allclose(out, ref.conv2d(x, w, None, 1, padding),
                               **TOL[dtype])
    dx, dw, db = np.empty_like(x), np.empty_like(w), np.empty(ws[0], dtype)
    conv_im2col.conv2d_backward(out, None, x, w, cols, dx, dw, db, 1, 1,
                                *padding, 0, 1)
    rdx, rdw, _ = ref.conv2d_grad(out, x, w, 1, padding)
    np.testing.assert_allclose(dx, rdx, **TOL[dtype])
    np.testing.assert_allclose(dw, rdw, **TOL[dtype])
