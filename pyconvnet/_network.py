"""The network: a chain of layers with a softmax output and the
log-likelihood (cross-entropy) cost, or a sigmoid per label.

``build_network`` instantiates a network spec (``_spec.build_spec`` works
one out from the hyperparameters); ``check_batch`` refuses a batch the
layers could not hold.
"""
import numpy as np

from . import _geometry, _losses
from ._layers import build_layers


def check_batch(spec, batch_size, itemsize, training, names=None):
    """Refuse a batch that the layers of network ``spec`` cannot run, before
    any kernel does (``names``: each layer's name for the messages).

    Every layer's output (and, in training, its gradient) is one array of
    ``batch_size`` samples: a layer whose arrays, or a network whose arrays
    together, would not fit in the machine's memory is a ValueError naming
    the layer and the GiB it needs. In training, each layer's own rule
    applies too (``LayerSpec.training_batch_problem``: batch norm needs more
    than one value per feature map).
    """
    names = names or [layer.kind for layer in spec.layers]
    per_value = itemsize * (2 if training else 1)
    sizes = [batch_size * int(np.prod(layer.out_shape, dtype=object)) * per_value
             for layer in spec.layers]
    biggest = int(np.argmax(sizes))
    what = f"layer {biggest + 1} ({names[biggest]}) on a batch of {batch_size}"
    _geometry.check_workspace(sizes[biggest], what)
    _geometry.check_workspace(sum(sizes), f"the network's layers (the largest: {what})")
    if training:
        _check_training_batch(spec, batch_size, names)


def _check_training_batch(spec, batch_size, names, why=""):
    """Each layer's rule for a training batch of ``batch_size`` samples
    (``LayerSpec.training_batch_problem``); ``why`` ends the message."""
    for number, (name, layer) in enumerate(zip(names, spec.layers), 1):
        problem = layer.training_batch_problem(batch_size)
        if problem:
            raise ValueError(problem.format(layer=f"layer {number} ({name})") + why)


def build_network(spec, rng, dtype):
    """Instantiate a network spec: the layers, their initial weights drawn
    from ``rng`` in layer order, and the network that owns them."""
    layers = build_layers(spec, rng, dtype)
    layers[0].input_grad = False
    network = Network(tuple(spec.input_shape), layers, spec.head)
    network.spec = spec
    return network


class Network:
    """A chain of layers ending in raw scores, and the loss on top
    (``_losses``: ``out_activation`` names it, "softmax", "logistic" or
    "identity").

    The network owns every parameter: ``flat_params`` is one 1-D array that
    holds them all, ``flat_grads`` one of the same size for their gradients.
    Each layer's ``params`` and ``grads`` are views into these two, so an
    optimizer step is one vectorised pass over two arrays, and there is one
    owner per parameter. Pickling stores the flat array once (the layers drop
    their views) and unpickling binds the views again, so a model restored by
    pickle or joblib still trains the arrays it predicts with.
    """

    def __init__(self, input_shape, layers, out_activation="softmax"):
        _losses.get(out_activation)
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
                             "_stage_list", "_inference_stage_list",
                             "_batches_checked")}

    def __setstate__(self, state):
        state.setdefault("out_activation", "softmax")
        state.setdefault("n_threads", 1)
        self.__dict__.update(state)
        self.flat_grads = np.zeros_like(self.flat_params)
        self._bind()
        if "spec" in self.__dict__:
            self.give_layers_their_specs()

    def give_layers_their_specs(self):
        """Layers pickled before they kept their spec take it from the
        network's (``spec``)."""
        for layer, layer_spec in zip(self.layers, self.spec.layers):
            layer.__dict__.setdefault("spec", layer_spec)

    def decayed_slices(self):
        """Where in ``flat_params`` the weights that weight decay applies
        to lie (each layer's ``params[0]`` where ``decay``), as slices: the
        L2 penalty's weights, which AdamW decays in its step instead.
        Worked out once (the layers never change)."""
        out = self.__dict__.get("_decayed")
        if out is None:
            out, offset = [], 0
            for layer in self.layers:
                sizes = [int(np.prod(shape)) for shape in layer.shapes]
                if sizes and layer.decay:
                    out.append(slice(offset, offset + sizes[0]))
                offset += sum(sizes)
            self._decayed = out
        return out

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
        rows.append({"layer": self.loss.summary, "kind": self.out_activation,
                     "output_shape": rows[-1]["output_shape"], "n_params": 0})
        return rows

    def check_batch(self, batch_size, training):
        """``check_batch`` for this network's layers; a batch size that
        passed is remembered (not pickled): a prediction of one image at a
        time checks it once."""
        passed = self.__dict__.setdefault("_batches_checked", set())
        if (batch_size, training) in passed:
            return
        check_batch(self.spec, batch_size, self.dtype.itemsize, training,
                    [layer.describe() for layer in self.layers])
        passed.add((batch_size, training))

    def check_weighted_batch(self, n_weighted):
        """In training, each layer's rule (``training_batch_problem``) for a
        batch of which ``n_weighted`` samples have a positive weight: those
        are what batch norm averages, the others counting for nothing."""
        _check_training_batch(
            self.spec, n_weighted, [layer.describe() for layer in self.layers],
            f" (here a training batch holds {n_weighted} sample"
            f"{'s' if n_weighted != 1 else ''} of positive sample_weight, the "
            "others counting for nothing: give more samples a weight, or use a "
            "larger batch_size)")

    #: whether layers that can run the next layers in their own pass do
    #: (``Layer.folds``, ``Layer.fuses_with``)
    fuse = True

    #: in training, whether a convolution followed by batch norm takes the
    #: batch norm's sums in its own pass (the statistics then differ from
    #: the batch norm's own two passes in rounding only)
    conv_bn_stats = True

    def set_fusion(self, fuse):
        """Run fusable neighbours in one pass (True) or every layer on its
        own (False, for tests and benchmarks)."""
        self.fuse = bool(fuse)
        self.__dict__.pop("_stage_list", None)
        self.__dict__.pop("_inference_stage_list", None)

    def _stages(self, training=True):
        """The layers as they run, as (layer, the max pooling it runs in its
        own pass or None, the batch norm it folds in or None).

        In training a convolution or a batch norm runs the max pooling
        after it (``fuses_with``); results are bit-identical to the layers
        in turn.
        At prediction a convolution also folds the batch norm after it
        into its weights and bias (``folds``: the running statistics are
        constants then), and with it the activation and the max pooling
        after the batch norm: one pass instead of three. Worked out once
        per mode from the layers (which never change) and kept, not
        pickled."""
        key = "_stage_list" if training else "_inference_stage_list"
        stages = self.__dict__.get(key)
        if stages is not None:
            return stages
        stages, layers, i = [], self.layers, 0

        def at(k):
            return layers[k] if k < len(layers) else None

        while i < len(layers):
            layer, fold, pool = layers[i], None, None
            i += 1
            if self.fuse and not training and at(i) is not None and layer.folds(at(i)):
                fold = at(i)
                i += 1
            if self.fuse and at(i) is not None and layer.fuses_with(at(i)):
                pool = at(i)
                i += 1
            stages.append((layer, pool, fold))
        self.__dict__[key] = stages
        return stages

    def forward(self, x, training=False, sample_weight=None):
        stages = self._stages(training)
        stats = None
        for k, (layer, pool, fold) in enumerate(stages):
            fused = {}
            if pool is not None:
                fused["pool"] = pool
            if fold is not None:
                fused["fold"] = fold
            if stats is not None:
                # The batch norm after a convolution: its statistics' sums
                # were taken in the convolution's pass.
                fused["stats"], stats = stats, None
            elif (training and self.fuse and self.conv_bn_stats
                    and k + 1 < len(stages) and layer.folds(stages[k + 1][0])):
                stats = fused["stats"] = layer.stats_buffer(x.shape[0])
            if layer.uses_sample_weight:
                x = layer.forward(x, training, sample_weight, **fused)
            else:
                x = layer.forward(x, training, **fused)
        return x

    def forget(self):
        """Let every layer go of what the last forward pass kept for a
        backward pass (after a prediction, which needs none of it)."""
        for layer in self.layers:
            layer.forget()

    @property
    def loss(self):
        """The loss on top of the scores (``_losses``)."""
        return _losses.get(self.out_activation)

    def predict_output(self, x):
        """The loss's link of the scores: log-probabilities for the
        classification heads, the values for regression."""
        return self.loss.link(self.forward(x, training=False))

    predict_log_proba = predict_output

    def train_step_grads(self, x, y, sample_weight, alpha, label_smoothing=0.0):
        """Forward and backward on one batch; fills each layer's grads.

        ``y`` is what the loss takes (class indices, a multi-label
        network's (n, n_labels) 0/1 matrix, a regression's targets). The
        cost is the loss's weighted mean (``_losses``) plus
        ``alpha / 2 * ||weights||^2 / sum_i w_i`` (scikit-learn's MLP uses
        the batch size where the weights sum is used here; the two agree for
        unit weights, and the sum makes a weight of 2 mean "this sample
        twice"); the loss takes ``label_smoothing`` (``_losses``). Returns
        the cost.
        """
        scores = self.forward(x, training=True, sample_weight=sample_weight)
        total = float(sample_weight.sum())
        loss, dy = self.loss.value_and_grad(scores, y, sample_weight, total,
                                            label_smoothing)
        for layer, _, _ in reversed(self._stages()):
            dy = layer.backward(dy)
        if alpha:
            penalty = 0.0
            for part in self.decayed_slices():
                w = self.flat_params[part]
                penalty += float(np.dot(w, w))
                self.flat_grads[part] += w.dtype.type(alpha / total) * w
            loss += 0.5 * alpha * penalty / total
        return loss
