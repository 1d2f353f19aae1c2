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
import numbers
from dataclasses import asdict, dataclass, fields
from typing import ClassVar

import numpy as np

from . import _activations, _geometry
from ._json import to_json, tupled

# The entry of ``conv_layers`` that places a pooling layer.
POOL = "pool"
# The entry that places global average pooling.
GAP = "gap"

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

    def params_problem(self, params):
        """What is wrong with loaded values of this layer's parameters
        (finite arrays of ``param_shapes``), or None."""
        return None

    def to_dict(self):
        return {"kind": self.kind, **to_json(asdict(self))}


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

    @functools.cached_property
    def geometry(self):
        # Worked out once: a layer asks its spec for its shapes every batch.
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

    def params_problem(self, params):
        if (params[3] < 0).any():
            return "a batch-norm layer's running variance is negative"
        return None


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
class GlobalAvgPoolSpec(LayerSpec):
    """Global average pooling (Lin et al. 2014): each feature map condensed
    to its mean, (C, H, W) -> (C, 1, 1). Before the output layer with no
    hidden dense layer, it makes an all-convolutional network, whose head
    has as many weights per output as the last convolution has filters."""

    kind: ClassVar[str] = "gap"

    @property
    def out_shape(self):
        return (self.in_shape[0], 1, 1)


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
                layers.append(spec_type(**{k: tupled(v) for k, v in entry.items()}))
            return cls(tuple(data["input_shape"]), tuple(layers), data["head"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a network spec: {exc!r}") from None


# ----------------------------------------------------------------------
# The conv_layers grammar: convolutions and markers, parsed here only.
# ----------------------------------------------------------------------
#: The markers ``conv_layers`` takes, each a string standing where it places
#: its layer: name -> (what it places, for messages, the function that
#: appends its layer in ``build_spec``: (builder, shape) -> the new shape).
MARKERS = {}


def _marker(name, description):
    def register(place):
        MARKERS[name] = (description, place)
        return place
    return register


@_marker(POOL, "pooling of kind `pooling` at that point")
def _place_pool(builder, shape):
    return builder.pool(shape)


@_marker(GAP, "global average pooling (each feature map to its mean)")
def _place_gap(builder, shape):
    builder.layers.append(GlobalAvgPoolSpec(shape))
    return builder.layers[-1].out_shape


def _grammar():
    markers = " or ".join(repr(name) for name in MARKERS)
    return (f"(n_filters, kernel_size) or (n_filters, kernel_size, stride) "
            f"tuples and {markers} markers")


def parse_conv_layers(conv_layers, pooling="max"):
    """``conv_layers`` as build_spec takes it: a tuple of ``(n_filters,
    (kh, kw), (sh, sw))`` entries and ``MARKERS`` names; a ValueError
    naming the entry for anything else (the one place the grammar is
    checked). ``pooling``: None refuses the pooling markers."""
    if isinstance(conv_layers, str):
        entries = None
    else:
        try:
            entries = list(conv_layers)
        except TypeError:
            entries = None
    if entries is None:
        raise ValueError(f"conv_layers must be a sequence of {_grammar()}, "
                         f"got {conv_layers!r}")
    out = []
    for entry in entries:
        if isinstance(entry, str):
            if entry not in MARKERS:
                raise ValueError(
                    "the only strings conv_layers takes are the markers "
                    + ", ".join(f"{name!r} ({what})" for name, (what, _) in MARKERS.items())
                    + f"; got {entry!r}")
            if entry == POOL and pooling is None:
                raise ValueError(
                    f"conv_layers has {POOL!r} entries but pooling=None: set "
                    f"pooling to 'max', 'l2' or 'avg', or drop the {POOL!r} entries")
            out.append(entry)
            continue
        out.append(_parse_conv(entry))
    return tuple(out)


def _parse_conv(entry):
    try:
        parts = list(entry)
    except TypeError:
        parts = []
    if len(parts) not in (2, 3):
        raise ValueError(f"each entry of conv_layers must be one of {_grammar()}, "
                         f"got {entry!r}")
    try:
        if isinstance(parts[0], bool) or not isinstance(parts[0], (numbers.Integral,)):
            raise TypeError("n_filters is one int")
        n_filters = _geometry.pair(parts[0], "n_filters")[0]
        kernel = _geometry.pair(parts[1], "kernel_size")
        stride = _geometry.pair(parts[2], "stride") if len(parts) == 3 else (1, 1)
    except (TypeError, ValueError):
        raise ValueError(
            "n_filters, kernel_size and stride in conv_layers must be ints in "
            f"[1, {_geometry.INT_MAX}] (kernel_size and stride may be (h, w) "
            f"pairs), got {entry!r}") from None
    return (n_filters, kernel, stride)


def split_entries(text):
    """The comma-separated entries of a command-line option: every one
    must be there (no empty entry, no stray comma)."""
    entries = text.split(",")
    for number, entry in enumerate(entries, 1):
        if not entry.strip():
            raise ValueError(f"entry {number} of {text!r} is empty")
    return [entry.strip() for entry in entries]


def parse_conv_layers_text(text):
    """The command line's form of ``conv_layers``: comma-separated
    ``FILTERS:KERNEL[:STRIDE]`` entries and markers (``32:3,32:3,pool``), as
    the tuple ``parse_conv_layers`` takes; a ValueError naming the entry."""
    layers = []
    for entry in split_entries(text):
        if entry in MARKERS:
            layers.append(entry)
            continue
        try:
            values = tuple(int(part) for part in entry.split(":"))
        except ValueError:
            values = ()
        if len(values) not in (2, 3):
            raise ValueError(f"{entry!r} is not FILTERS:KERNEL[:STRIDE] nor one of "
                             + ", ".join(MARKERS))
        layers.append(values)
    return tuple(layers)


class _Builder:
    """What ``build_spec`` appends to, and what the markers need."""

    def __init__(self, pooling, pool_size):
        self.layers = []
        self.pooling, self.pool_size = pooling, pool_size

    def pool(self, shape):
        """A pooling layer of the network's kind; a window that fits to 1x1
        pools nothing and is left out."""
        size = _geometry.fit_pool(shape, _geometry.pair(self.pool_size, "pool_size"))
        if size is None:
            return shape
        self.layers.append(PoolSpec(shape, self.pooling, size))
        return self.layers[-1].out_shape


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
    conv_layers = parse_conv_layers(conv_layers, pooling)
    builder = _Builder(pooling, pool_size)
    layers = builder.layers
    shape = tuple(int(v) for v in image_shape)
    activation = _activations.canonical(activation)
    placed = POOL in conv_layers

    number = 0
    for entry in conv_layers:
        if isinstance(entry, str):
            shape = MARKERS[entry][1](builder, shape)
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
            shape = builder.pool(shape)
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
