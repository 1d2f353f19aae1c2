"""Layers of a convolutional network: one small protocol for all of them.

Every layer has
- ``out_shape``: the shape of one sample's output, e.g. (C, H, W) or (n,);
- ``params`` and ``grads``: lists of arrays of the same shapes (empty for
  layers without parameters); ``grads`` is filled in place by ``backward``.
  Once a layer is part of a ``Network`` both are views into the network's one
  flat parameter array and one flat gradient array (``bind``): the network
  owns the memory, a layer only looks at its slice. ``weight`` and ``bias``
  are names for ``params[0]`` and ``params[1]``, never second references;
- ``forward(x, training)``: x of shape (n_samples, *in_shape) -> output;
- ``backward(dy)``: the gradient of the output -> the gradient of the input
  (None when ``input_grad`` is False, as for the first layer).

Layers keep what their backward pass needs from the last training forward
pass, and nothing from a prediction's (which would hold a batch's
activations alive after ``predict``). They
reach the compiled kernels only through ``_dispatch`` (never ``ops``'s own
helpers: ``ops`` is the validated public API).

The registry: each layer class is registered for its spec type
(``_spec``) and is built from a spec, which it keeps (``spec``): its input
and output shapes, and a convolution's geometry, are the spec's, worked out
in one place. It owns, besides its passes, its row of the architecture summary (``describe``,
``n_params``), its ONNX nodes (``to_onnx``) and its fusion with the layers
after it (``fuses_with``, and at prediction ``folds``). ``build_layers``
instantiates a network spec.
"""
import numpy as np

from . import _activations, _dispatch, _spec


_LAYER_TYPES = {}


def register_layer(spec_type):
    """Class decorator: the layer class that ``spec_type`` specs build."""
    def register(cls):
        _LAYER_TYPES[spec_type] = cls
        cls.spec_type = spec_type
        cls.kind = spec_type.kind
        return cls
    return register


def build_layers(spec, rng, dtype):
    """The layers of a network spec, their initial weights drawn from
    ``rng`` in layer order."""
    layers = []
    for layer_spec in spec.layers:
        try:
            cls = _LAYER_TYPES[type(layer_spec)]
        except KeyError:
            raise ValueError(f"no layer is registered for {layer_spec!r}") from None
        layers.append(cls(layer_spec, rng, dtype))
    return layers

class Layer:
    kind = "layer"          # its spec type's kind, set by register_layer
    #: a weight layer in MLPClassifier's sense: ``params[0]`` is a
    #: ``coefs_`` entry and ``params[1]`` (when there) an ``intercepts_`` one
    weight_layer = False
    #: whether the L2 penalty (``alpha``) applies to ``params[0]``
    decay = True
    #: whether training's ``forward`` takes the batch's sample weights
    uses_sample_weight = False

    def __init__(self, spec, rng=None, dtype=None):
        self.spec = spec
        self._params = []
        self._grads = []
        self.shapes = []
        self.input_grad = True
        self.n_threads = 1

    @property
    def in_shape(self):
        """One sample's input shape: the spec's."""
        return tuple(self.spec.in_shape)

    @property
    def out_shape(self):
        """One sample's output shape: the spec's."""
        return tuple(self.spec.out_shape)

    @property
    def params(self):
        return self._params

    @property
    def grads(self):
        return self._grads

    def bind(self, params, grads=()):
        """Make ``params`` and ``grads`` (views into the network's flat
        arrays) this layer's parameters and gradients. A layer's constructor
        binds its initial weights alone: the network copies them into its
        flat array and binds the views with their gradients. ``shapes`` keeps
        the shapes, so that an unpickled network can bind its views again."""
        self._params = list(params)
        self._grads = list(grads)
        self.shapes = [tuple(p.shape) for p in self._params]

    @property
    def weight(self):
        return self._params[0]

    @property
    def bias(self):
        return self._params[1]

    def n_params(self):
        return int(sum(p.size for p in self._params))

    def _buffer(self, key, shape, dtype, training):
        """An array for an output or a gradient: reused across training
        batches of the same shape (no allocation per batch once training
        runs), but fresh for prediction, which may run in several Python
        threads at once on one model."""
        if not training:
            return np.empty(shape, dtype)
        buffers = self.__dict__.setdefault("_buffers", {})
        buf = buffers.get(key)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = buffers[key] = np.empty(shape, dtype)
        return buf

    #: what ``forward`` keeps for ``backward`` (the last batch's input,
    #: output, argmax, dropout mask, ...)
    SAVED_FOR_BACKWARD = ("_x", "_y", "_saved", "_argmax", "_mask")

    def forget(self):
        """Let go of what the last forward pass kept for a backward pass:
        after a prediction, nothing needs it, and holding it would keep a
        whole batch's activations alive until the next call."""
        for name in self.SAVED_FOR_BACKWARD:
            if name in self.__dict__:
                self.__dict__[name] = None

    def _lend(self, key, shape, dtype):
        """A training buffer for a kernel implementation's own use."""
        return self._buffer("work:" + key, shape, dtype, True)

    def __getstate__(self):
        # Buffers and what the last batch left behind are not part of the
        # model: they would make pickles as large as a batch's activations.
        # Parameters and gradients are views of the network's flat arrays,
        # which the network pickles once and binds again on unpickling.
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._params = []
        self._grads = []

    def describe(self):
        return self.kind


    def fuses_with(self, next_layer):
        """Whether this layer runs ``next_layer`` in its own pass."""
        return False

    def folds(self, next_layer):
        """Whether, at prediction, this layer folds ``next_layer`` (an affine
        map) into its own parameters and runs it in its own pass."""
        return False

    def to_onnx(self, graph, x):
        """Add this layer's prediction-time ONNX nodes after tensor ``x``
        (through ``pyconvnet.onnx``'s graph helper); returns the output."""
        raise NotImplementedError(f"cannot export a {self.kind} layer to ONNX")


@register_layer(_spec.ConvSpec)
class Conv2D(Layer):
    """Convolution with shared weights: F feature maps, each one kernel
    (C, KH, KW) and one bias slid over the input with a stride, followed by
    the activation (fused into the same compiled pass)."""

    weight_layer = True
    #: the registered implementation that runs it (None: "auto", chosen
    #: per layer and dtype from what the machine runs; see
    #: ``_kernels.registry``)
    implementation = None

    def __init__(self, spec, rng, dtype):
        # The sizes were checked against the kernels' limits by
        # ``build_spec`` before this layer was built. Without ``bias`` (a
        # convolution followed by batch norm, whose shift replaces it, and
        # applies the activation) the only parameter is the weight; the
        # initial scale is the activation's all the same.
        super().__init__(spec)
        self.activation = spec.activation if spec.bias else "identity"
        self.has_bias = spec.bias
        self.kernel_size = tuple(spec.kernel)
        self.stride = tuple(spec.stride)
        self.padding = tuple(spec.padding)
        shape = self.geometry.weight_shape
        fan_in = shape[1] * shape[2] * shape[3]
        weight = rng.normal(0.0, np.sqrt(_activations.get(spec.activation).init_scale
                                         / fan_in), shape).astype(dtype)
        self.bind([weight, np.zeros(shape[0], dtype=dtype)] if spec.bias else [weight])

    @property
    def geometry(self):
        """The layer's sizes (``_geometry.ConvGeometry``): its spec's,
        worked out once."""
        geometry = self.__dict__.get("_sizes")
        if geometry is None:
            geometry = self._sizes = self.spec.geometry
        return geometry

    def _implementation(self, dtype, batch):
        """The registered implementation that runs this layer in ``dtype``
        on ``batch`` samples: chosen once per dtype, batch size (up to
        ``registry.AUTO_BATCH``), request (``implementation``, or
        ``PYCONVNET_CONV``) and instruction set, and kept (not pickled)."""
        key = _dispatch.conv_choice_key(self.implementation, dtype, batch)
        chosen = self.__dict__.setdefault("_chosen", {})
        if key not in chosen:
            chosen[key] = _dispatch.conv_implementation(key[2], self.geometry, dtype,
                                                        key[1])
        return chosen[key]

    def fuses_with(self, next_layer):
        # Max pooling (whose windows never overlap) runs in the
        # convolution's pass, so that the convolution's full output and its
        # gradient never reach memory; bit-identical to the layers in turn.
        return next_layer.kind == "pool" and next_layer.pool_kind == "max"

    def folds(self, next_layer):
        # A convolution without bias or activation followed by batch norm
        # (how the spec builds them): at prediction the batch norm is a
        # per-filter scale and shift, which the weights and bias take.
        return (next_layer.kind == "batchnorm" and not self.has_bias
                and self.activation == "identity")

    def stats_buffer(self, batch_size):
        """The training array (batch, F, 2) that the forward pass fills with
        each output plane's sum and squared deviations for the batch norm
        it feeds (``forward``'s ``stats``)."""
        return self._buffer("stats", (batch_size, self.out_shape[0], 2),
                            np.float64, True)

    def to_onnx(self, graph, x):
        weight = graph.constant("conv_w", self.weight)
        bias = graph.constant("conv_b", self.bias if self.has_bias else
                              np.zeros(self.weight.shape[0]))
        ph, pw = self.padding
        x = graph.node("Conv", [x, weight, bias], "conv",
                       kernel_shape=list(self.kernel_size),
                       strides=list(self.stride), pads=[ph, pw, ph, pw])
        return graph.activation(x, self.activation)

    def describe(self):
        f, c, kh, kw = self.weight.shape
        text = f"conv {f}@{kh}x{kw}"
        if self.stride != (1, 1):
            text += f" stride {self.stride[0]}x{self.stride[1]}"
        if self.padding != (0, 0):
            text += f" pad {self.padding[0]}x{self.padding[1]}"
        if not self.has_bias:
            return f"{text}, no bias"
        return f"{text}, {self.activation}"

    @property
    def bias(self):
        return self._params[1] if self.has_bias else None

    def forward(self, x, training, pool=None, fold=None, stats=None):
        """The activated output; with ``pool``, the max-pooling layer that
        follows (non-overlapping windows), that layer's output instead,
        computed in the same pass (the network runs the two this way). With
        ``fold`` (prediction only), the batch norm that follows, folded into
        the weights and bias, and its activation. ``stats`` (training, before
        a batch norm): a float64 (N, F, 2) array that receives each output
        plane's sum and squared deviations, taken in the same pass."""
        weight, bias, activation = self.weight, self.bias, self.activation
        if fold is not None:
            weight, bias = fold.folded(weight)
            activation = fold.activation
        if pool is None:
            out = self._buffer("y", (x.shape[0],) + self.out_shape, x.dtype,
                               training)
            argmax = None
        else:
            shape = (x.shape[0],) + pool.out_shape
            out = self._buffer("pooled", shape, x.dtype, training)
            argmax = self._buffer("argmax", shape, np.intc, training)
        # In training the implementation may keep work for the backward
        # pass (im2col's unfolding) in arrays this layer lends it.
        y, argmax, saved = _dispatch.conv_forward(
            x, weight, bias, self.stride, self.padding,
            self.n_threads, activation, out=out,
            pool=None if pool is None else pool.size, argmax=argmax,
            buffer=self._lend if training else None,
            implementation=self._implementation(x.dtype, x.shape[0]),
            geometry=self.geometry, stats=stats)
        # After a pooled pass, y and argmax are the pooled output and its
        # argmax, all that the backward pass needs.
        if training:
            self._x, self._y, self._saved, self._argmax = x, y, saved, argmax
        return y

    def backward(self, dy):
        dx = None
        if self.input_grad:
            dx = self._buffer("dx", self._x.shape, self._x.dtype, True)
        dbias = (self._grads[1] if self.has_bias else
                 self._buffer("dbias", self.weight.shape[:1], self.weight.dtype,
                              True))
        dx, _, _ = _dispatch.conv_backward(
            np.ascontiguousarray(dy), self._x, self.weight, self.stride,
            self.padding, self.input_grad, self.n_threads, self.activation,
            self._y, saved=self._saved, dx=dx, dweight=self._grads[0],
            dbias=dbias, argmax=self._argmax,
            implementation=self._implementation(self._x.dtype,
                                                self._x.shape[0]),
            geometry=self.geometry)
        return dx


@register_layer(_spec.BatchNormSpec)
class BatchNorm2D(Layer):
    """Batch normalisation of each feature map, then the activation (fused
    into the same compiled pass).

    Training normalises each channel with the batch's mean and variance over
    samples and positions, then scales by ``gamma`` and shifts by ``beta``
    (learned); prediction uses running statistics, updated in training as
    ``running = (1 - MOMENTUM) * running + MOMENTUM * batch`` (the variance
    unbiased), as PyTorch's ``BatchNorm2d`` does. The running statistics are
    stored with the parameters (``params[2:]``) so that pickling, ``save``
    and ``load`` carry them, but they are not trained: their gradients stay
    zero, which leaves them unchanged under SGD and Adam alike, and no weight
    decay applies to this layer.
    """

    MOMENTUM = 0.1
    EPS = 1e-5
    decay = False
    uses_sample_weight = True

    def __init__(self, spec, rng, dtype):
        super().__init__(spec)
        c = spec.in_shape[0]
        self.activation = spec.activation
        self.bind([np.ones(c, dtype), np.zeros(c, dtype), np.zeros(c, dtype),
                   np.ones(c, dtype)])

    def to_onnx(self, graph, x):
        gamma, beta, mean, var = (graph.constant(n, p) for n, p in zip(
            ("bn_scale", "bn_bias", "bn_mean", "bn_var"), self.params))
        x = graph.node("BatchNormalization", [x, gamma, beta, mean, var], "bn",
                       epsilon=float(self.EPS))
        return graph.activation(x, self.activation)

    def describe(self):
        return f"batch-norm, {self.activation}"

    def n_params(self):
        return 2 * self.out_shape[0]     # gamma and beta; not the statistics

    def _scale_shift(self):
        """The prediction-time map x * scale + shift per channel, in float64."""
        gamma, beta, running_mean, running_var = self._params
        scale = gamma / np.sqrt(running_var.astype(np.float64) + self.EPS)
        return scale, beta - running_mean * scale

    def folded(self, weight):
        """The weight (F, C, KH, KW) and bias of the convolution before this
        layer with this layer's prediction-time map folded in."""
        scale, shift = self._scale_shift()
        return ((weight * scale[:, None, None, None]).astype(weight.dtype),
                shift.astype(weight.dtype))

    def fuses_with(self, next_layer):
        # Max pooling (windows that never overlap) runs in the training
        # pass, as after a convolution: bit-identical to the layers in turn.
        return next_layer.kind == "pool" and next_layer.pool_kind == "max"

    def forward(self, x, training, sample_weight=None, pool=None, stats=None):
        """``sample_weight`` (training): the batch's weights, so that a
        weight of 2 counts a sample twice in the statistics too. With
        ``pool``, the max-pooling layer that follows, that layer's output
        instead (in training computed in the same pass). ``stats``
        (training): each plane's sum and squared deviations, taken by the
        convolution before (then x is read once, not three times)."""
        gamma, beta, running_mean, running_var = self._params
        if not training:
            scale, shift = self._scale_shift()
            y = _dispatch.bn_forward_scale(x, scale.astype(x.dtype),
                                      shift.astype(x.dtype), self.n_threads,
                                      self.activation,
                                      out=self._buffer("y", x.shape, x.dtype, False))
            return y if pool is None else pool.forward(y, False)
        argmax = None
        if pool is None:
            out = self._buffer("y", x.shape, x.dtype, True)
        else:
            shape = (x.shape[0],) + pool.out_shape
            out = self._buffer("pooled", shape, x.dtype, True)
            argmax = self._buffer("argmax", shape, np.intc, True)
        y, mean, var, invstd = _dispatch.bn_forward_train(
            x, gamma, beta, self.EPS, self.n_threads, self.activation, out=out,
            weights=sample_weight, pool=None if pool is None else pool.size,
            argmax=argmax, stats=stats)
        # The running variance is unbiased (over the weighted count).
        m = (x.size // x.shape[0] // x.shape[1]) * (
            x.shape[0] if sample_weight is None else float(np.sum(sample_weight)))
        if m > 1:
            var *= m / (m - 1)
        running_mean *= 1 - self.MOMENTUM
        running_mean += (self.MOMENTUM * mean).astype(x.dtype)
        running_var *= 1 - self.MOMENTUM
        running_var += (self.MOMENTUM * var).astype(x.dtype)
        self._saved = (x, y, mean, invstd, sample_weight, argmax)
        return y

    def backward(self, dy):
        x, y, mean, invstd, sample_weight, argmax = self._saved
        dx = self._buffer("dx", x.shape, x.dtype, True)
        dx, _, _ = _dispatch.bn_backward(np.ascontiguousarray(dy), x, y,
                                    self._params[0], mean, invstd,
                                    self.n_threads, self.activation, dx=dx,
                                    dgamma=self._grads[0], dbeta=self._grads[1],
                                    weights=sample_weight, argmax=argmax)
        return dx


@register_layer(_spec.PoolSpec)
class Pool2D(Layer):
    """Pooling: each (KH, KW) window of each feature map condensed to one
    value (max, L2 norm or mean), windows not overlapping."""


    def __init__(self, spec, rng, dtype):
        super().__init__(spec)
        self.pool_kind = spec.pool_kind
        self.size = tuple(spec.size)

    # The ONNX operator of each pooling kind, and its attributes.
    ONNX_OPS = {"max": ("MaxPool", {}), "l2": ("LpPool", {"p": 2}),
                "avg": ("AveragePool", {})}

    def to_onnx(self, graph, x):
        op, attrs = self.ONNX_OPS[self.pool_kind]
        return graph.node(op, [x], "pool", kernel_shape=list(self.size),
                          strides=list(self.size), **attrs)

    def describe(self):
        return f"{self.pool_kind}-pool {self.size[0]}x{self.size[1]}"

    def forward(self, x, training):
        shape = (x.shape[0],) + self.out_shape
        out = self._buffer("y", shape, x.dtype, training)
        argmax = None
        if self.pool_kind == "max":
            argmax = self._buffer("argmax", shape, np.intc, training)
        y, cache = _dispatch.pool_forward(x, self.pool_kind, self.size, self.size,
                                     self.n_threads, out=out, argmax=argmax)
        if training:
            self._saved = (x, y, cache)
        return y

    def backward(self, dy):
        if not self.input_grad:     # pooling the input image
            return None
        x, y, cache = self._saved
        dx = self._buffer("dx", x.shape, x.dtype, True)
        return _dispatch.pool_backward(np.ascontiguousarray(dy), x, y, cache,
                                  self.pool_kind, self.size, self.size,
                                  self.n_threads, dx=dx)


@register_layer(_spec.GlobalAvgPoolSpec)
class GlobalAvgPool2D(Layer):
    """Global average pooling: each feature map to its mean, (C, H, W) ->
    (C, 1, 1). It is average pooling whose one window is the whole map, and
    runs on that compiled kernel (forward: the mean; backward: each value's
    gradient is the map's gradient over H * W)."""

    def __init__(self, spec, rng=None, dtype=None):
        super().__init__(spec)
        self.window = tuple(spec.in_shape[1:])

    def to_onnx(self, graph, x):
        return graph.node("GlobalAveragePool", [x], "gap")

    def describe(self):
        return "global avg-pool"

    def forward(self, x, training):
        shape = (x.shape[0],) + self.out_shape
        y, _ = _dispatch.pool_forward(x, "avg", self.window, self.window,
                                      self.n_threads,
                                      out=self._buffer("y", shape, x.dtype, training))
        if training:
            self._x = x
        return y

    def backward(self, dy):
        if not self.input_grad:
            return None
        x = self._x
        dx = self._buffer("dx", x.shape, x.dtype, True)
        return _dispatch.pool_backward(np.ascontiguousarray(dy), x, None, None, "avg",
                                       self.window, self.window, self.n_threads, dx=dx)


@register_layer(_spec.FlattenSpec)
class Flatten(Layer):

    def to_onnx(self, graph, x):
        return graph.node("Flatten", [x], "flatten", axis=1)

    def forward(self, x, training):
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        return dy.reshape((dy.shape[0],) + self.in_shape)


@register_layer(_spec.DenseSpec)
class Dense(Layer):
    """Fully connected: y = x @ W + b, W of shape (n_in, n_out)."""

    weight_layer = True

    def __init__(self, spec, rng, dtype):
        # He for ReLU hidden layers, N(0, 1/n_in) for the others and for
        # the output.
        super().__init__(spec)
        (n_in,), n_out = spec.in_shape, spec.n_out
        weight = rng.normal(0.0, np.sqrt(_activations.get(spec.activation).init_scale
                                         / n_in), (n_in, n_out)).astype(dtype)
        self.bind([weight, np.zeros(n_out, dtype=dtype)])

    def to_onnx(self, graph, x):
        product = graph.node("MatMul", [x, graph.constant("dense_w", self.weight)],
                             "matmul")
        return graph.node("Add", [product, graph.constant("dense_b", self.bias)],
                          "dense")

    def describe(self):
        return f"dense {self.weight.shape[1]}"

    def forward(self, x, training):
        if training:
            self._x = x
        y = self._buffer("y", (x.shape[0], self.weight.shape[1]), x.dtype, training)
        _dispatch.matmul(x, self.weight, y, self.n_threads)
        y += self.bias
        return y

    def backward(self, dy):
        _dispatch.matmul(self._x.T, dy, self._grads[0], self.n_threads)
        np.sum(dy, axis=0, out=self._grads[1])
        if not self.input_grad:
            return None
        dx = self._buffer("dx", self._x.shape, dy.dtype, True)
        return _dispatch.matmul(dy, self.weight.T, dx, self.n_threads)


@register_layer(_spec.ActivationSpec)
class Activation(Layer):

    def to_onnx(self, graph, x):
        return graph.activation(x, self.name)

    def __init__(self, spec, rng=None, dtype=None):
        super().__init__(spec)
        self.name = spec.name

    def describe(self):
        return self.name

    def forward(self, x, training):
        y = _activations.get(self.name).forward(x)
        if training:
            self._y = y
        return y

    def backward(self, dy):
        return _activations.get(self.name).backward(dy, self._y)


@register_layer(_spec.DropoutSpec)
class Dropout(Layer):
    """Inverted dropout: in training, each unit is zeroed with probability
    ``rate`` and the survivors scaled by 1 / (1 - rate), so that nothing
    changes at prediction time."""


    def __init__(self, spec, rng, dtype=None):
        super().__init__(spec)
        self.rate = spec.rate
        self.rng = rng

    def to_onnx(self, graph, x):
        return x        # the identity at prediction time

    def describe(self):
        return f"dropout {self.rate:g}"

    def forward(self, x, training):
        if not training or self.rate == 0:
            self._mask = None
            return x
        keep = self.rng.random_sample(x.shape) >= self.rate
        self._mask = keep.astype(x.dtype) / x.dtype.type(1 - self.rate)
        return x * self._mask

    def backward(self, dy):
        return dy if self._mask is None else dy * self._mask
