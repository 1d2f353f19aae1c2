"""The network: a chain of layers with a softmax output and the
log-likelihood (cross-entropy) cost.

``build_network`` turns the estimator's hyperparameters into layers for a
given image shape, shrinking any kernel or pooling window that is larger than
its input (so the defaults work on 8x8 digits, 28x28 images and plain tabular
rows alike).
"""
import numpy as np

from ._layers import Activation, Conv2D, Dense, Dropout, Flatten, Pool2D

# Variance scale of the initial weights: He initialisation for ReLU,
# N(0, 1/n_in) for sigmoid and tanh (and for the softmax output).
INIT_SCALE = {"relu": 2.0, "sigmoid": 1.0, "tanh": 1.0, "identity": 1.0}

# MLPClassifier's name for the sigmoid.
ALIASES = {"logistic": "sigmoid"}


def _pair(v):
    return (int(v), int(v)) if np.ndim(v) == 0 else (int(v[0]), int(v[1]))


def build_network(image_shape, n_classes, conv_layers, padding, pooling,
                  pool_size, hidden_layer_sizes, activation, dropout, rng,
                  dtype):
    """Layers for images of shape (C, H, W) and ``n_classes`` outputs.

    ``padding`` is "valid" (no padding) or "same" (``(k - 1) // 2`` zeros on
    each side, which keeps the size for odd kernels at stride 1).
    """
    layers = []
    shape = tuple(image_shape)
    activation = ALIASES.get(activation, activation)
    scale = INIT_SCALE[activation]
    for number, spec in enumerate(conv_layers, 1):
        n_filters, kernel = int(spec[0]), _pair(spec[1])
        stride = _pair(spec[2]) if len(spec) > 2 else (1, 1)
        pad = (0, 0)
        if padding == "same":
            # Shrink an oversized kernel to the smallest odd size that still
            # covers the whole input: the padding stays symmetric, the image
            # keeps its size, and every position still sees every pixel.
            kernel = tuple(k if k <= s else s + 1 - s % 2
                           for k, s in zip(kernel, shape[1:]))
            pad = ((kernel[0] - 1) // 2, (kernel[1] - 1) // 2)
        else:
            kernel = (min(kernel[0], shape[1]), min(kernel[1], shape[2]))
        conv = Conv2D(shape, n_filters, kernel, stride, pad, activation, scale,
                      rng, dtype, name=f"conv layer {number}")
        layers.append(conv)
        shape = conv.out_shape
        if pooling is not None:
            size = _pair(pool_size)
            size = (min(size[0], shape[1]), min(size[1], shape[2]))
            if size != (1, 1):
                pool = Pool2D(shape, pooling, size)
                layers.append(pool)
                shape = pool.out_shape
    layers.append(Flatten(shape))
    n_in = layers[-1].out_shape[0]
    for n_out in hidden_layer_sizes:
        layers.append(Dense(n_in, int(n_out), scale, rng, dtype))
        layers.append(Activation((int(n_out),), activation))
        if dropout > 0:
            layers.append(Dropout((int(n_out),), dropout, rng))
        n_in = int(n_out)
    layers.append(Dense(n_in, n_classes, 1.0, rng, dtype))
    layers[0].input_grad = False
    return Network(tuple(image_shape), layers)


def _log_softmax(scores):
    """Row-wise log-softmax, stable for large scores; a new array.

    Plain numpy: scipy's logsumexp costs ~0.3 ms a call in argument handling,
    more than the whole loss at batch 10.
    """
    shifted = scores - scores.max(axis=1, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return shifted


class Network:
    """A chain of layers ending in raw scores; softmax and the loss on top.

    The network owns every parameter: ``flat_params`` is one 1-D array that
    holds them all, ``flat_grads`` one of the same size for their gradients.
    Each layer's ``params`` and ``grads`` are views into these two, so an
    optimizer step is one vectorised pass over two arrays, and there is one
    owner per parameter. Pickling stores the flat array once (the layers drop
    their views) and unpickling binds the views again, so a model restored by
    pickle or joblib still trains the arrays it predicts with.
    """

    def __init__(self, input_shape, layers):
        self.input_shape = input_shape
        self.layers = layers
        initial = [p for layer in layers for p in layer.params]
        self.dtype = initial[0].dtype
        self.flat_params = np.concatenate([p.ravel() for p in initial])
        self.flat_grads = np.zeros_like(self.flat_params)
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
                if k not in ("_param_list", "_grad_list", "flat_grads")}

    def __setstate__(self, state):
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
        rows.append({"layer": "softmax", "kind": "softmax",
                     "output_shape": rows[-1]["output_shape"], "n_params": 0})
        return rows

    def forward(self, x, training=False):
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def predict_log_proba(self, x):
        return _log_softmax(self.forward(x, training=False))

    def train_step_grads(self, x, y, sample_weight, alpha):
        """Forward and backward on one batch; fills each layer's grads.

        The cost is the weighted mean log-likelihood loss
        ``-sum_i w_i log p_i[y_i] / sum_i w_i`` plus
        ``alpha / 2 * ||weights||^2 / sum_i w_i`` (scikit-learn's MLP uses
        the batch size where the weights sum is used here; the two agree for
        unit weights, and the sum makes a weight of 2 mean "this sample
        twice"). Returns the cost.
        """
        scores = self.forward(x, training=True)
        log_p = _log_softmax(scores)
        total = float(sample_weight.sum())
        rows = np.arange(len(y))
        loss = -float(np.dot(sample_weight, log_p[rows, y])) / total
        # d loss / d scores = w_i (softmax - onehot) / sum w
        dy = np.exp(log_p, out=log_p)
        dy[rows, y] -= 1
        dy *= (sample_weight / total).astype(dy.dtype)[:, None]
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        if alpha:
            penalty = 0.0
            for layer in self.layers:
                if layer.params:
                    w = layer.params[0]
                    penalty += float(np.dot(w.ravel(), w.ravel()))
                    layer.grads[0] += w.dtype.type(alpha / total) * w
            loss += 0.5 * alpha * penalty / total
        return loss
