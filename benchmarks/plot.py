"""Render the benchmarks' JSON results as PNG charts.

    python benchmarks/plot.py [benchmarks/results/*.json]

Each JSON file (by default every one in benchmarks/results) is drawn next to
it with the same name and a .png extension. Needs matplotlib (in the ``bench`` extra).
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def _bars(ax, labels, series, ylabel, title, rotation=20):
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        xs = [k + (i - (len(series) - 1) / 2) * width for k in range(len(labels))]
        ax.bar(xs, values, width, label=name)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=rotation, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)


def plot_train(data, path):
    rows = data["results"]
    labels = [f"{r['arch']}, batch {r['batch_size']}, {r['threads']} thr" for r in rows]
    torch = data.get("torch")
    if data.get("contention"):
        fig, ax = plt.subplots(figsize=(11, 4.5))
        series = {"pyconvnet quiet": [r["train_img_s"] for r in rows],
                  "pyconvnet busy": [r["busy_train_img_s"] for r in rows]}
        if torch:
            series["PyTorch quiet"] = [r["torch_train_img_s"] for r in rows]
            series["PyTorch busy"] = [r["torch_busy_train_img_s"] for r in rows]
        _bars(ax, labels, series, "images/s",
              "Training beside one busy single-threaded process")
    else:
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
        train = {"pyconvnet": [r["train_img_s"] for r in rows]}
        pred = {"pyconvnet": [r["predict_img_s"] for r in rows]}
        if torch:
            train["PyTorch " + torch] = [r["torch_train_img_s"] for r in rows]
            pred["PyTorch " + torch] = [r["torch_predict_img_s"] for r in rows]
        _bars(axes[0], labels, train, "images/s", "Training")
        _bars(axes[1], labels, pred, "images/s", "predict_proba, batches of 1,000")
        for ax in axes:
            ax.set_yscale("log")
    fig.suptitle(f"{data['machine']['cpu']}, {data['machine']['cores']} cores",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _layer(shape):
    """A layer's short name: "wide3 conv2" or "conv1"."""
    words = shape.split()
    return " ".join(words[:2]) if not words[0].startswith("conv") else words[0]


def plot_ops(data, path):
    """Each layer under each implementation timed, at the largest thread
    count of the run, beside PyTorch and the sgemm peak."""
    threads = max(r["threads"] for r in data["conv"])
    conv = [r for r in data["conv"] if r["threads"] == threads]
    labels = [f"{_layer(r['shape'])} {r.get('implementation', '')}" for r in conv]
    series = {"pyconvnet": [r["fwd_bwd_gflops"] for r in conv]}
    if data.get("torch"):
        series["PyTorch " + data["torch"]] = [r["torch_fwd_bwd_gflops"] for r in conv]
    series["sgemm peak"] = [r["sgemm_peak_gflops"] for r in conv]
    fig, ax = plt.subplots(figsize=(12, 5))
    _bars(ax, labels, series, "GFLOP/s (direct convolution's count)",
          f"conv2d forward + backward, {threads} thread{'s' if threads > 1 else ''}",
          rotation=55)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_accuracy(data, path):
    """The ladder as a line per dataset; the best recipe's seeds and its
    ensemble as separate points."""
    fig, ax = plt.subplots(figsize=(8, 5))
    for dataset, rows in data["results"].items():
        if rows:
            xs = [r["train_seconds"] for r in rows]
            ys = [r["accuracy"] for r in rows]
            ax.plot(xs, ys, "o-", label=f"{dataset}: Nielsen's ladder")
            for r in rows:
                ax.annotate(r["rung"], (r["train_seconds"], r["accuracy"]), fontsize=7,
                            xytext=(3, -8), textcoords="offset points")
        best = data.get("best", {}).get(dataset)
        if best:
            runs = best["runs"]
            ax.plot([r["train_seconds"] for r in runs], [r["accuracy"] for r in runs],
                    "s", label=f"{dataset}: best recipe (one point per seed)")
            if "ensemble" in best:
                e = best["ensemble"]
                ax.plot([e["train_seconds"]], [e["accuracy"]], "*", markersize=12,
                        label=f"{dataset}: ensemble of 5 (soft voting)")
    ax.set_xscale("log")
    ax.set_xlabel("training time (s, log scale)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Accuracy against training time")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _plotter(path):
    name = os.path.basename(path)
    if name.startswith("accuracy"):
        return plot_accuracy
    return {"train.json": plot_train, "train-contention.json": plot_train,
            "ops.json": plot_ops}.get(name)


def main(argv=None):
    import glob

    paths = (argv if argv is not None else sys.argv[1:]) or sorted(
        glob.glob(os.path.join(HERE, "results", "*.json")))
    for path in paths:
        plot = _plotter(path)
        if plot is None or not os.path.exists(path):
            continue
        with open(path) as f:
            data = json.load(f)
        out = os.path.splitext(path)[0] + ".png"
        plot(data, out)
        print(f"wrote {os.path.relpath(out)}")


if __name__ == "__main__":
    main()
