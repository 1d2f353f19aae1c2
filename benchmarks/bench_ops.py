"""Throughput of pyconvnet's convolution and pooling ops, 1 and 2 threads.

Convolution is reported in GFLOP/s (2 flops per multiply-add of the direct
convolution; the backward pass counts the weight gradient and, where
computed, the input gradient: Winograd does fewer multiplies, so its figures
are effective rates and can pass the sgemm peak),
pooling in GB/s of memory touched (input read + output written, and for the
backward pass dy read + dx written). Beside them, in the same run: the same
ops in PyTorch (torch.nn.functional, autograd for the backward pass) when
torch is installed, and the machine's single-precision matrix-multiply peak
(numpy's sgemm on 2048x2048 matrices) for the same thread count.

    python benchmarks/bench_ops.py [--repeats 7] [--json benchmarks/results/ops.json]
        [--implementation NAME [NAME ...] | all]

``--implementation`` times the registered convolution implementations named
(``ops.implementations()``; ``all``: every compiled one), each on the layers
it supports, side by side with PyTorch (default: what "auto" picks, or
``PYCONVNET_CONV``). The layers are the second convolutions of
bench_train.py's networks (and their first, with a single channel or three)
besides the classic shapes. ``--compare-isas`` instead times the convolutions under
each instruction-set build this CPU runs (``pyconvnet._kernels``), switched
call by call in one process, and reports each one's time against the
generic build's.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine, markdown_table, median_time, write_json  # noqa: E402

from threadpoolctl import threadpool_limits  # noqa: E402

from pyconvnet import _dispatch, ops  # noqa: E402
from pyconvnet._threads import blas_single_threaded  # noqa: E402

# name: (x shape, weight shape, padding, input gradient wanted)
CONV_SHAPES = {
    "conv1 64x1x28x28 20@5x5": ((64, 1, 28, 28), (20, 1, 5, 5), 0, False),
    "conv2 64x20x12x12 40@5x5": ((64, 20, 12, 12), (40, 20, 5, 5), 0, True),
    "conv3x3 64x32x16x16 64@3x3 pad1": ((64, 32, 16, 16), (64, 32, 3, 3), 1, True),
    "wide3 conv1 64x1x28x28 32@3x3 pad1": ((64, 1, 28, 28), (32, 1, 3, 3), 1, False),
    "wide3 conv2 64x32x14x14 64@3x3 pad1": ((64, 32, 14, 14), (64, 32, 3, 3), 1, True),
    "wide5 conv1 64x1x28x28 32@5x5 pad2": ((64, 1, 28, 28), (32, 1, 5, 5), 2, False),
    "wide5 conv2 64x32x14x14 64@5x5 pad2": ((64, 32, 14, 14), (64, 32, 5, 5), 2, True),
    "rgb32 conv1 64x3x32x32 32@3x3 pad1": ((64, 3, 32, 32), (32, 3, 3, 3), 1, False),
}
# name: x shape (pooled 2x2)
POOL_SHAPES = {
    "pool1 64x20x24x24": (64, 20, 24, 24),
    "pool2 64x40x8x8": (64, 40, 8, 8),
}


def sgemm_peak(n_threads, repeats):
    """GFLOP/s of numpy's float32 matrix product, 2048^3, on n_threads."""
    rng = np.random.default_rng(2)
    a = rng.standard_normal((2048, 2048)).astype(np.float32)
    b = rng.standard_normal((2048, 2048)).astype(np.float32)
    # The best of several medians: a peak, on a machine other jobs share.
    with threadpool_limits(limits=n_threads, user_api="blas"):
        t = min(median_time(lambda: a @ b, repeats) for _ in range(3))
    return 2 * 2048 ** 3 / t / 1e9


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def torch_conv(x, w, b, pad, want_dx, n_threads, repeats):
    """(forward s, backward s) of the same convolution in PyTorch."""
    torch = _torch()
    torch.set_num_threads(n_threads)
    F = torch.nn.functional
    xt = torch.from_numpy(x).requires_grad_(want_dx)
    wt = torch.from_numpy(w).requires_grad_(True)
    bt = torch.from_numpy(b).requires_grad_(True)
    with torch.no_grad():
        t_fwd = median_time(lambda: F.conv2d(xt, wt, bt, padding=pad), repeats)
    out = F.conv2d(xt, wt, bt, padding=pad)
    g = torch.ones_like(out)
    inputs = [xt, wt, bt] if want_dx else [wt, bt]
    t_bwd = median_time(
        lambda: torch.autograd.grad(out, inputs, g, retain_graph=True), repeats
    )
    return t_fwd, t_bwd


def torch_pool(x, kind, n_threads, repeats):
    torch = _torch()
    torch.set_num_threads(n_threads)
    F = torch.nn.functional
    xt = torch.from_numpy(x).requires_grad_(True)
    pool = {"max": lambda v: F.max_pool2d(v, 2),
            "l2": lambda v: F.lp_pool2d(v, 2, 2),
            "avg": lambda v: F.avg_pool2d(v, 2)}[kind]
    with torch.no_grad():
        t_fwd = median_time(lambda: pool(xt), repeats)
    out = pool(xt)
    g = torch.ones_like(out)
    t_bwd = median_time(lambda: torch.autograd.grad(out, [xt], g, retain_graph=True),
                        repeats)
    return t_fwd, t_bwd


def _names(implementation):
    """The implementations asked for: one name, several, "all" (every
    compiled one) or None (what "auto" picks)."""
    from pyconvnet._kernels import registry

    if implementation is None or isinstance(implementation, str):
        implementation = [implementation]
    if list(implementation) == ["all"]:
        return [n for n in registry.names() if not registry.get(n).reference]
    return list(implementation)


def bench_conv(threads, repeats, dtype, implementation=None):
    from pyconvnet._geometry import ConvGeometry
    from pyconvnet._kernels import registry

    rows = []
    rng = np.random.default_rng(0)
    for name, (xs, ws, pad, want_dx) in CONV_SHAPES.items():
        x = rng.standard_normal(xs).astype(dtype)
        w = rng.standard_normal(ws).astype(dtype)
        b = rng.standard_normal(ws[0]).astype(dtype)
        y = ops.conv2d(x, w, b, padding=pad)
        dy = rng.standard_normal(y.shape).astype(dtype)
        macs = y.size * ws[1] * ws[2] * ws[3]
        bwd_flops = 2 * macs * (2 if want_dx else 1)
        geometry = ConvGeometry.of_arrays(xs, ws, (1, 1), (pad, pad))
        for n in threads:
            torch_times = None
            if _torch() is not None and dtype == np.float32:
                torch_times = torch_conv(x, w, b, pad, want_dx, n, repeats)
            for impl in _names(implementation):
                try:
                    chosen = registry.select(impl, geometry, dtype, xs[0]).name
                except ValueError:
                    continue            # an implementation for other layers
                t_fwd = median_time(lambda: ops.conv2d(
                    x, w, b, padding=pad, n_threads=n, implementation=impl),
                    repeats)
                t_bwd = median_time(lambda: ops.conv2d_grad(
                    dy, x, w, padding=pad, input_grad=want_dx, n_threads=n,
                    implementation=impl), repeats)
                row = {
                    "op": "conv2d", "shape": name, "threads": n,
                    "implementation": chosen if impl in (None, "auto") else impl,
                    "fwd_ms": t_fwd * 1e3, "bwd_ms": t_bwd * 1e3,
                    "fwd_gflops": 2 * macs / t_fwd / 1e9,
                    "bwd_gflops": bwd_flops / t_bwd / 1e9,
                    "fwd_bwd_gflops": (2 * macs + bwd_flops) / (t_fwd + t_bwd) / 1e9,
                    "input_grad": want_dx,
                }
                if torch_times is not None:
                    tf, tb = torch_times
                    row["torch_fwd_bwd_gflops"] = (2 * macs + bwd_flops) / (tf + tb) / 1e9
                    row["vs_torch_fwd"] = tf / t_fwd
                    row["vs_torch_bwd"] = tb / t_bwd
                rows.append(row)
    return rows


def bench_pool(threads, repeats, dtype):
    rows = []
    rng = np.random.default_rng(1)
    for name, xs in POOL_SHAPES.items():
        x = rng.standard_normal(xs).astype(dtype)
        for kind in ops.POOL_KINDS:
            y = ops.pool2d(x, 2, kind=kind)
            dy = rng.standard_normal(y.shape).astype(dtype)
            nbytes = (x.nbytes + y.nbytes)
            for n in threads:
                t_fwd = median_time(lambda: ops.pool2d(x, 2, kind=kind, n_threads=n),
                                    repeats)
                # The backward kernel alone, from the forward pass's cache
                # (the public pool2d_grad recomputes the forward pass).
                y, cache = _dispatch.pool_forward(x, kind, (2, 2), (2, 2), n)
                t_bwd = median_time(
                    lambda: _dispatch.pool_backward(dy, x, y, cache, kind, (2, 2), (2, 2), n),
                    repeats,
                )
                row = {
                    "op": f"pool2d {kind}", "shape": name, "threads": n,
                    "fwd_ms": t_fwd * 1e3, "bwd_ms": t_bwd * 1e3,
                    "fwd_gbs": nbytes / t_fwd / 1e9,
                    "bwd_gbs": nbytes / t_bwd / 1e9,
                }
                if _torch() is not None and dtype == np.float32:
                    tf, tb = torch_pool(x, kind, n, repeats)
                    row["torch_fwd_gbs"] = nbytes / tf / 1e9
                    row["torch_bwd_gbs"] = nbytes / tb / 1e9
                rows.append(row)
    return rows


def compare_isas(threads, repeats, dtype):
    """Each convolution's forward and backward time under every
    instruction-set build, switched call by call, against the generic one."""
    import statistics
    import time

    import pyconvnet._kernels as kernels

    isas = kernels.available_isas()
    rng = np.random.default_rng(0)
    before = kernels.current_isa()
    print(f"instruction sets: {', '.join(isas)}; median of {repeats}, "
          "ms (time / generic's)")
    try:
        for name, (xs, ws, pad, want_dx) in CONV_SHAPES.items():
            x = rng.standard_normal(xs).astype(dtype)
            w = rng.standard_normal(ws).astype(dtype)
            dy = rng.standard_normal(ops.conv2d(x, w, padding=pad).shape).astype(dtype)
            for n in threads:
                calls = {"forward": lambda: ops.conv2d(x, w, padding=pad, n_threads=n),
                         "backward": lambda: ops.conv2d_grad(
                             dy, x, w, padding=pad, input_grad=want_dx, n_threads=n)}
                times = {(isa, part): [] for isa in isas for part in calls}
                for r in range(repeats + 1):
                    for isa in (isas if r % 2 == 0 else isas[::-1]):
                        kernels.set_isa(isa)
                        for part, call in calls.items():
                            start = time.perf_counter()
                            call()
                            if r:               # the first round warms up
                                times[isa, part].append(time.perf_counter() - start)
                line = f"{name:34s} {n} thr"
                for part in calls:
                    base = statistics.median(times["generic", part])
                    line += f"  {part}:" + "".join(
                        f" {isa} {statistics.median(times[isa, part]) * 1e3:.2f}"
                        f" ({statistics.median(times[isa, part]) / base:.2f})"
                        for isa in isas)
                print(line)
    finally:
        kernels.set_isa(before)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--implementation", nargs="+", default=None,
                        help="registered convolution implementations, or all")
    parser.add_argument("--compare-isas", action="store_true",
                        help="time every instruction-set build, alternating")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--json", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "results", "ops.json"))
    args = parser.parse_args(argv)
    dtype = np.dtype(args.dtype).type
    if args.compare_isas:
        with blas_single_threaded():
            compare_isas(args.threads, args.repeats, dtype)
        return
    peaks = {n: sgemm_peak(n, args.repeats) for n in args.threads}
    with blas_single_threaded():
        conv = bench_conv(args.threads, args.repeats, dtype, args.implementation)
        pool = bench_pool(args.threads, args.repeats, dtype)
    torch = _torch()
    has_torch = torch is not None and dtype == np.float32

    info = machine()
    print(f"Machine: {info['cpu']}, {info['cores']} cores; dtype {args.dtype}; "
          f"median of {args.repeats}"
          + (f"; PyTorch {torch.__version__}" if has_torch else "; no PyTorch") + "\n")
    print("sgemm peak (numpy, 2048^3): " + ", ".join(
        f"{peaks[n]:.0f} GFLOP/s on {n} thread{'s' if n > 1 else ''}" for n in args.threads))
    print()
    one = {(r["op"], r["shape"], r.get("implementation")): r
           for r in conv + pool if r["threads"] == 1}
    rows = []
    for r in conv:
        base = one.get((r["op"], r["shape"], r["implementation"]), r)
        r["sgemm_peak_gflops"] = peaks[r["threads"]]
        row = [r["shape"], r["implementation"], r["threads"],
               f"{r['fwd_gflops']:.1f}", f"{r['bwd_gflops']:.1f}",
               f"{r['fwd_bwd_gflops']:.1f}",
               f"{r['fwd_bwd_gflops'] / peaks[r['threads']]:.0%}"]
        if has_torch:
            row += [f"{r['torch_fwd_bwd_gflops']:.1f}",
                    f"{r['vs_torch_fwd']:.2f}x", f"{r['vs_torch_bwd']:.2f}x",
                    f"{r['fwd_bwd_gflops'] / r['torch_fwd_bwd_gflops']:.2f}x"]
        row.append(f"{(base['fwd_ms'] + base['bwd_ms']) / (r['fwd_ms'] + r['bwd_ms']):.2f}x")
        rows.append(row)
    headers = ["conv2d", "implementation", "threads", "fwd GFLOP/s",
               "bwd GFLOP/s", "fwd+bwd GFLOP/s", "of sgemm peak"]
    if has_torch:
        headers += ["PyTorch fwd+bwd GFLOP/s", "fwd vs PyTorch", "bwd vs PyTorch",
                    "fwd+bwd vs PyTorch"]
    print(markdown_table(headers + ["speed-up vs 1 thread"], rows))
    print()
    rows = []
    for r in pool:
        base = one.get((r["op"], r["shape"], None), r)
        row = [r["op"], r["shape"], r["threads"], f"{r['fwd_gbs']:.1f}",
               f"{r['bwd_gbs']:.1f}"]
        if has_torch:
            row += [f"{r['torch_fwd_gbs']:.1f}", f"{r['torch_bwd_gbs']:.1f}"]
        row.append(f"{(base['fwd_ms'] + base['bwd_ms']) / (r['fwd_ms'] + r['bwd_ms']):.2f}x")
        rows.append(row)
    headers = ["pooling", "shape", "threads", "fwd GB/s", "bwd GB/s"]
    if has_torch:
        headers += ["PyTorch fwd GB/s", "PyTorch bwd GB/s"]
    print(markdown_table(headers + ["speed-up vs 1 thread"], rows))
    write_json(args.json, {"machine": info, "dtype": args.dtype,
                           "repeats": args.repeats, "sgemm_peak_gflops": peaks,
                           "torch": torch.__version__ if has_torch else None,
                           "conv": conv, "pool": pool})
    print(f"\nwrote {os.path.relpath(args.json)}")


if __name__ == "__main__":
    main()
