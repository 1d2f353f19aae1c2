"""predict_proba against onnxruntime, the inference peer, on the same model.

For each architecture of bench_train.py, a ConvNetClassifier is fitted for one
epoch (speed does not depend on the weights), exported with pyconvnet.onnx,
and both predict the same images in batches of 1,000: pyconvnet's
``predict_proba`` and an onnxruntime session (CPU provider,
``intra_op_num_threads`` = the thread count), side by side in one process.
Reports images/s (median over repeats) and their ratio.

    python benchmarks/bench_onnx.py [--arch nielsen wide3 bn3] [--threads 1 2]
        [--single]

``--single`` also times one image at a time (the latency of a single
prediction), median over a few hundred calls.
"""
import argparse
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine, markdown_table, median_time, write_json  # noqa: E402
from bench_train import ARCHITECTURES  # noqa: E402

from pyconvnet import ConvNetClassifier  # noqa: E402

BATCH = 1000


def fitted_model(arch, n_threads, rng):
    shape, convs, padding, dense, batch_norm = ARCHITECTURES[arch]
    X = rng.rand(2000, int(np.prod(shape))).astype(np.float32)
    y = rng.randint(0, 10, 2000)
    model = ConvNetClassifier(conv_layers=tuple(convs), padding=padding,
                              batch_norm=batch_norm,
                              hidden_layer_sizes=(dense,), image_shape=shape,
                              max_iter=1, dtype="float32", random_state=0,
                              n_threads=n_threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, y)


def main(argv=None):
    import onnxruntime as ort
    from skl2onnx import to_onnx

    import pyconvnet.onnx  # noqa: F401

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=list(ARCHITECTURES),
                        choices=list(ARCHITECTURES))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--single", action="store_true",
                        help="also time one image at a time")
    parser.add_argument("--json", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "results", "onnx.json"))
    args = parser.parse_args(argv)
    rng = np.random.RandomState(0)
    rows = []
    for arch in args.arch:
        for n_threads in args.threads:
            model = fitted_model(arch, n_threads, rng)
            X = rng.rand(BATCH, model.n_features_in_).astype(np.float32)
            onx = to_onnx(model, X[:1], options={id(model): {"zipmap": False}})
            options = ort.SessionOptions()
            options.intra_op_num_threads = n_threads
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(onx.SerializeToString(), options,
                                           providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name
            ours = median_time(lambda: model.predict_proba(X), repeats=args.repeats)
            peer = median_time(lambda: session.run(None, {name: X}),
                               repeats=args.repeats)
            diff = float(np.abs(session.run(None, {name: X})[1]
                                - model.predict_proba(X)).max())
            row = {"arch": arch, "threads": n_threads,
                   "pyconvnet": BATCH / ours, "onnxruntime": BATCH / peer,
                   "ratio": peer / ours, "max_abs_diff": diff}
            if args.single:
                one = X[:1]
                row["single_ms"] = 1e3 * median_time(
                    lambda: model.predict_proba(one), repeats=15)
                row["single_onnx_ms"] = 1e3 * median_time(
                    lambda: session.run(None, {name: one}), repeats=15)
            rows.append(row)
            print(f"{arch} threads={n_threads}: pyconvnet {BATCH / ours:,.0f}/s, "
                  f"onnxruntime {BATCH / peer:,.0f}/s ({peer / ours:.2f}x)",
                  file=sys.stderr)
    info = machine()
    print(f"Machine: {info['cpu']}, {info['cores']} cores. predict_proba images/s, "
          f"batches of {BATCH}.\n")
    headers = ["network", "threads", "pyconvnet", "onnxruntime",
               "pyconvnet/onnxruntime", "max |p - p_onnx|"]
    if args.single:
        headers += ["one image, ms", "onnxruntime, ms"]
    print(markdown_table(
        headers,
        [[r["arch"], r["threads"], f"{r['pyconvnet']:,.0f}", f"{r['onnxruntime']:,.0f}",
          f"{r['ratio']:.2f}x", f"{r['max_abs_diff']:.1e}"]
         + ([f"{r['single_ms']:.3f}", f"{r['single_onnx_ms']:.3f}"]
            if args.single else []) for r in rows]))
    write_json(args.json, {"machine": info, "batch": BATCH, "results": rows})


if __name__ == "__main__":
    main()
