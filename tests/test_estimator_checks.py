from sklearn.utils.estimator_checks import parametrize_with_checks

from pyconvnet import ConvNetClassifier, ConvNetRegressor


@parametrize_with_checks([
    ConvNetClassifier(random_state=0),
    ConvNetClassifier(batch_norm=True, learning_rate="cosine", random_state=0),
    ConvNetClassifier(conv_layers=((4, 3), (4, 3), "pool", (6, 3), "pool"),
                      batch_norm=True, random_state=0),
    # all-convolutional: global average pooling, no hidden dense layer
    ConvNetClassifier(conv_layers=((4, 3), "pool", (6, 3), "gap"), hidden_layer_sizes=(),
                      batch_norm=True, random_state=0),
    ConvNetRegressor(random_state=0),
    ConvNetRegressor(conv_layers=((4, 3), (4, 3), "pool"), batch_norm=True,
                     learning_rate="cosine", random_state=0),
])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
