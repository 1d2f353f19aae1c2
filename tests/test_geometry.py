"""_geometry: the pair parser, shapes, fitting a layer to its input, limits."""
import numpy as np
import pytest

from pyconvnet import _geometry
from pyconvnet._geometry import ConvGeometry


def test_pair_accepts_ints_and_pairs_and_refuses_the_rest():
    assert _geometry.pair(3, "k") == (3, 3)
    assert _geometry.pair((2, 5), "k") == (2, 5)
    assert _geometry.pair([np.int64(2), 4], "k") == (2, 4)
    assert _geometry.pair(np.array([1, 2]), "k") == (1, 2)
    for bad in (True, 2.0, "3", (1, 2, 3), (1,), (True, 2), (1.5, 2), None):
        with pytest.raises(TypeError, match="k must be an int or a pair"):
            _geometry.pair(bad, "k")
    with pytest.raises(ValueError, match="k must be >= 1"):
        _geometry.pair((0, 2), "k")
    with pytest.raises(ValueError, match="k must be <= 9"):
        _geometry.pair(10, "k", maximum=9)
    assert _geometry.pair(0, "pad", minimum=0) == (0, 0)


@pytest.mark.parametrize("in_shape, kernel, stride, mode, fitted, padding, out", [
    ((1, 28, 28), (5, 5), (1, 1), "same", (5, 5), (2, 2), (8, 28, 28)),
    ((1, 28, 28), (5, 5), (1, 1), "valid", (5, 5), (0, 0), (8, 24, 24)),
    ((1, 1, 7), (5, 5), (1, 1), "valid", (1, 5), (0, 0), (8, 1, 3)),
    # "same" shrinks to the smallest odd size covering the input
    ((2, 4, 3), (7, 7), (1, 1), "same", (5, 3), (2, 1), (8, 4, 3)),
    ((1, 9, 9), (3, 3), (2, 2), "same", (3, 3), (1, 1), (8, 5, 5)),
])
def test_conv_geometry_fits_the_layer_to_its_input(in_shape, kernel, stride, mode,
                                                   fitted, padding, out):
    g = ConvGeometry.fit(in_shape, 8, kernel, stride, mode)
    assert g.kernel == fitted and g.padding == padding and g.out_shape == out
    assert g.weight_shape == (8, in_shape[0]) + fitted
    c = in_shape[0]
    assert g.cols_size == c * fitted[0] * fitted[1] * out[1] * out[2]
    assert _geometry.conv_output_shape((4,) + in_shape, g.weight_shape, stride,
                                       padding) == (4,) + out


def test_pool_geometry():
    assert _geometry.pool_output_shape((2, 3, 9, 8), (2, 2), (2, 2)) == (2, 3, 4, 4)
    assert _geometry.fit_pool((3, 1, 9), (2, 2)) == (1, 2)
    assert _geometry.fit_pool((3, 1, 1), (2, 2)) is None


def test_limits_name_what_exceeds_them(monkeypatch):
    with pytest.raises(ValueError, match="layer 1: n_channels \\* height"):
        ConvGeometry((1, 2**16, 2**16), 4, (3, 3)).check(what="layer 1")
    # 9 * 40000^2 / 4 values: K * P over the int limit
    with pytest.raises(ValueError, match="im2col matrix"):
        ConvGeometry((1, 40000, 40000), 1, (3, 3), (2, 2)).check()
    with pytest.raises(ValueError, match="dense layer 2: the weights"):
        _geometry.check_dense(2**16, 2**16, what="dense layer 2")
    monkeypatch.setattr(_geometry, "physical_memory", lambda: 2**20)
    with pytest.raises(ValueError, match="layer 1 needs .* GiB"):
        ConvGeometry((1, 64, 64), 4, (3, 3), padding=(1, 1)).check(
            n_buffers=64, what="layer 1")
    assert _geometry.threads_for(8, 3) == 3 and _geometry.threads_for(2, 0) == 1
