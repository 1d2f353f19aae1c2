"""The network: a chain of layers with a softmax output and the
log-likelihood (cross-entropy) cost.

``plan_network`` turns the estimator's hyperparameters into the shapes of
every layer for a given image shape, shrinking any kernel or pooling window
that is larger than its input (so the defaults work on 8x8 digits, 28x28
images and plain tabular rows alike), and allocates nothing;
``build_network`` instantiates a plan.
"""
import numpy as np
from scipy.special import expit

from . import _geometry
from ._layers import (Activation, BatchNorm2D, Conv2D, Dense, Dropout,
                      Flatten, Pool2D)

# Variance scale of the initial weights: He initialisation for ReLU,
# N(0, 1/n_in) for sigmoid and tanh (and for the softmax output).
INIT_SCALE = {"relu": 2.0, "sigmoid": 1.0, "tanh": 1.0, "identity": 1.0}

# MLPClassifier's name for the sigmoid.
ALIASES = {"logistic": "sigmoid"}


def plan_network(image_shape, n_classes, conv_layers, padding, pooling,
                 pool_size, hidden_layer_sizes, activation, dropout,
                 itemsize=4, batch_norm=False, n_threads=1):
    """The architecture for images of shape (C, H, W) and ``n_classes``
    outputs, worked out without allocating anything: a list of
    ``(kind, arguments, parameter shapes)``, one per layer.

    ``padding`` is "valid" (no padding) or "same" (``(k - 1) // 2`` zeros on
    each side, which keeps the size for odd kernels at stride 1). Every
    convolution's sizes are checked against the kernels' limits here (with
    the im2col workspaces of a backward pass on ``n_threads`` threads), so
    ``load`` can check a file's arrays against the plan before it allocates
    a network, and ``fit`` refuses an impossible layer before drawing a
    weight.

    With ``batch_norm`` each convolution loses its bias and is followed by a
    batch-norm layer that applies the activation.
    """
    plan = []
    shape = tuple(int(v) for v in image_shape)
    activation = ALIASES.get(activation, activation)
    for number, spec in enumerate(conv_layers, 1):
        n_filters = int(spec[0])
        kernel = _geometry.pair(spec[1], "kernel_size")
        stride = _geometry.pair(spec[2], "stride") if len(spec) > 2 else (1, 1)
        geometry = _geometry.ConvGeometry.fit(shape, n_filters, kernel, stride,
                                              padding)
        # The backward pass's two im2col-sized buffers per thread.
        geometry.check(itemsize, 2 * n_threads, what=f"conv layer {number}")
        conv = dict(in_shape=shape, n_filters=n_filters,
                    kernel_size=geometry.kernel, stride=stride,
                    padding=geometry.padding, activation=activation,
                    bias=not batch_norm)
        plan.append(("conv", conv, [geometry.weight_shape]
                     + ([] if batch_norm else [(n_filters,)])))
        shape = geometry.out_shape
        if batch_norm:
            plan.append(("batchnorm", dict(in_shape=shape, activation=activation),
                         [(n_filters,)] * 4))
        size = None if pooling is None else _geometry.fit_pool(
            shape, _geometry.pair(pool_size, "pool_size"))
        if size is not None:
            plan.append(("pool", dict(in_shape=shape, kind=pooling, size=size), []))
            shape = _geometry.pool_output_shape((1,) + shape, size, size)[1:]
    plan.append(("flatten", dict(in_shape=shape), []))
    n_in = int(np.prod(shape, dtype=object))
    for number, n_out in enumerate(hidden_layer_sizes, 1):
        n_out = int(n_out)
        _geometry.check_dense(n_in, n_out, what=f"dense layer {number}")
        plan.append(("dense", dict(n_in=n_in, n_out=n_out, activation=activation),
                     [(n_in, n_out), (n_out,)]))
        plan.append(("activation", dict(in_shape=(n_out,), name=activation), []))
        if dropout > 0:
            plan.append(("dropout", dict(in_shape=(n_out,), rate=dropout), []))
        n_in = n_out
    _geometry.check_dense(n_in, n_classes, what="the output layer")
    plan.append(("dense", dict(n_in=n_in, n_out=n_classes, activation=None),
                 [(n_in, n_classes), (n_classes,)]))
    # The parameters, their gradients and up to two optimizer moments are
    # each one flat array of this size; a network that cannot hold them is
    # refused before a weight is drawn (``load`` checks a file's plan here
    # too, before it allocates anything).
    n_params = sum(int(np.prod(s, dtype=object)) for s in param_shapes(plan))
    _geometry.check_workspace(4 * n_params * itemsize,
                         f"the network's {n_params:,} parameters (with their "
                         "gradients and the optimizer's state)")
    return plan


def plan_rows(plan):
    """(name, kind, output shape of one sample) of each planned layer."""
    rows = []
    for i, (kind, args, _) in enumerate(plan):
        if kind == "dense":
            out = (args["n_out"],)
        elif kind == "flatten":
            out = (int(np.prod(args["in_shape"], dtype=object)),)
        elif kind in ("activation", "dropout"):
            out = args["in_shape"]
        else:               # conv, batchnorm, pool: the next layer's input
            out = plan[i + 1][1]["in_shape"]
        rows.append((kind, kind, out))
    return rows


def check_batch(rows, batch_size, itemsize, training):
    """Refuse a batch that layers ``rows`` (name, kind, output shape) cannot
    run, before any kernel does.

    Every layer's output (and, in training, its gradient) is one array of
    ``batch_size`` samples: a layer whose arrays, or a network whose arrays
    together, would not fit in the machine's memory is a ValueError naming
    the layer and the GiB it needs. In training, batch norm needs more than
    one value per feature map (a single value normalises to exactly zero
    and its gradient vanishes: PyTorch refuses it too).
    """
    per_value = itemsize * (2 if training else 1)
    sizes = [batch_size * int(np.prod(out, dtype=object)) * per_value
             for _, _, out in rows]
    biggest = int(np.argmax(sizes))
    what = f"layer {biggest + 1} ({rows[biggest][0]}) on a batch of {batch_size}"
    _geometry.check_workspace(sizes[biggest], what)
    _geometry.check_workspace(sum(sizes), f"the network's layers (the largest: {what})")
    if not training:
        return
    for number, (name, kind, out) in enumerate(rows, 1):
        if kind == "batchnorm" and batch_size * out[1] * out[2] < 2:
            raise ValueError(
                f"batch norm needs more than one value per feature map in each "
                f"training batch, but layer {number} ({name}) has {out[1]}x"
                f"{out[2]} maps and a batch holds {batch_size} sample: use a "
                "batch_size of 2 or more (one that does not leave a last batch "
                "of 1 sample), fewer pooling layers, or batch_norm=False")


def param_shapes(plan):
    """The shapes of a plan's parameters, in the order the network holds them."""
    return [shape for _, _, shapes in plan for shape in shapes]


def build_network(plan, input_shape, rng, dtype, out_activation="softmax"):
    """Instantiate a plan: the layers, their initial weights drawn from
    ``rng`` in layer order, and the network that owns them, ending in a
    softmax over classes or (``"logistic"``) a sigmoid per label."""
    layers = []
    for kind, args, _ in plan:
        if kind == "conv":
            # A convolution without bias is followed by batch norm, which
            # applies the activation; the initial scale is the activation's
            # all the same.
            act = args["activation"]
            layers.append(Conv2D(args["in_shape"], args["n_filters"],
                                 args["kernel_size"], args["stride"],
                                 args["padding"], act if args["bias"] else "identity",
                                 INIT_SCALE[act], rng, dtype, bias=args["bias"]))
        elif kind == "batchnorm":
            layers.append(BatchNorm2D(args["in_shape"], args["activation"], dtype))
        elif kind == "pool":
            layers.append(Pool2D(args["in_shape"], args["kind"], args["size"]))
        elif kind == "flatten":
            layers.append(Flatten(args["in_shape"]))
        elif kind == "dense":
            # He for ReLU hidden layers, N(0, 1/n_in) for the others and for
            # the output.
            scale = 1.0 if args["activation"] is None else INIT_SCALE[args["activation"]]
            layers.append(Dense(args["n_in"], args["n_out"], scale, rng, dtype))
        elif kind == "activation":
            layers.append(Activation(args["in_shape"], args["name"]))
        else:
            layers.append(Dropout(args["in_shape"], args["rate"], rng))
    layers[0].input_grad = False
    return Network(tuple(input_shape), layers, out_activation)


def _log_softmax(scores):
    """Row-wise log-softmax, stable for large scores; a new array.

    Plain numpy: scipy's logsumexp costs ~0.3 ms a call in argument handling,
    more than the whole loss at batch 10.
    """
    shifted = scores - scores.max(axis=1, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return shifted


class Network:
    """A chain of layers ending in raw scores; on top, either a softmax and
    the log-likelihood of the class (``out_activation="softmax"``), or a
    sigmoid per label and the binary cross-entropy summed over the labels
    (``"logistic"``, multi-label), as in MLPClassifier.

    The network owns every parameter: ``flat_params`` is one 1-D array that
    holds them all, ``flat_grads`` one of the same size for their gradients.
    Each layer's ``params`` and ``grads`` are views into these two, so an
    optimizer step is one vectorised pass over two arrays, and there is one
    owner per parameter. Pickling stores the flat array once (the layers drop
    their views) and unpickling binds the views again, so a model restored by
    pickle or joblib still trains the arrays it predicts with.
    """

    def __init__(self, input_shape, layers, out_activation="softmax"):
        if out_activation not in ("softmax", "logistic"):
            raise ValueError(f"out_activation must be softmax or logistic, got "
                             f"{out_activation!r}")
        self.input_shape = input_shape
        self.layers = layers
        self.out_activation = out_activation
        initial = [p for layer in layers for p in layer.params]
        self.dtype = initial[0].dtype
        self.flat_params = np.concatenate([p.ravel() for p in initial])
        self.flat_grads = np.zeros_like(self.flat_params)
        self.n_threads = 1
        self._bind()

    def _bind(self):
        offset = 0
        params, grads = [], []
        for layer in self.layers:
            shapes = layer.shapes
            views_p, views_g = [], []
            for shape in shapes:
                size = int(np.prod(shape))
                views_p.append(self.flat_params[offset:offset + size].reshape(shape))
                views_g.append(self.flat_grads[offset:offset + size].reshape(shape))
                offset += size
            if shapes:
                layer.bind(views_p, views_g)
            params += views_p
            grads += views_g
        if offset != self.flat_params.size:
            raise ValueError(
                f"the layers need {offset} parameters, the network holds "
                f"{self.flat_params.size}")
        self._param_list, self._grad_list = params, grads

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items()
                if k not in ("_param_list", "_grad_list", "flat_grads",
                             "_stage_list")}

    def __setstate__(self, state):
        state.setdefault("out_activation", "softmax")
        state.setdefault("n_threads", 1)
        self.__dict__.update(state)
        self.flat_grads = np.zeros_like(self.flat_params)
        self._bind()

    @property
    def params(self):
        """The parameters, layer by layer: views of ``flat_params``."""
        return self._param_list

    @property
    def grads(self):
        return self._grad_list

    def set_threads(self, n_threads):
        """The threads of every layer's kernels (and of the optimizer step,
        which reads ``n_threads``)."""
        self.n_threads = n_threads
        for layer in self.layers:
            layer.n_threads = n_threads

    def summary(self):
        """One dict per layer: kind, description, output shape, parameters."""
        rows = [{"layer": "input", "kind": "input",
                 "output_shape": self.input_shape, "n_params": 0}]
        for layer in self.layers:
            rows.append({
                "layer": layer.describe(),
                "kind": layer.kind,
                "output_shape": tuple(int(s) for s in layer.out_shape),
                "n_params": layer.n_params(),
            })
        rows.append({"layer": "softmax" if self.out_activation == "softmax" else
                     "sigmoid per label", "kind": self.out_activation,
                     "output_shape": rows[-1]["output_shape"], "n_params": 0})
        return rows

    def check_batch(self, batch_size, training):
        """``check_batch`` for this network's layers."""
        check_batch([(layer.describe(), layer.kind, layer.out_shape)
                     for layer in self.layers], batch_size, self.dtype.itemsize,
                    training)

    def largest_output(self):
        """Values in the largest layer output of one sample."""
        return max(int(np.prod(layer.out_shape, dtype=object)) for layer in self.layers)

    def _stages(self):
        """The layers as they run, as (layer, pooling layer or None): a
        convolution followed by max pooling (whose windows never overlap) is
        one stage, run by the convolution's kernel in one pass, so that the
        convolution's full output and its gradient never reach memory; the
        results are bit-identical to running the two layers in turn. Worked
        out once from the layers (which never change) and kept, not
        pickled."""
        stages = self.__dict__.get("_stage_list")
        if stages is not None:
            return stages
        stages, layers, i = [], self.layers, 0
        while i < len(layers):
            layer = layers[i]
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if (layer.kind == "conv" and nxt is not None and nxt.kind == "pool"
                    and nxt.pool_kind == "max"):
                stages.append((layer, nxt))
                i += 2
            else:
                stages.append((layer, None))
                i += 1
        self._stage_list = stages
        return stages

    def forward(self, x, training=False, sample_weight=None):
        for layer, pool in self._stages():
            if pool is not None:
                x = layer.forward(x, training, pool=pool)
            elif layer.uses_sample_weight:
                x = layer.forward(x, training, sample_weight)
            else:
                x = layer.forward(x, training)
        return x

    def predict_log_proba(self, x):
        scores = self.forward(x, training=False)
        if self.out_activation == "logistic":
            return -np.logaddexp(0, -scores)       # log sigmoid, stable
        return _log_softmax(scores)

    def train_step_grads(self, x, y, sample_weight, alpha):
        """Forward and backward on one batch; fills each layer's grads.

        ``y`` holds class indices, or for a multi-label network the
        (n, n_labels) 0/1 matrix. The cost is the weighted mean
        log-likelihood loss ``-sum_i w_i log p_i[y_i] / sum_i w_i`` (for
        multi-label, ``-sum_i w_i sum_k [y_ik log p_ik + (1 - y_ik) log(1 -
        p_ik)] / sum_i w_i``) plus
        ``alpha / 2 * ||weights||^2 / sum_i w_i`` (scikit-learn's MLP uses
        the batch size where the weights sum is used here; the two agree for
        unit weights, and the sum makes a weight of 2 mean "this sample
        twice"). Returns the cost.
        """
        scores = self.forward(x, training=True, sample_weight=sample_weight)
        total = float(sample_weight.sum())
        if self.out_activation == "logistic":
            # -[y log s(z) + (1 - y) log(1 - s(z))] = log(1 + e^z) - y z, and
            # d/dz = s(z) - y.
            y = y.astype(scores.dtype, copy=False)
            per_sample = (np.logaddexp(0, scores) - y * scores).sum(axis=1)
            loss = float(np.dot(sample_weight, per_sample)) / total
            dy = expit(scores)
            dy -= y
        else:
            log_p = _log_softmax(scores)
            rows = np.arange(len(y))
            loss = -float(np.dot(sample_weight, log_p[rows, y])) / total
            # d loss / d scores = w_i (softmax - onehot) / sum w
            dy = np.exp(log_p, out=log_p)
            dy[rows, y] -= 1
        dy *= (sample_weight / total).astype(dy.dtype)[:, None]
        for layer, _ in reversed(self._stages()):
            dy = layer.backward(dy)
        if alpha:
            penalty = 0.0
            for layer in self.layers:
                if layer.params and layer.decay:
                    w = layer.params[0]
                    penalty += float(np.dot(w.ravel(), w.ravel()))
                    layer.grads[0] += w.dtype.type(alpha / total) * w
            loss += 0.5 * alpha * penalty / total
        return loss
