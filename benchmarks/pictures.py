"""The README's pictures: first-layer filters and one image's feature maps
of a network trained on Fashion-MNIST (scikit-learn's 8x8 digits when the
dataset is not installed), and its learning curves.

    python benchmarks/pictures.py [--epochs 3] [--data digits]

Writes benchmarks/results/{filters,feature-maps,learning-curves}-<data>.png.
"""
import argparse
import os
import sys
import time
import warnings

import numpy as np

from pyconvnet import ConvNetClassifier
from pyconvnet.plot import plot_feature_maps, plot_filters, plot_learning_curves

HERE = os.path.dirname(os.path.abspath(__file__))


def load(data):
    if data == "digits":
        return _digits()
    try:
        from pyconvnet.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist

        X_train, X_test, y_train, y_test = load_fashion_mnist(return_X_y=True)
        return "fashion-mnist", X_train, X_test, y_train, y_test, FASHION_MNIST_CLASSES
    except (OSError, FileNotFoundError):
        return _digits()


def _digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    return "digits", X[:1500], X[1500:], y[:1500], y[1500:], [str(i) for i in range(10)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--data", choices=["auto", "digits"], default="auto",
                        help="auto: Fashion-MNIST when installed, else digits")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args(argv)
    name, X_train, X_test, y_train, y_test, class_names = load(args.data)
    # 5x5 first-layer filters: large enough to see what they respond to.
    model = ConvNetClassifier(conv_layers=((16, 5), (32, 5)), hidden_layer_sizes=(128,),
                              batch_norm=True, max_iter=args.epochs, early_stopping=True,
                              n_iter_no_change=args.epochs, dtype="float32",
                              random_state=0)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X_train, y_train)
    print(f"{name}: trained {model.n_iter_} epochs in {time.perf_counter() - start:.0f} s, "
          f"test accuracy {model.score(X_test, y_test):.4f}", file=sys.stderr)
    index = int(np.flatnonzero(y_test == (4 if name == "fashion-mnist" else 3))[0])
    os.makedirs(args.out, exist_ok=True)
    figures = {
        "filters": plot_filters(model),
        "feature-maps": plot_feature_maps(model, X_test[index]),
        "learning-curves": plot_learning_curves(model),
    }
    figures["feature-maps"].suptitle(
        f"feature maps of one test image ({class_names[y_test[index]]})")
    for kind, fig in figures.items():
        path = os.path.join(args.out, f"{kind}-{name}.png")
        fig.savefig(path, dpi=100)
        print(f"wrote {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
