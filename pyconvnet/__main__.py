"""python -m pyconvnet: train a convolutional network and compare it with
scikit-learn's MLPClassifier on the same train/test split.

The default data set is scikit-learn's bundled 8x8 digits (no download).
"""
import argparse
import os
import re
import time
import warnings

import numpy as np

from . import (ConvNetClassifier, ConvNetRegressor, __version__, _activations,
               openmp_enabled)
from ._augment import AUGMENT_KINDS
from ._spec import MARKERS, parse_conv_layers_text, split_entries
from ._threads import effective_n_threads

# The estimator's parameter behind each option, so that the estimator's own
# checks name the option a user typed.
OPTIONS = {
    "conv_layers": "--conv-layers", "hidden_layer_sizes": "--hidden",
    "max_iter": "--epochs", "batch_size": "--batch-size",
    "learning_rate_init": "--learning-rate", "learning_rate": "--schedule",
    "pooling": "--pooling", "pool_size": "--pool-size", "padding": "--padding",
    "activation": "--activation", "dropout": "--dropout",
    "batch_norm": "--batch-norm", "solver": "--solver", "alpha": "--alpha",
    "augment": "--augment", "early_stopping": "--early-stopping",
    "label_smoothing": "--label-smoothing",
    "random_state": "--random-state", "n_threads": "--threads",
}


def _number(kind, low=None, high=None, low_open=False, high_open=True):
    """An argparse type: a number of ``kind``, in [low, high) (or as told)
    when bounds are given. Options that set an estimator parameter take no
    bounds here: the estimator's own checks judge them, before any data is
    loaded, so the two can never disagree."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
            ) from None
        if low is None:
            return value
        too_low = value <= low if low_open else value < low
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high or not np.isfinite(value):
            interval = (("(" if low_open else "[") + f"{low}, "
                        + ("inf)" if high is None else f"{high}" + (")" if high_open else "]")))
            raise argparse.ArgumentTypeError(f"must be in {interval}, got {text}")
        return value
    return parse


def _with_options(message):
    """The estimator's error message, in the command line's words."""
    message = message.replace("The '", "'").replace(" parameter of ConvNetClassifier", "")
    message = message.replace("n_threads must be None, an int", "--threads must be an int")
    message = message.replace("pooling=None", "pooling none")
    names = "|".join(sorted(OPTIONS, key=len, reverse=True))
    return re.sub(rf"'?(?<![\w-])({names})(?!\w)'?",
                  lambda match: OPTIONS[match.group(1)], message)


def _integers(text):
    """--hidden's text as a tuple of ints ('' is none)."""
    if not text.strip():
        return ()
    entries = split_entries(text)
    try:
        return tuple(int(part) for part in entries)
    except ValueError:
        raise ValueError(f"{text!r} is not integers separated by ','") from None


def _load(name, data_home, test_size, random_state):
    from sklearn.model_selection import train_test_split

    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        # Pixels are 0..16; scale to [0, 1] and keep float32 so the network
        # trains in single precision. Images, as every data set here.
        X, y = (digits.images / 16.0).astype(np.float32), digits.target
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=test_size, stratify=y, random_state=random_state
        )
        return X_train, X_test, y_train, y_test, None
    if name == "fashion-mnist":
        from .datasets import load_fashion_mnist

        # The official split: 60,000 training and 10,000 test images.
        data = load_fashion_mnist(data_home=data_home)
        return (data.images, data.images_test, data.target, data.target_test,
                data.target_names)
    if name == "digit-sums":
        from .datasets import make_digit_sums

        # Disjoint scans for training and testing; the split is the data
        # set's own (its sizes, not --test-size).
        data = make_digit_sums(random_state=random_state)
        return data.images, data.images_test, data.target, data.target_test, None
    raise ValueError(f"unknown dataset {name!r}")


# The baseline MLP's max_iter per --epochs.
MLP_EPOCHS = 5

# The data sets of each task; the first is the default.
DATASETS = {"classification": ("digits", "fashion-mnist"), "regression": ("digit-sums",)}


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m pyconvnet",
        description="Train a ConvNetClassifier and compare it with "
        "MLPClassifier on the same split (with --task regression, a "
        "ConvNetRegressor against MLPRegressor).",
    )
    parser.add_argument("--task", choices=list(DATASETS), default="classification",
                        help="what to learn (default: %(default)s)")
    parser.add_argument("--dataset", choices=[d for ds in DATASETS.values() for d in ds],
                        default=None,
                        help="data set (default: digits, bundled with "
                        "scikit-learn; fashion-mnist needs Debian's "
                        "dataset-fashion-mnist or --data-home; digit-sums, "
                        "the regression task, the sum of two of scikit-learn's "
                        "digits on a canvas wherever they sit)")
    parser.add_argument("--data-home", default=None,
                        help="folder with the Fashion-MNIST IDX files")
    parser.add_argument("--augment", choices=list(AUGMENT_KINDS),
                        default=None, help="augment training batches on the fly")
    parser.add_argument("--conv-layers", default="20:5,40:5",
                        help="conv layers as FILTERS:KERNEL[:STRIDE][,...] "
                        "(default: %(default)s, Nielsen's two conv-pool layers) "
                        "and markers: "
                        + "; ".join(f"{name}, {what}" for name, (what, _)
                                    in MARKERS.items())
                        + " (with pool markers, pooling only where they "
                        "stand: 32:3,32:3,pool,64:3,64:3,pool)")
    parser.add_argument("--hidden", default="100",
                        help="fully connected layer sizes, comma-separated, "
                        "or '' for none (default: %(default)s)")
    parser.add_argument("--epochs", type=_number(int), default=100,
                        help="maximum number of epochs (default: %(default)s); "
                        "the MLPClassifier or MLPRegressor baseline runs up to "
                        f"{MLP_EPOCHS} times as many (its max_iter), its "
                        "epochs being far cheaper")
    parser.add_argument("--batch-size", type=_number(int), default=64,
                        help="mini-batch size (default: %(default)s)")
    parser.add_argument("--learning-rate", type=_number(float),
                        default=1e-3,
                        help="initial learning rate (default: %(default)s)")
    parser.add_argument("--schedule", default="constant",
                        choices=["constant", "invscaling", "adaptive", "cosine"],
                        help="learning-rate schedule (default: %(default)s)")
    parser.add_argument("--solver", choices=["adam", "adamw", "sgd"], default="adam",
                        help="optimizer (default: %(default)s)")
    parser.add_argument("--alpha", type=_number(float), default=1e-4,
                        help="L2 penalty (default: %(default)s)")
    parser.add_argument("--pooling", choices=["max", "l2", "avg", "none"],
                        default="max", help="pooling kind (default: %(default)s)")
    parser.add_argument("--pool-size", type=_number(int), default=2,
                        help="pooling window, also its stride (default: %(default)s)")
    parser.add_argument("--padding", choices=["same", "valid"], default="same",
                        help="convolution padding (default: %(default)s)")
    parser.add_argument("--batch-norm", action="store_true",
                        help="batch normalisation after each convolution")
    parser.add_argument("--early-stopping", action="store_true",
                        help="stop on a 10%% validation split's accuracy")
    parser.add_argument("--activation",
                        choices=list(_activations.NAMES),
                        default="relu", help="activation (default: %(default)s)")
    parser.add_argument("--label-smoothing", type=_number(float), default=0.0,
                        help="label smoothing (default: %(default)s)")
    parser.add_argument("--dropout", type=_number(float), default=0.0,
                        help="dropout on the fully connected layers (default: %(default)s)")
    parser.add_argument("--threads", type=_number(int), default=None,
                        help="OpenMP threads, or -1 for all CPUs, -2 for all but "
                        "one, ... (default: all the cores OpenMP allows)")
    parser.add_argument("--test-size", type=_number(float, 0, 1, low_open=True),
                        default=0.25,
                        help="fraction held out for testing (default: %(default)s)")
    parser.add_argument("--random-state", type=int, default=0,
                        help="seed of the split and of training (default: %(default)s)")
    parser.add_argument("--no-mlp", action="store_true",
                        help="skip the MLPClassifier (MLPRegressor) comparison")
    parser.add_argument("--quiet", action="store_true",
                        help="no per-epoch progress")
    args = parser.parse_args(argv)

    # Every argument is checked before any data is loaded, by the estimator's
    # own checks: a mistake is a usage error (exit status 2) naming the
    # option, never a traceback after a long load.
    try:
        conv_layers = parse_conv_layers_text(args.conv_layers)
    except ValueError as exc:
        parser.error(f"--conv-layers takes FILTERS:KERNEL[:STRIDE] entries and "
                     f"the markers {', '.join(MARKERS)}, comma-separated (e.g. "
                     f"32:3,32:3,pool,64:3,gap); {exc}")
    try:
        hidden = _integers(args.hidden)
    except ValueError as exc:
        parser.error(f"--hidden takes layer sizes, comma-separated (e.g. 256,128), "
                     f"or '' for none; {exc}")
    dataset = args.dataset or DATASETS[args.task][0]
    if dataset not in DATASETS[args.task]:
        parser.error(f"--dataset {dataset} is not a {args.task} data set; --task "
                     f"{args.task} takes {', '.join(DATASETS[args.task])}")
    regression = args.task == "regression"
    if regression and args.label_smoothing:
        parser.error("--label-smoothing is for classification")
    extra = {} if regression else {"label_smoothing": args.label_smoothing}
    model = (ConvNetRegressor if regression else ConvNetClassifier)(
        **extra,
        conv_layers=conv_layers,
        hidden_layer_sizes=hidden,
        pooling=None if args.pooling == "none" else args.pooling,
        pool_size=args.pool_size,
        padding=args.padding,
        activation=args.activation,
        dropout=args.dropout,
        batch_norm=args.batch_norm,
        solver=args.solver,
        alpha=args.alpha,
        learning_rate=args.schedule,
        augment=args.augment,
        early_stopping=args.early_stopping,
        batch_size=args.batch_size,
        learning_rate_init=args.learning_rate,
        max_iter=args.epochs,
        random_state=args.random_state,
        n_threads=args.threads,
        verbose=not args.quiet,
    )
    try:
        model.check_params()
        n_threads = effective_n_threads(args.threads)
    except ValueError as exc:
        parser.error(_with_options(str(exc)))
    if args.data_home is not None and not os.path.isdir(args.data_home):
        parser.error(f"--data-home {args.data_home!r} is not a folder")

    try:
        X_train, X_test, y_train, y_test, _ = _load(
            dataset, args.data_home, args.test_size, args.random_state
        )
    except (FileNotFoundError, ValueError) as exc:
        parser.exit(2, f"error: {exc}\n")
    print(f"pyconvnet {__version__} (OpenMP: {'on' if openmp_enabled() else 'off'}, "
          f"{n_threads} thread{'s' if n_threads != 1 else ''})")
    print(f"{dataset}: {len(X_train)} training and {len(X_test)} test "
          f"images of {'x'.join(map(str, X_train.shape[1:]))}\n")

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        model.fit(X_train, y_train)
    fit_time = time.perf_counter() - start
    if args.quiet:
        print(model.architecture_summary())
    score = model.score(X_test, y_test)

    rows = [(type(model).__name__, score, fit_time, model.n_iter_)]
    if not args.no_mlp:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier, MLPRegressor

        mlp = (MLPRegressor if regression else MLPClassifier)(
            max_iter=args.epochs * MLP_EPOCHS, random_state=args.random_state)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=ConvergenceWarning)
            # A model of the pixels: rows, wherever they sit in the image.
            mlp.fit(X_train.reshape(len(X_train), -1), y_train)
        rows.append((type(mlp).__name__, mlp.score(X_test.reshape(len(X_test), -1), y_test),
                     time.perf_counter() - start, mlp.n_iter_))

    what = "test R²" if regression else "test accuracy"
    print(f"\n{'model':<20}{what:>14}{'fit time (s)':>14}{'epochs':>8}")
    for name, acc, seconds, epochs in rows:
        print(f"{name:<20}{acc:>14.4f}{seconds:>14.2f}{epochs:>8}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
