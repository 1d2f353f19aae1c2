"""The architecture as data: one frozen dataclass per layer kind, and the
network's spec that holds them.

``build_spec`` turns the estimator's hyperparameters into a ``NetworkSpec``
for a given image shape — fitting every layer to its input and checking it
against the kernels' limits — without allocating anything. The spec is what
``_layers`` builds a network from, what ``check_batch`` sizes a batch by,
and what a model file stores (``to_dict`` / ``from_dict``, plain JSON
values), so ``load`` can check a file's arrays against it before it
allocates a network.

A new layer kind is a spec class here (its fields, output shape and
parameter shapes) and a layer class in ``_layers`` registered for it.
"""
import functools
from dataclasses import asdict, dataclass, fields
from typing import ClassVar

import numpy as np

from . import _geometry

# MLPClassifier's name for the sigmoid.
ALIASES = {"logistic": "sigmoid"}
ACTIVATIONS = ("relu", "sigmoid", "tanh", "identity")

# The entry of ``conv_layers`` that places a pooling layer.
POOL = "pool"

_SPEC_TYPES = {}


def _spec_type(cls):
    _SPEC_TYPES[cls.kind] = cls
    return cls


def _size(shape):
    return int(np.prod(shape, dtype=object))


@dataclass(frozen=True)
class LayerSpec:
    """A layer's kind and sizes; ``in_shape`` is one sample's input."""

    kind: ClassVar[str] = "layer"
    in_shape: tuple

    @property
    def out_shape(self):
        return tuple(self.in_shape)

    @property
    def param_shapes(self):
        return []

    def training_batch_problem(self, batch_size):
        """Why a training batch of ``batch_size`` samples cannot run through
        this layer (a message with a ``{layer}`` field), or None."""
        return None

    def to_dict(self):
        return {"kind": self.kind, **_jsonable(asdict(self))}


@_spec_type
@dataclass(frozen=True)
class ConvSpec(LayerSpec):
    """A convolution and its activation; without ``bias`` it is followed by
    batch norm, which applies the activation instead."""

    kind: ClassVar[str] = "conv"
    n_filters: int = 1
    kernel: tuple = (1, 1)
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    activation: str = "relu"
    bias: bool = True

    @property
    def geometry(self):
        return _geometry.ConvGeometry(tuple(self.in_shape), self.n_filters,
                                      tuple(self.kernel), tuple(self.stride),
                                      tuple(self.padding))

    @property
    def out_shape(self):
        return self.geometry.out_shape

    @property
    def param_shapes(self):
        return [self.geometry.weight_shape] + ([(self.n_filters,)] if self.bias else [])


@_spec_type
@dataclass(frozen=True)
class BatchNormSpec(LayerSpec):
    """Batch norm of each feature map, then the activation. Parameters:
    gamma, beta and the running mean and variance."""

    kind: ClassVar[str] = "batchnorm"
    activation: str = "relu"

    @property
    def param_shapes(self):
        return [(self.in_shape[0],)] * 4

    def training_batch_problem(self, batch_size):
        # A single value normalises to exactly zero and its gradient
        # vanishes (PyTorch refuses it too).
        _, h, w = self.in_shape
        if batch_size * h * w >= 2:
            return None
        return ("batch norm needs more than one value per feature map in each "
                f"training batch, but {{layer}} has {h}x{w} maps and a batch "
                f"holds {batch_size} sample: use a batch_size of 2 or more (one "
                "that does not leave a last batch of 1 sample), fewer pooling "
                "layers, or batch_norm=False")


@_spec_type
@dataclass(frozen=True)
class PoolSpec(LayerSpec):
    """Pooling over non-overlapping windows of ``size``."""

    kind: ClassVar[str] = "pool"
    pool_kind: str = "max"
    size: tuple = (2, 2)

    @property
    def out_shape(self):
        return _geometry.pool_output_shape((1,) + tuple(self.in_shape),
                                           self.size, self.size)[1:]


@_spec_type
@dataclass(frozen=True)
class FlattenSpec(LayerSpec):
    kind: ClassVar[str] = "flatten"

    @property
    def out_shape(self):
        return (_size(self.in_shape),)


@_spec_type
@dataclass(frozen=True)
class DenseSpec(LayerSpec):
    """Fully connected; ``activation`` is the one that follows it (None for
    the output layer), which sets the scale of its initial weights."""

    kind: ClassVar[str] = "dense"
    n_out: int = 1
    activation: str = None

    @property
    def out_shape(self):
        return (self.n_out,)

    @property
    def param_shapes(self):
        return [(self.in_shape[0], self.n_out), (self.n_out,)]


@_spec_type
@dataclass(frozen=True)
class ActivationSpec(LayerSpec):
    kind: ClassVar[str] = "activation"
    name: str = "relu"


@_spec_type
@dataclass(frozen=True)
class DropoutSpec(LayerSpec):
    kind: ClassVar[str] = "dropout"
    rate: float = 0.5


@dataclass(frozen=True)
class NetworkSpec:
    """The whole network: one sample's input shape, the layers, and the
    output head (the loss and its link: "softmax" or "logistic")."""

    input_shape: tuple
    layers: tuple
    head: str = "softmax"

    @property
    def param_shapes(self):
        """The shapes of the parameters, in the order the network holds them."""
        return [shape for layer in self.layers for shape in layer.param_shapes]

    @property
    def n_params(self):
        return sum(_size(s) for s in self.param_shapes)

    @functools.cached_property
    def largest_output(self):
        """Values in the largest layer output of one sample (worked out once:
        the spec never changes)."""
        return max(_size(layer.out_shape) for layer in self.layers)

    def to_dict(self):
        return {"input_shape": list(self.input_shape),
                "layers": [layer.to_dict() for layer in self.layers],
                "head": self.head}

    @classmethod
    def from_dict(cls, data):
        """The spec a ``to_dict`` wrote; a ValueError for anything else."""
        try:
            layers = []
            for entry in data["layers"]:
                entry = dict(entry)
                spec_type = _SPEC_TYPES[entry.pop("kind")]
                names = {f.name for f in fields(spec_type)}
                if set(entry) != names:
                    raise ValueError(f"fields {sorted(entry)} for a "
                                     f"{spec_type.kind} layer")
                layers.append(spec_type(**{k: _tupled(v) for k, v in entry.items()}))
            return cls(tuple(data["input_shape"]), tuple(layers), data["head"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a network spec: {exc!r}") from None


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _tupled(value):
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value


def build_spec(image_shape, n_outputs, conv_layers, padding, pooling, pool_size,
               hidden_layer_sizes, activation, dropout, itemsize=4,
               batch_norm=False, n_threads=1, head="softmax"):
    """The network for images of shape (C, H, W) and ``n_outputs`` outputs.

    ``conv_layers`` holds ``(n_filters, kernel_size[, stride])`` entries
    (sizes ints or (h, w) pairs) and, optionally, ``POOL`` entries.
    ``padding`` is "valid" or "same"; every convolution is fitted to its
    input (``_geometry.ConvGeometry.fit``) and followed, with
    ``batch_norm``, by a batch-norm layer that applies the activation (the
    convolution then has no bias). Pooling of kind ``pooling`` follows
    every convolution when ``conv_layers`` has no ``POOL`` entry, and only
    where one is written when it has (blocks of convolutions: ``(32, 3),
    (32, 3), POOL``); a window that fits to 1x1 pools nothing and is left
    out. Every convolution's sizes are checked against the kernels'
    limits here (with the im2col workspaces of a backward pass on
    ``n_threads`` threads), every dense layer's too, and the parameters (with
    their gradients and the optimizer's state) against memory: ``fit``
    refuses an impossible network before drawing a weight, and ``load``
    before allocating one.
    """
    layers = []
    shape = tuple(int(v) for v in image_shape)
    activation = ALIASES.get(activation, activation)
    placed = any(isinstance(entry, str) for entry in conv_layers)
    if placed and pooling is None:
        raise ValueError(f"conv_layers places pooling ({POOL!r}) but pooling is None")

    def pool(shape):
        size = _geometry.fit_pool(shape, _geometry.pair(pool_size, "pool_size"))
        if size is None:
            return shape
        layers.append(PoolSpec(shape, pooling, size))
        return layers[-1].out_shape

    number = 0
    for entry in conv_layers:
        if isinstance(entry, str):
            if entry != POOL:
                raise ValueError(f"unknown conv_layers entry {entry!r}")
            shape = pool(shape)
            continue
        number += 1
        n_filters = int(entry[0])
        kernel = _geometry.pair(entry[1], "kernel_size")
        stride = _geometry.pair(entry[2], "stride") if len(entry) > 2 else (1, 1)
        geometry = _geometry.ConvGeometry.fit(shape, n_filters, kernel, stride,
                                              padding)
        # The backward pass's two im2col-sized buffers per thread.
        geometry.check(itemsize, 2 * n_threads, what=f"conv layer {number}")
        conv = ConvSpec(shape, geometry.n_filters, geometry.kernel,
                        geometry.stride, geometry.padding, activation,
                        bias=not batch_norm)
        layers.append(conv)
        shape = conv.out_shape
        if batch_norm:
            layers.append(BatchNormSpec(shape, activation))
        if not placed and pooling is not None:
            shape = pool(shape)
    layers.append(FlattenSpec(shape))
    n_in = layers[-1].out_shape[0]
    for number, n_out in enumerate(hidden_layer_sizes, 1):
        _geometry.check_dense(n_in, int(n_out), what=f"dense layer {number}")
        layers.append(DenseSpec((n_in,), int(n_out), activation))
        layers.append(ActivationSpec((int(n_out),), activation))
        if dropout > 0:
            layers.append(DropoutSpec((int(n_out),), float(dropout)))
        n_in = int(n_out)
    _geometry.check_dense(n_in, n_outputs, what="the output layer")
    layers.append(DenseSpec((n_in,), int(n_outputs), None))
    spec = NetworkSpec(tuple(int(v) for v in image_shape), tuple(layers), head)
    # The parameters, their gradients and up to two optimizer moments are
    # each one flat array of this size.
    n_params = spec.n_params
    _geometry.check_workspace(4 * n_params * itemsize,
                              f"the network's {n_params:,} parameters (with their "
                              "gradients and the optimizer's state)")
    return spec
