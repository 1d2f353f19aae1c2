"""ConvNetRegressor against MLPRegressor and HistGradientBoostingRegressor on
a regression task of images: the digit sums (``pyconvnet.datasets.
make_digit_sums``), the sum of two of scikit-learn's handwritten digits on a
16x24 canvas, each at a random place in its half. The target does not depend
on where the digits sit, which is what convolutions with shared weights
capture and a model of the raw pixels learns only place by place. The test
canvases are drawn from other scans than the training ones. Test R², mean
absolute error (in the target's units: digits) and fit time, one run each,
one after the other on this machine.

    python benchmarks/regression.py [--n-train 20000] [--epochs 30] [--quick]
        [--rows]

``--rows`` feeds the network the canvases as rows of 384 values without an
``image_shape`` (read as 1x384 strips, as the 0.4.0 demo trained), to show
what reading them as images is worth.
"""
import argparse
import os
import sys
import time
import warnings

from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.neural_network import MLPRegressor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine, markdown_table, write_json  # noqa: E402

from pyconvnet import ConvNetRegressor  # noqa: E402
from pyconvnet.datasets import make_digit_sums  # noqa: E402

# The network: a block of two 3x3 convolutions, then one more, FC 128 with
# dropout 0.25, Adam at 1e-3; y is given in its own units (0 to 18) and
# standardised inside (normalize_y). It reads each canvas as the 16x24 image
# it is (the data set hands over images; the other models take rows).
CONVNET = dict(conv_layers=((32, 3), (32, 3), "pool", (64, 3), "pool"),
               hidden_layer_sizes=(128,), dropout=0.25, dtype="float32")


def models(epochs, quick):
    return [
        ("ConvNetRegressor", ConvNetRegressor(**CONVNET, max_iter=epochs, random_state=0)),
        ("MLPRegressor (100)", MLPRegressor(hidden_layer_sizes=(100,), early_stopping=True,
                                            max_iter=20 if quick else 200, random_state=0)),
        ("HistGradientBoostingRegressor", HistGradientBoostingRegressor(
            max_iter=20 if quick else 100, random_state=0)),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=20000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rows", action="store_true",
                        help="the network too takes rows (1x384 strips)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 300 canvases, 1 epoch")
    parser.add_argument("--json", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "results", "regression.json"))
    args = parser.parse_args(argv)
    n_train, n_test = (300, 100) if args.quick else (args.n_train, args.n_test)
    epochs = 1 if args.quick else args.epochs
    X_train, X_test, y_train, y_test = make_digit_sums(n_train, n_test, random_state=0,
                                                       return_X_y=True)
    rows = []
    for name, model in models(epochs, args.quick):
        # The network reads images; a model of the pixels, rows of them.
        images = isinstance(model, ConvNetRegressor) and not args.rows
        train, test = ((X_train, X_test) if images else
                       (X_train.reshape(n_train, -1), X_test.reshape(n_test, -1)))
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(train, y_train)
        seconds = time.perf_counter() - start
        predicted = model.predict(test)
        if isinstance(model, ConvNetRegressor):
            print(model.architecture_summary(), file=sys.stderr)
        rows.append({"model": name, "r2": float(r2_score(y_test, predicted)),
                     "mae": float(mean_absolute_error(y_test, predicted)),
                     "fit_seconds": seconds})
        print(f"{name}: R² {rows[-1]['r2']:.4f} in {seconds:.0f} s", file=sys.stderr)
    info = machine()
    write_json(args.json, {"machine": info, "quick": args.quick, "n_train": n_train,
                           "n_test": n_test, "epochs": epochs, "convnet": CONVNET,
                           "rows": args.rows,
                           "results": rows})
    print(f"Machine: {info['cpu']}, {info['cores']} cores; digit sums, {n_train:,} "
          f"training and {n_test:,} test canvases."
          + (" QUICK SMOKE RUN: not comparable." if args.quick else ""))
    print(markdown_table(["model", "test R²", "mean abs. error", "fit s"], [
        [r["model"], f"{r['r2']:.4f}", f"{r['mae']:.2f}", f"{r['fit_seconds']:.0f}"]
        for r in rows]))
    print(f"\nwrote {os.path.relpath(args.json)}")


if __name__ == "__main__":
    main()
