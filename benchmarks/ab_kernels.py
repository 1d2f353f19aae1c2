"""Two builds of the convolution and pooling kernels, side by side in one process.

On a shared machine the speed of the same code drifts by tens of percent
between runs, so comparing two builds run one after the other measures the
machine. This script loads the compiled convolution and pooling modules of two
source trees built in place (``python setup.py build_ext --inplace``) into one
process and times them in alternation, call by call, on the layers of the
networks of ``bench_train.py``; whatever slows the machine slows both. It
reports each build's median time per image and the ratio B/A (below 1: B is
faster). Swap A and B once to check that the order does not matter.

    python benchmarks/ab_kernels.py OLD_TREE NEW_TREE [--batch 64]
        [--threads 2] [--repeats 25] [--layers n.conv2 w5.conv2 ...]
"""
import argparse
import glob
import importlib.util
import os
import statistics
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

# name: (input (C, H, W), filters, kernel, padding): the convolutions of
# bench_train.py's networks; the pooling runs on each first layer's output.
LAYERS = {
    "n.conv1": ((1, 28, 28), 20, 5, 0), "n.conv2": ((20, 12, 12), 40, 5, 0),
    "w5.conv1": ((1, 28, 28), 32, 5, 2), "w5.conv2": ((32, 14, 14), 64, 5, 2),
    "w3.conv1": ((1, 28, 28), 32, 3, 1), "w3.conv2": ((32, 14, 14), 64, 3, 1),
    "rgb.conv1": ((3, 32, 32), 32, 3, 1), "rgb.conv2": ((32, 16, 16), 64, 3, 1),
}
RELU = 1


# Where each kernel lives, newest layout first (so that older trees compare
# too): the generic build of pyconvnet/_kernels/, then pyconvnet/.
MODULES = {"conv": ("_kernels/conv_im2col_generic", "_kernels/conv_im2col", "_conv"),
           "pool": ("_kernels/pool_generic", "_kernels/pool", "_pool")}


def load(tree, kind):
    """The compiled ``kind`` ("conv" or "pool") module of a source tree,
    loaded under its own identity so that two trees' modules live side by
    side."""
    for name in MODULES[kind]:
        paths = [p for ext in ("so", "pyd") for p in glob.glob(
            os.path.join(tree, "pyconvnet", f"{name}.*.{ext}"))]
        if paths:
            break
    else:
        raise SystemExit(f"{tree}: no compiled pyconvnet/{MODULES[kind][0]} "
                         "(build it in place)")
    module_name = "pyconvnet." + name.replace("/", ".")
    spec = importlib.util.spec_from_file_location(module_name, paths[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def alternate(calls, repeats):
    """Median seconds of each named call, timed in alternation after one
    untimed call each (first calls allocate and fault pages in)."""
    for call in calls.values():
        call()
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def conv_calls(conv, x, w, b, y, cols, dy, dx, dw, db, pad, n_threads):
    def forward():
        conv.conv2d_forward(x, w, b, y, cols, 1, 1, pad, pad, RELU, n_threads)

    def backward():
        conv.conv2d_backward(dy, y, x, w, cols, dx, dw, db, 1, 1, pad, pad, RELU,
                             n_threads)
    return forward, backward


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="source tree A (built in place)")
    parser.add_argument("b", help="source tree B (built in place)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--layers", nargs="+", default=list(LAYERS),
                        choices=list(LAYERS))
    args = parser.parse_args(argv)
    builds = {"A": (load(args.a, "conv"), load(args.a, "pool")),
              "B": (load(args.b, "conv"), load(args.b, "pool"))}
    rng = np.random.default_rng(0)
    n = args.batch
    print(f"batch {n}, {args.threads} threads, median of {args.repeats}, "
          "us per image (B/A)")
    with threadpool_limits(1, user_api="blas"):
        for name in args.layers:
            (c, h, w_), f, k, pad = LAYERS[name]
            oh, ow = h + 2 * pad - k + 1, w_ + 2 * pad - k + 1
            x = rng.random((n, c, h, w_), dtype=np.float32)
            w = (rng.standard_normal((f, c, k, k)) * 0.1).astype(np.float32)
            b = np.zeros(f, np.float32)
            y = np.empty((n, f, oh, ow), np.float32)
            cols = np.empty((n, c * k * k * oh * ow), np.float32)
            dy = rng.standard_normal(y.shape).astype(np.float32)
            dx = np.empty_like(x) if name.endswith("conv2") else None
            dw, db = np.empty_like(w), np.empty_like(b)
            builds["A"][0].conv2d_forward(x, w, b, y, cols, 1, 1, pad, pad, RELU, 1)
            calls = {}
            for label, (conv, _) in builds.items():
                fwd, bwd = conv_calls(conv, x, w, b, y, cols, dy, dx, dw, db, pad,
                                      args.threads)
                calls[label + " forward"], calls[label + " backward"] = fwd, bwd
            t = alternate(calls, args.repeats)
            line = f"{name:10s}"
            for part in ("forward", "backward"):
                ta, tb = t["A " + part], t["B " + part]
                line += (f"  {part} A {ta / n * 1e6:7.1f} B {tb / n * 1e6:7.1f}"
                         f" ({tb / ta:.2f})")
            print(line)
            if name.endswith("conv1"):
                ph, pw = oh // 2, ow // 2
                out = np.empty((n, f, ph, pw), np.float32)
                arg = np.empty(out.shape, np.int32)
                calls = {label: (lambda pool=pool: pool.max_pool_forward(
                    y, out, arg, 2, 2, 2, 2, args.threads))
                    for label, (_, pool) in builds.items()}
                t = alternate(calls, args.repeats)
                print(f"{'  max pool':10s}  forward A {t['A'] / n * 1e6:7.1f} "
                      f"B {t['B'] / n * 1e6:7.1f} ({t['B'] / t['A']:.2f})")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
