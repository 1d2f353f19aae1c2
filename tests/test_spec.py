"""_spec: the network as data, from the hyperparameters, and through a file."""
import json

import numpy as np
import pytest

from pyconvnet import _spec
from pyconvnet._network import build_network


def _spec_of(**kw):
    args = dict(image_shape=(2, 9, 8), n_outputs=3, conv_layers=((4, 3), (5, (3, 2), 2)),
                padding="same", pooling="max", pool_size=2, hidden_layer_sizes=(6,),
                activation="logistic", dropout=0.2, batch_norm=True)
    args.update(kw)
    return _spec.build_spec(**args)


def test_build_spec_lists_every_layer_with_its_shapes():
    spec = _spec_of()
    kinds = [layer.kind for layer in spec.layers]
    assert kinds == ["conv", "batchnorm", "pool", "conv", "batchnorm", "pool",
                     "flatten", "dense", "activation", "dropout", "dense"]
    conv = spec.layers[0]
    assert conv.activation == "sigmoid" and not conv.bias     # alias; BN replaces bias
    assert spec.layers[3].stride == (2, 2) and spec.layers[3].kernel == (3, 2)
    for before, after in zip(spec.layers, spec.layers[1:]):
        assert tuple(after.in_shape) == tuple(before.out_shape)
    net = build_network(spec, np.random.RandomState(0), np.float32)
    assert [tuple(p.shape) for p in net.params] == [tuple(s) for s in spec.param_shapes]
    assert [layer.kind for layer in net.layers] == kinds
    assert spec.largest_output == max(int(np.prod(l.out_shape)) for l in spec.layers)


def test_a_spec_survives_json():
    spec = _spec_of(head="logistic")
    again = _spec.NetworkSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert _spec_of(dropout=0.0) != spec


@pytest.mark.parametrize("change", [
    lambda d: d["layers"][0].update(kind="conv3d"),
    lambda d: d["layers"][0].pop("stride"),
    lambda d: d["layers"][0].update(extra=1),
    lambda d: d.pop("head"),
])
def test_from_dict_refuses_what_to_dict_does_not_write(change):
    data = json.loads(json.dumps(_spec_of().to_dict()))
    change(data)
    with pytest.raises(ValueError):
        _spec.NetworkSpec.from_dict(data)


def test_batch_norm_refuses_a_training_batch_of_one_value_per_map():
    spec = _spec_of(image_shape=(1, 2, 2), conv_layers=((2, 3),), pool_size=2)
    bn = spec.layers[1]
    assert bn.kind == "batchnorm" and bn.training_batch_problem(2) is None
    problem = _spec_of(image_shape=(1, 1, 1), conv_layers=((2, 1),)).layers[1]
    assert "{layer}" in problem.training_batch_problem(1)


def test_pool_entries_place_pooling_only_where_written():
    spec = _spec_of(conv_layers=((4, 3), (4, 3), "pool", (5, 3), (5, 3), "pool"),
                    batch_norm=False)
    kinds = [layer.kind for layer in spec.layers]
    assert kinds[:6] == ["conv", "conv", "pool", "conv", "conv", "pool"]
    assert spec.layers[2].in_shape == (4, 9, 8) and spec.layers[2].out_shape == (4, 4, 4)
    assert spec.layers[5].out_shape == (5, 2, 2)
    with_bn = [layer.kind for layer in _spec_of(
        conv_layers=((4, 3), (4, 3), "pool")).layers]
    assert with_bn[:5] == ["conv", "batchnorm", "conv", "batchnorm", "pool"]
    # Pooling the input, and a window that fits to 1x1 is left out.
    first = _spec_of(image_shape=(1, 4, 4), conv_layers=("pool", (3, 3), "pool", "pool"))
    assert [layer.kind for layer in first.layers][:5] == [
        "pool", "conv", "batchnorm", "pool", "flatten"]
    # Without a "pool" entry every convolution is followed by its pooling.
    assert [layer.kind for layer in _spec_of(batch_norm=False).layers][:4] == [
        "conv", "pool", "conv", "pool"]
    again = _spec.NetworkSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec


@pytest.mark.parametrize("conv_layers, pooling, match", [
    (((4, 3), "pool"), None, "pooling=None"),
    (((4, 3), "avg"), "max", "the only strings conv_layers takes are the markers 'pool'"),
    (((4, 3), "GAP"), "max", "'gap' \\(global average pooling"),
    (((4, 3), (4,)), "max", "each entry of conv_layers"),
])
def test_pool_entries_refuse_what_they_cannot_place(conv_layers, pooling, match):
    with pytest.raises(ValueError, match=match):
        _spec_of(conv_layers=conv_layers, pooling=pooling)
