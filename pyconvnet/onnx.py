"""ONNX export: skl2onnx converters for ConvNetClassifier and ConvNetRegressor.

``import pyconvnet.onnx`` registers the converters with skl2onnx, after which
``skl2onnx.to_onnx(model_or_pipeline, X[:1])`` converts a fitted
ConvNetClassifier alone or inside a pipeline, with the outputs skl2onnx gives
every classifier: the predicted label and the probabilities (a ZipMap of them
unless ``options={"zipmap": False}``); a fitted ConvNetRegressor has one
output, the (N, n_outputs) predictions, as skl2onnx gives every regressor.

Every layer maps to standard ONNX operators: the input rows are reshaped to
the model's (channels, height, width), then Conv (with its strides and pads;
a zero bias where batch norm replaced it), BatchNormalization (running
statistics), Relu / Sigmoid / Tanh, MaxPool / LpPool(p=2) / AveragePool,
Flatten, MatMul + Add for the dense layers, Softmax (Sigmoid per label for a
multi-label model; for a regressor, Mul + Add undo the targets'
standardisation). Dropout is the identity at prediction time and is
omitted. The graph computes in float32 whatever the model's precision
(onnxruntime has no double-precision convolution on the CPU); its outputs
take the input's type, as skl2onnx declares them.

Needs the ``onnx`` extra: ``pip install "pyconvnet[onnx]"``.
"""
import numpy as np

try:
    from skl2onnx import update_registered_converter
    from skl2onnx._parse import _parse_sklearn_classifier
    from skl2onnx.common.data_types import guess_proto_type
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
    )
    from skl2onnx.proto import onnx_proto
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "pyconvnet.onnx needs skl2onnx and onnx: pip install 'pyconvnet[onnx]'"
    ) from exc

from sklearn.base import is_classifier, is_regressor

from . import _activations, _classifier, _regressor  # noqa: F401 - registered
from ._base import ESTIMATORS

__all__ = ["convert_convnet_classifier", "convert_convnet_regressor"]

class _Graph:
    """Names, initializers and nodes, on skl2onnx's scope and container: what
    a layer's ``to_onnx`` adds its nodes with."""

    def __init__(self, scope, container, proto_dtype, np_dtype):
        self.scope, self.container = scope, container
        self.proto_dtype, self.np_dtype = proto_dtype, np_dtype

    def constant(self, name, value, proto_dtype=None):
        value = np.asarray(value)
        full = self.scope.get_unique_variable_name(name)
        if proto_dtype is None:
            proto_dtype = self.proto_dtype
            value = value.astype(self.np_dtype)
        self.container.add_initializer(full, proto_dtype, list(value.shape),
                                       value.ravel().tolist())
        return full

    def node(self, op, inputs, name, output=None, **attrs):
        output = output or self.scope.get_unique_variable_name(name)
        self.container.add_node(op, inputs, output,
                                name=self.scope.get_unique_operator_name(op),
                                **attrs)
        return output

    def activation(self, x, name):
        op = _activations.get(name).onnx
        return x if op is None else self.node(op, [x], op.lower())


def _check_exportable(model):
    if not model.__sklearn_is_fitted__():
        raise ValueError(f"this {type(model).__name__} is not fitted yet: fit it "
                         "before exporting it to ONNX")


def _scores(scope, operator, container):
    """The graph of the network (float32) on the operator's input, cast and
    reshaped to the model's (N, C, H, W) images, each layer adding its own
    nodes (``Layer.to_onnx``); returns the graph and the output scores."""
    model = operator.raw_operator
    _check_exportable(model)
    graph = _Graph(scope, container, onnx_proto.TensorProto.FLOAT, np.float32)
    x = graph.node("Cast", [operator.inputs[0].full_name], "cast_input",
                   to=onnx_proto.TensorProto.FLOAT)
    shape = graph.constant("image_shape", [-1, *model.image_shape_],
                           onnx_proto.TensorProto.INT64)
    x = graph.node("Reshape", [x, shape], "images")
    for layer in model.network_.layers:
        x = layer.to_onnx(graph, x)
    return graph, x


def convert_convnet_classifier(scope, operator, container):
    """skl2onnx converter: operator.inputs[0] is the (N, n_features) or
    (N, C, H, W) input; outputs[0] the labels, outputs[1] the
    probabilities."""
    model = operator.raw_operator
    graph, scores = _scores(scope, operator, container)
    # Probabilities in the model's precision, then in the input's type as
    # skl2onnx declared the output.
    out_dtype = guess_proto_type(operator.outputs[1].type)
    multilabel = model.multilabel_
    proba = model.network_.loss.to_onnx(graph, scores)
    graph.node("Cast", [proba], "proba_out", output=operator.outputs[1].full_name,
               to=out_dtype)
    if multilabel:
        half = graph.constant("half", [0.5])
        above = graph.node("Greater", [proba, half], "above")
        graph.node("Cast", [above], "labels", output=operator.outputs[0].full_name,
                   to=onnx_proto.TensorProto.INT64)
        return
    classes = np.asarray(model.classes_)
    if classes.dtype.kind in "iub" or (classes.dtype.kind == "f"
                                       and np.all(classes == np.round(classes))):
        class_type, values = onnx_proto.TensorProto.INT64, classes.astype(np.int64)
    elif classes.dtype.kind in "USO":
        class_type = onnx_proto.TensorProto.STRING
        values = np.array([str(c).encode("utf-8") for c in classes])
    else:
        raise ValueError(
            f"cannot export class labels of dtype {classes.dtype}: ONNX classifiers "
            "take integer or string labels")
    table = scope.get_unique_variable_name("classes")
    container.add_initializer(table, class_type, list(values.shape), values.tolist())
    best = graph.node("ArgMax", [proba], "argmax", axis=1, keepdims=0)
    graph.node("Gather", [table, best], "label",
               output=operator.outputs[0].full_name, axis=0)


def _parser(scope, model, inputs, custom_parsers=None):
    # Check first: skl2onnx's own parser fails on an unfitted model with a
    # message about the number of classes.
    _check_exportable(model)
    return _parse_sklearn_classifier(scope, model, inputs, custom_parsers)


def _shape_calculator(operator):
    model = operator.raw_operator
    if model.multilabel_:
        # Multi-label: an int64 indicator matrix and per-label probabilities.
        from skl2onnx.common.data_types import Int64TensorType

        n = operator.inputs[0].get_first_dimension()
        n_labels = len(model.classes_)
        operator.outputs[0].type = Int64TensorType([n, n_labels])
        operator.outputs[1].type = operator.inputs[0].type.__class__([n, n_labels])
        return
    calculate_linear_classifier_output_shapes(operator)



def convert_convnet_regressor(scope, operator, container):
    """skl2onnx converter: operator.inputs[0] is the (N, n_features) or
    (N, C, H, W) input; outputs[0] the (N, n_outputs) predictions, in the
    input's type as skl2onnx declared it."""
    model = operator.raw_operator
    graph, scores = _scores(scope, operator, container)
    # The standardisation is undone in the output's type: targets in units
    # beyond float32's range (y_scale_ of 1e160) then export with float64
    # input, and float32 input refuses them instead of answering inf.
    out_type = guess_proto_type(operator.outputs[0].type)
    out_dtype = np.float64 if out_type == onnx_proto.TensorProto.DOUBLE else np.float32
    scale, mean = (np.asarray(v).astype(out_dtype) for v in (model.y_scale_, model.y_mean_))
    if not (np.isfinite(scale).all() and np.isfinite(mean).all()):
        raise ValueError(
            f"this {type(model).__name__}'s targets (y_mean_, y_scale_) lie beyond "
            f"{np.dtype(out_dtype).name}'s range: export it with float64 input")
    scores = graph.node("Cast", [scores], "scores_out", to=out_type)
    scaled = graph.node("Mul", [scores, graph.constant("y_scale", scale, out_type)],
                        "scaled")
    graph.node("Add", [scaled, graph.constant("y_mean", mean, out_type)], "values",
               output=operator.outputs[0].full_name)


def _regressor_shape(operator):
    """(N, n_outputs) of the input's float type (float32 for other inputs)."""
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    model = operator.raw_operator
    _check_exportable(model)
    n = operator.inputs[0].get_first_dimension()
    kind = (DoubleTensorType if isinstance(operator.inputs[0].type, DoubleTensorType)
            else FloatTensorType)
    operator.outputs[0].type = kind([n, model.n_outputs_])


def _register(estimators):
    """The converters of every registered estimator: the classifiers' and
    the regressors' outputs, as skl2onnx gives every classifier and
    regressor."""
    for name, cls in estimators.items():
        if is_classifier(cls()):
            update_registered_converter(
                cls, f"Pyconvnet{name}", _shape_calculator,
                convert_convnet_classifier, parser=_parser,
                options={"zipmap": [True, False, "columns"], "nocl": [True, False],
                         "output_class_labels": [False, True]})
        elif is_regressor(cls()):
            update_registered_converter(cls, f"Pyconvnet{name}", _regressor_shape,
                                        convert_convnet_regressor)


_register(ESTIMATORS)
