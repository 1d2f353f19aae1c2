"""Training and prediction throughput of Nielsen's chapter-6 network.

conv 20@5x5 -> max-pool 2 -> conv 40@5x5 -> max-pool 2 -> dense 100 ->
softmax 10, ReLU, plain SGD, on 28x28 images (Fashion-MNIST when installed,
otherwise synthetic images of the same shape), trained through
ConvNetClassifier and, when torch is installed, the same network in PyTorch
(same layer sizes, He initialisation, SGD), in the same process, with the
same batch size and thread count. Reports images/s for one training epoch and
for predict_proba in batches of 1,000 (medians over repeats), the ratio to
PyTorch, and the peak memory of a one-epoch fit on 60,000 images.

    python benchmarks/bench_train.py [--n-train 10000] [--repeats 3]
"""
import argparse
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

LEARNING_RATE = 0.03


def load_images(n):
    """(X, y): n 28x28 float32 images in [0, 1] and their labels."""
    try:
        from pyconvnet.datasets import load_fashion_mnist

        data = load_fashion_mnist()
        X = data.data[:n].reshape(-1, 1, 28, 28)
        return np.ascontiguousarray(X, dtype=np.float32), data.target[:n], "Fashion-MNIST"
    except (ImportError, OSError):
        rng = np.random.default_rng(0)
        X = rng.random((n, 1, 28, 28), dtype=np.float32)
        y = rng.integers(0, 10, n)
        return X, y, "synthetic"


def pyconvnet_model(batch_size, n_threads):
    return ConvNetClassifier(
        conv_layers=((20, 5), (40, 5)), padding="valid", pooling="max",
        pool_size=2, hidden_layer_sizes=(100,), activation="relu",
        solver="sgd", momentum=0.0, learning_rate_init=LEARNING_RATE, alpha=0.0,
        batch_size=batch_size, n_threads=n_threads, dtype="float32",
        random_state=0,
    )


def bench_pyconvnet(X, y, batch_size, n_threads, repeats):
    model = pyconvnet_model(batch_size, n_threads)
    classes = np.unique(y)
    model.partial_fit(X[:batch_size * 4], y[:batch_size * 4], classes=classes)
    train = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.partial_fit(X, y)          # one epoch
        train.append(len(X) / (time.perf_counter() - start))
    predict = []
    for _ in range(repeats):
        start = time.perf_counter()
        for lo in range(0, len(X), 1000):
            model.predict_proba(X[lo:lo + 1000])
        predict.append(len(X) / (time.perf_counter() - start))
    return statistics.median(train), statistics.median(predict)


def bench_torch(X, y, batch_size, n_threads, repeats):
    import torch
    from torch import nn

    torch.set_num_threads(n_threads)
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(20, 40, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(640, 100), nn.ReLU(), nn.Linear(100, 10),
    )
    # The same initialisation scheme as ConvNetClassifier: He for the ReLU
    # layers, N(0, 1/n_in) for the output, zero biases.
    for m in net:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    nn.init.normal_(net[-1].weight, 0.0, (1 / 100) ** 0.5)
    optimizer = torch.optim.SGD(net.parameters(), lr=LEARNING_RATE)
    loss_fn = nn.CrossEntropyLoss()
    Xt = torch.from_numpy(X)
    yt = torch.from_numpy(np.searchsorted(np.unique(y), y))
    n = len(X)

    def epoch(count):
        perm = torch.randperm(count)
        for lo in range(0, count, batch_size):
            idx = perm[lo:lo + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(Xt[idx]), yt[idx])
            loss.backward()
            optimizer.step()

    net.train()
    epoch(batch_size * 4)
    train = []
    for _ in range(repeats):
        start = time.perf_counter()
        epoch(n)
        train.append(n / (time.perf_counter() - start))
    net.eval()
    predict = []
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            for lo in range(0, n, 1000):
                torch.softmax(net(Xt[lo:lo + 1000]), dim=1).numpy()
            predict.append(n / (time.perf_counter() - start))
    return statistics.median(train), statistics.median(predict)


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
    model = pyconvnet_model(64, None).set_params(max_iter=1)
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[10, 64])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--memory-images", type=int, default=60000)
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--json", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "results", "train.json"))
    args = parser.parse_args(argv)
    if args.memory_child:
        peak_memory_child(args.memory_child)
        return

    X, y, source = load_images(args.n_train)
    try:
        if args.no_torch:
            raise ImportError
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = None

    results = []
    for batch_size in args.batch_sizes:
        for n_threads in args.threads:
            ours = bench_pyconvnet(X, y, batch_size, n_threads, args.repeats)
            row = {"batch_size": batch_size, "threads": n_threads,
                   "train_img_s": ours[0], "predict_img_s": ours[1]}
            if torch_version:
                theirs = bench_torch(X, y, batch_size, n_threads, args.repeats)
                row.update(torch_train_img_s=theirs[0], torch_predict_img_s=theirs[1],
                           train_ratio=ours[0] / theirs[0],
                           predict_ratio=ours[1] / theirs[1])
            results.append(row)
    memory = measure_peak_memory(args.memory_images) if args.memory_images else None

    info = machine()
    print(f"Machine: {info['cpu']}, {info['cores']} cores. Data: {source}, "
          f"{len(X)} images 28x28; median of {args.repeats} epochs."
          + (f" PyTorch {torch_version}." if torch_version else " PyTorch not installed."))
    print()
    headers = ["batch", "threads", "pyconvnet train img/s"]
    if torch_version:
        headers += ["PyTorch train img/s", "ratio"]
    headers += ["pyconvnet predict img/s"]
    if torch_version:
        headers += ["PyTorch predict img/s", "ratio"]
    rows = []
    for r in results:
        row = [r["batch_size"], r["threads"], f"{r['train_img_s']:,.0f}"]
        if torch_version:
            row += [f"{r['torch_train_img_s']:,.0f}", f"{r['train_ratio']:.2f}x"]
        row += [f"{r['predict_img_s']:,.0f}"]
        if torch_version:
            row += [f"{r['torch_predict_img_s']:,.0f}", f"{r['predict_ratio']:.2f}x"]
        rows.append(row)
    print(markdown_table(headers, rows))
    by = {(r["batch_size"], r["threads"]): r for r in results}
    for bs in args.batch_sizes:
        if (bs, 1) in by and (bs, 2) in by:
            print(f"\nbatch {bs}: 1 -> 2 threads, training "
                  f"{by[(bs, 2)]['train_img_s'] / by[(bs, 1)]['train_img_s']:.2f}x faster")
    if memory:
        print(f"\nfit on {args.memory_images:,} images of 28x28 (1 epoch, batch 64): "
              f"data {memory['data_mb']:.0f} MB; process RSS before fit "
              f"{memory['rss_before_fit_mb']:.0f} MB (interpreter, libraries, data), "
              f"peak during fit {memory['peak_rss_mb']:.0f} MB: fit added "
              f"{memory['fit_overhead_mb']:.0f} MB")
    write_json(args.json, {"machine": info, "data": source, "n_train": len(X),
                           "repeats": args.repeats, "torch": torch_version,
                           "results": results, "memory": memory})
    print(f"\nwrote {os.path.relpath(args.json)}")


if __name__ == "__main__":
    main()
