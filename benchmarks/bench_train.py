"""Training and prediction throughput against PyTorch, on several networks.

Each architecture is trained through ConvNetClassifier and, when torch is
installed, as the same network in PyTorch (same layer sizes, He
initialisation, SGD with momentum 0.9, same batch size and thread count), in
the same process, one after the other for every setting:

- ``nielsen``: Nielsen's chapter-6 network on 1x28x28 images, valid padding:
  conv 20@5x5 -> max-pool 2 -> conv 40@5x5 -> max-pool 2 -> dense 100;
- ``wide5``: 1x28x28, same padding: conv 32@5x5 -> pool -> conv 64@5x5 ->
  pool -> dense 256 (the shape of the accuracy recipes);
- ``wide3``: the same with 3x3 kernels;
- ``rgb32``: 3x32x32 images, same padding: conv 32@3x3 -> pool -> conv
  64@3x3 -> pool -> dense 256;
- ``bn3``: ``wide3`` with batch norm after each convolution (the
  convolutions without bias; PyTorch: ``Conv2d(bias=False)``,
  ``BatchNorm2d``), the layout of the batch-norm recipes.

The two libraries are timed in alternation, epoch by epoch (the order
reversed every other repeat), so that the shared machine's drift hits both
alike. Reports images/s for one training epoch (median over repeats) and for
predict_proba in batches of 1,000 (PyTorch: ``torch.no_grad``), their ratio
(the median over repeats of the two libraries' ratio in that repeat),
and the share of the machine's sgemm peak the whole training step reaches:
the step's multiply-adds (every convolution and dense layer, forward and
backward, the first layer without an input gradient) x 2 / time, against the
sgemm GFLOP/s of a 2048x2048 product at the same thread count, timed in the
same alternation as the epochs (median of the per-repeat ratios).

``--contention`` starts one single-threaded busy process (a pure-Python loop)
beside the measurement and reports each library's training throughput under
that load next to its quiet throughput from the same run.

    python benchmarks/bench_train.py [--arch nielsen wide5 wide3 rgb32 bn3]
        [--batch-sizes 10 64] [--threads 1 2] [--contention]
        [--implementation im2col winograd4 ...]

``--implementation`` also trains each network with every convolution forced
to each implementation named (``PYCONVNET_CONV``; a network with a layer
the implementation cannot run is left out for it), in the same alternation,
and reports its images/s and ratio to PyTorch beside "auto"'s.

Data: Fashion-MNIST when installed (28x28 networks), synthetic images
otherwise; speed does not depend on the pixel values.
"""
import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine, markdown_table, write_json  # noqa: E402

from pyconvnet import ConvNetClassifier  # noqa: E402

LEARNING_RATE = 0.01
MOMENTUM = 0.9

# name: (image shape (C, H, W), [(filters, kernel)], padding, dense units,
# batch norm)
ARCHITECTURES = {
    "nielsen": ((1, 28, 28), [(20, 5), (40, 5)], "valid", 100, False),
    "wide5": ((1, 28, 28), [(32, 5), (64, 5)], "same", 256, False),
    "wide3": ((1, 28, 28), [(32, 3), (64, 3)], "same", 256, False),
    "rgb32": ((3, 32, 32), [(32, 3), (64, 3)], "same", 256, False),
    "bn3": ((1, 28, 28), [(32, 3), (64, 3)], "same", 256, True),
}


def load_images(n, shape):
    """(X, y, source): n float32 images of ``shape`` in [0, 1], labels."""
    if shape == (1, 28, 28):
        try:
            from pyconvnet.datasets import load_fashion_mnist

            data = load_fashion_mnist()
            X = data.data[:n].reshape((-1,) + shape)
            return (np.ascontiguousarray(X, dtype=np.float32), data.target[:n],
                    "Fashion-MNIST")
        except (ImportError, OSError):
            pass
    rng = np.random.default_rng(0)
    X = rng.random((n,) + shape, dtype=np.float32)
    return X, rng.integers(0, 10, n), "synthetic"


def step_flops(arch):
    """Floating-point operations of one training step, per image."""
    (c, h, w), convs, padding, dense, _ = ARCHITECTURES[arch]
    macs_fwd, macs_bwd = 0, 0
    for i, (f, k) in enumerate(convs):
        pad = (k - 1) // 2 if padding == "same" else 0
        oh, ow = h + 2 * pad - k + 1, w + 2 * pad - k + 1
        m = f * c * k * k * oh * ow
        macs_fwd += m
        macs_bwd += m if i == 0 else 2 * m  # the first layer has no dx
        c, h, w = f, oh // 2, ow // 2
    for n_in, n_out in ((c * h * w, dense), (dense, 10)):
        macs_fwd += n_in * n_out
        macs_bwd += 2 * n_in * n_out
    return 2 * (macs_fwd + macs_bwd)


SGEMM_SIZE = 2048


def sgemm_runner(n_threads, size=SGEMM_SIZE):
    """(one size x size float32 product at n_threads, None): timed among the
    training runners, so that the peak a step is compared with is the
    machine's speed at that moment."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)

    def product():
        with threadpool_limits(n_threads, user_api="blas"):
            start = time.perf_counter()
            a @ b
            elapsed = time.perf_counter() - start
        # OpenBLAS's idle threads keep polling for work for a while after a
        # product; let them go to sleep before the next runner is timed.
        time.sleep(0.5)
        return elapsed

    product()
    return product, None


def pyconvnet_model(arch, batch_size, n_threads):
    _, convs, padding, dense, batch_norm = ARCHITECTURES[arch]
    return ConvNetClassifier(
        conv_layers=tuple(convs), padding=padding, pooling="max", pool_size=2,
        batch_norm=batch_norm,
        hidden_layer_sizes=(dense,), activation="relu", solver="sgd",
        momentum=MOMENTUM, nesterovs_momentum=False,
        learning_rate_init=LEARNING_RATE, alpha=0.0, batch_size=batch_size,
        n_threads=n_threads, dtype="float32", random_state=0,
    )


class _Forced:
    """Every convolution forced to one implementation inside the block
    (None: "auto")."""

    def __init__(self, implementation):
        self.implementation = implementation

    def __enter__(self):
        self.before = os.environ.get("PYCONVNET_CONV")
        if self.implementation is not None:
            os.environ["PYCONVNET_CONV"] = self.implementation

    def __exit__(self, *exc):
        if self.before is None:
            os.environ.pop("PYCONVNET_CONV", None)
        else:
            os.environ["PYCONVNET_CONV"] = self.before


def pyconvnet_runner(arch, X, y, batch_size, n_threads, implementation=None):
    """(train one epoch, predict_proba in batches of 1,000), after a warm-up;
    with ``implementation``, every convolution forced to it."""
    model = pyconvnet_model(arch, batch_size, n_threads)
    with _Forced(implementation):
        model.partial_fit(X[:batch_size * 4], y[:batch_size * 4],
                          classes=np.unique(y))

    def train():
        with _Forced(implementation):
            model.partial_fit(X, y)          # one epoch

    def predict():
        with _Forced(implementation):
            for lo in range(0, len(X), 1000):
                model.predict_proba(X[lo:lo + 1000])

    return train, predict


def torch_model(arch):
    from torch import nn

    (c, h, w), convs, padding, dense, batch_norm = ARCHITECTURES[arch]
    layers = []
    for f, k in convs:
        pad = (k - 1) // 2 if padding == "same" else 0
        if batch_norm:
            layers += [nn.Conv2d(c, f, k, padding=pad, bias=False),
                       nn.BatchNorm2d(f)]
        else:
            layers += [nn.Conv2d(c, f, k, padding=pad)]
        layers += [nn.ReLU(), nn.MaxPool2d(2)]
        h, w = (h + 2 * pad - k + 1) // 2, (w + 2 * pad - k + 1) // 2
        c = f
    layers += [nn.Flatten(), nn.Linear(c * h * w, dense), nn.ReLU(),
               nn.Linear(dense, 10)]
    net = nn.Sequential(*layers)
    # The same initialisation scheme as ConvNetClassifier: He for the ReLU
    # layers, N(0, 1/n_in) for the output, zero biases.
    for m in net:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    nn.init.normal_(net[-1].weight, 0.0, (1 / dense) ** 0.5)
    return net


def torch_runner(arch, X, y, batch_size, n_threads):
    """(train one epoch, softmax of the forward pass in batches of 1,000
    under ``torch.no_grad``), after a warm-up."""
    import torch
    from torch import nn

    torch.set_num_threads(n_threads)
    torch.manual_seed(0)
    net = torch_model(arch)
    optimizer = torch.optim.SGD(net.parameters(), lr=LEARNING_RATE,
                                momentum=MOMENTUM)
    loss_fn = nn.CrossEntropyLoss()
    Xt = torch.from_numpy(X)
    yt = torch.from_numpy(np.searchsorted(np.unique(y), y))
    n = len(X)

    def epoch(count):
        net.train()
        perm = torch.randperm(count)
        for lo in range(0, count, batch_size):
            idx = perm[lo:lo + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(Xt[idx]), yt[idx])
            loss.backward()
            optimizer.step()

    def predict():
        net.eval()
        with torch.no_grad():
            for lo in range(0, n, 1000):
                torch.softmax(net(Xt[lo:lo + 1000]), dim=1).numpy()

    def train():
        torch.set_num_threads(n_threads)   # a global: other runners set theirs
        epoch(n)

    def timed_predict():
        torch.set_num_threads(n_threads)
        predict()

    epoch(batch_size * 4)
    return train, timed_predict


def measure(runners, n_images, repeats, predict=True):
    """Images/s of each runner, training and (with ``predict``) prediction
    (a runner that returns a number has timed itself: that many seconds),
    timed in alternation: every repeat times each runner once, in turn, the
    order reversed every other repeat, so that a drift of the shared
    machine's speed hits all of them alike. Returns, per runner name, the
    lists of images/s of the repeats."""
    rates = {name: {"train": [], "predict": []} for name in runners}
    kinds = ("train", "predict") if predict else ("train",)
    for kind, slot in zip(kinds, (0, 1)):
        for r in range(repeats):
            names = list(runners) if r % 2 == 0 else list(runners)[::-1]
            for name in names:
                if runners[name][slot] is None:
                    continue
                start = time.perf_counter()
                elapsed = runners[name][slot]()
                if elapsed is None:
                    elapsed = time.perf_counter() - start
                rates[name][kind].append(n_images / elapsed)
    return rates


def paired_ratio(a, b):
    """Median over repeats of a[i] / b[i]: the ratio of two runners timed
    side by side, robust to the machine's drift between repeats."""
    return statistics.median(x / y for x, y in zip(a, b))


def _busy(stop):
    # One core's worth of pure-Python work: holds no lock the measured
    # process needs and touches little memory.
    x = 0
    while not stop.is_set():
        for _ in range(100000):
            x += 1


class Contention:
    """A single-threaded CPU-bound process, for the duration of a block."""

    def __enter__(self):
        ctx = multiprocessing.get_context("spawn")
        self._stop = ctx.Event()
        self._proc = ctx.Process(target=_busy, args=(self._stop,), daemon=True)
        self._proc.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._proc.join(5)
        if self._proc.is_alive():
            self._proc.terminate()


def _status_mb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise OSError(f"{field} not in /proc/self/status")


def peak_memory_child(n_images):
    """Run in a subprocess: fit one epoch on n_images, print RSS figures (MB).

    The kernel's high-water mark is reset just before fit (clear_refs), so
    the peak is that of fit alone, with the data already in memory.
    """
    rng = np.random.default_rng(0)
    X = rng.random((n_images, 784), dtype=np.float32)
    y = rng.integers(0, 10, n_images)
    model = pyconvnet_model("nielsen", 64, None).set_params(max_iter=1)
    before = _status_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    print(f"{X.nbytes / 2**20} {before} {_status_mb('VmHWM')}")


def measure_peak_memory(n_images):
    """Peak RSS of a one-epoch fit in a fresh process, or None off Linux."""
    if not os.path.exists("/proc/self/clear_refs"):
        return None
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--memory-child", str(n_images)],
        check=True, capture_output=True, text=True,
    ).stdout.split()
    data, before, peak = (float(v) for v in out[-3:])
    return {"data_mb": data, "rss_before_fit_mb": before, "peak_rss_mb": peak,
            "fit_overhead_mb": peak - before}


def _fmt(v, spec=",.0f"):
    return "-" if v is None else format(v, spec)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=list(ARCHITECTURES),
                        choices=list(ARCHITECTURES))
    parser.add_argument("--n-train", type=int, default=None,
                        help="images per epoch (default: 10,000 for nielsen, "
                             "2,000 for the wider networks)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[10, 64])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--contention", action="store_true",
                        help="also train beside one busy single-threaded process")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--memory-images", type=int, default=60000)
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--json", default=None)
    parser.add_argument("--implementation", nargs="+", default=[],
                        help="also train with every convolution forced to each")
    args = parser.parse_args(argv)
    if args.memory_child:
        peak_memory_child(args.memory_child)
        return
    if args.json is None:
        name = "train-contention.json" if args.contention else "train.json"
        args.json = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                 "results", name)
    try:
        if args.no_torch:
            raise ImportError
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = None

    peaks = {}     # thread count: every sgemm GFLOP/s measured in the run
    results = []
    for arch in args.arch:
        shape = ARCHITECTURES[arch][0]
        n = args.n_train or (10000 if arch == "nielsen" else 2000)
        X, y, source = load_images(n, shape)
        flops = step_flops(arch)
        for batch_size in args.batch_sizes:
            # Every thread count of both libraries in one alternation, so
            # that the 1 -> 2 thread gain is a side-by-side ratio too.
            def make_runners():
                runners = {}
                for n_threads in args.threads:
                    runners["sgemm", n_threads] = sgemm_runner(n_threads)
                    runners["ours", n_threads] = pyconvnet_runner(
                        arch, X, y, batch_size, n_threads)
                    for impl in args.implementation:
                        try:
                            runners[impl, n_threads] = pyconvnet_runner(
                                arch, X, y, batch_size, n_threads, impl)[0], None
                        except ValueError:
                            pass        # a layer it cannot run
                    if torch_version:
                        runners["torch", n_threads] = torch_runner(
                            arch, X, y, batch_size, n_threads)
                return runners

            rates = measure(make_runners(), len(X), args.repeats)
            busy = None
            if args.contention:
                # Fresh models, started under the load: how fast training
                # runs on a busy machine, not how soon it notices a new load.
                with Contention():
                    busy = measure(make_runners(), len(X), args.repeats,
                                   predict=False)
            med = statistics.median
            for n_threads in args.threads:
                # The sgemm runner's "images/s" is products/s times n.
                gflops = [r * 2 * SGEMM_SIZE ** 3 / len(X) / 1e9
                          for r in rates["sgemm", n_threads]["train"]]
                peaks.setdefault(n_threads, []).extend(gflops)
                row = {"arch": arch, "data": source, "n_train": n,
                       "batch_size": batch_size, "threads": n_threads,
                       "step_mflop_per_image": flops / 1e6,
                       "sgemm_gflops": med(gflops)}
                ours = rates["ours", n_threads]
                row.update(train_img_s=med(ours["train"]),
                           predict_img_s=med(ours["predict"]),
                           peak_fraction=paired_ratio(
                               [t * flops / 1e9 for t in ours["train"]], gflops))
                row["implementations"] = {}
                for impl in args.implementation:
                    forced = rates.get((impl, n_threads))
                    if forced is None:
                        continue
                    entry = {"train_img_s": med(forced["train"])}
                    if torch_version:
                        entry["train_ratio"] = paired_ratio(
                            forced["train"], rates["torch", n_threads]["train"])
                    row["implementations"][impl] = entry
                if n_threads != args.threads[0]:
                    row["thread_gain"] = paired_ratio(
                        ours["train"], rates["ours", args.threads[0]]["train"])
                if torch_version:
                    theirs = rates["torch", n_threads]
                    row.update(torch_train_img_s=med(theirs["train"]),
                               torch_predict_img_s=med(theirs["predict"]),
                               train_ratio=paired_ratio(ours["train"],
                                                        theirs["train"]),
                               predict_ratio=paired_ratio(ours["predict"],
                                                          theirs["predict"]))
                if busy is not None:
                    mine = busy["ours", n_threads]["train"]
                    row["busy_train_img_s"] = med(mine)
                    if torch_version:
                        other = busy["torch", n_threads]["train"]
                        row["torch_busy_train_img_s"] = med(other)
                        row["busy_ratio"] = paired_ratio(mine, other)
                results.append(row)
            print(".", end="", flush=True, file=sys.stderr)
    print(file=sys.stderr)
    memory = (measure_peak_memory(args.memory_images)
              if args.memory_images and not args.contention else None)

    info = machine()
    peaks = {t: {"median": statistics.median(g), "min": min(g), "max": max(g)}
             for t, g in peaks.items()}
    print(f"Machine: {info['cpu']}, {info['cores']} cores. Median of "
          f"{args.repeats} epochs. sgemm (timed among the epochs): "
          + ", ".join(f"{p['median']:.0f} GFLOP/s at {t} thread"
                      f"{'s' if t > 1 else ''} (from {p['min']:.0f} to "
                      f"{p['max']:.0f})" for t, p in peaks.items())
          + "." + (f" PyTorch {torch_version}." if torch_version
                   else " PyTorch not installed."))
    print()
    if args.contention:
        headers = ["network", "batch", "threads", "pyconvnet quiet", "pyconvnet busy",
                   "busy/quiet"]
        if torch_version:
            headers += ["PyTorch quiet", "PyTorch busy", "busy/quiet",
                        "pyconvnet/PyTorch busy"]
        rows = []
        for r in results:
            row = [r["arch"], r["batch_size"], r["threads"],
                   _fmt(r["train_img_s"]), _fmt(r["busy_train_img_s"]),
                   f"{r['busy_train_img_s'] / r['train_img_s']:.2f}"]
            if torch_version:
                row += [_fmt(r["torch_train_img_s"]),
                        _fmt(r["torch_busy_train_img_s"]),
                        f"{r['torch_busy_train_img_s'] / r['torch_train_img_s']:.2f}",
                        f"{r['busy_ratio']:.2f}x"]
            rows.append(row)
        print("Training images/s, quiet and beside one busy process:\n")
        print(markdown_table(headers, rows))
    else:
        headers = ["network", "batch", "threads", "pyconvnet train img/s"]
        if torch_version:
            headers += ["PyTorch train img/s", "ratio"]
        headers += ["% sgemm peak", "pyconvnet predict img/s"]
        if torch_version:
            headers += ["PyTorch predict img/s", "ratio"]
        rows = []
        for r in results:
            row = [r["arch"], r["batch_size"], r["threads"], _fmt(r["train_img_s"])]
            if torch_version:
                row += [_fmt(r["torch_train_img_s"]), f"{r['train_ratio']:.2f}x"]
            row += [f"{100 * r['peak_fraction']:.0f}%", _fmt(r["predict_img_s"])]
            if torch_version:
                row += [_fmt(r["torch_predict_img_s"]), f"{r['predict_ratio']:.2f}x"]
            rows.append(row)
        print(markdown_table(headers, rows))
    if args.implementation:
        print("\nTraining images/s with every convolution forced to one "
              "implementation (\"auto\": the table above):\n")
        headers = ["network", "batch", "threads", "auto"] + args.implementation
        rows = []
        for r in results:
            cells = [r["arch"], r["batch_size"], r["threads"],
                     _fmt(r["train_img_s"]) + (f" ({r['train_ratio']:.2f}x)"
                                               if torch_version else "")]
            for impl in args.implementation:
                entry = r["implementations"].get(impl)
                cells.append("-" if entry is None else _fmt(entry["train_img_s"]) + (
                    f" ({entry['train_ratio']:.2f}x)" if torch_version else ""))
            rows.append(cells)
        print(markdown_table(headers, rows))
    print()
    for r in results:
        if "thread_gain" in r:
            print(f"{r['arch']}, batch {r['batch_size']}: {args.threads[0]} -> "
                  f"{r['threads']} threads, training {r['thread_gain']:.2f}x")
    if memory:
        print(f"\nfit on {args.memory_images:,} images of 28x28 (nielsen, 1 epoch, "
              f"batch 64): data {memory['data_mb']:.0f} MB; process RSS before fit "
              f"{memory['rss_before_fit_mb']:.0f} MB (interpreter, libraries, data), "
              f"peak during fit {memory['peak_rss_mb']:.0f} MB: fit added "
              f"{memory['fit_overhead_mb']:.0f} MB")
    write_json(args.json, {"machine": info, "repeats": args.repeats,
                           "torch": torch_version, "sgemm_gflops": peaks,
                           "contention": args.contention,
                           "results": results, "memory": memory})
    print(f"\nwrote {os.path.relpath(args.json)}")


if __name__ == "__main__":
    main()
