"""Two versions of pyconvnet training and predicting side by side.

On a shared machine the speed of the same code drifts by tens of percent
between runs, so two versions timed one after the other measure the machine.
Two versions of a package cannot share one process, so this script starts
two worker processes per source tree (each built in place, e.g. ``pip
install -e .`` or ``python setup.py build_ext --inplace``) and has them run
in alternation, one training epoch (``partial_fit``) and one
``predict_proba`` pass at a time, while the others wait: whatever slows the
machine slows both. The order A1 B1 A2 B2 is rotated by one every round,
so that no worker ever runs twice in a row (a process that runs again at
once finds its data still in cache: with the order simply reversed every
other round, the same tree compared with itself came out 2-8% "faster" in
the workers at the ends). A version's time in a round is the mean of its
two workers'. It reports each version's
median images/s and the median over rounds of the per-round ratio B/A
(above 1: B is faster).

    python benchmarks/ab_train.py OLD_TREE NEW_TREE [--arch nielsen wide5 ...]
        [--batch 64] [--threads 2] [--rounds 7] [--n-images 2048]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

# name: (image shape (C, H, W), conv layers, padding, dense units, batch norm)
ARCHITECTURES = {
    "nielsen": ((1, 28, 28), ((20, 5), (40, 5)), "valid", 100, False),
    "wide5": ((1, 28, 28), ((32, 5), (64, 5)), "same", 256, False),
    "wide3": ((1, 28, 28), ((32, 3), (64, 3)), "same", 256, False),
    "rgb32": ((3, 32, 32), ((32, 3), (64, 3)), "same", 256, False),
    "bn": ((1, 28, 28), ((32, 3), (64, 3)), "same", 256, True),
}

WORKER = r'''
import json, sys, time, warnings
import numpy as np
import pyconvnet
from pyconvnet import ConvNetClassifier
tree = sys.argv[1]
assert pyconvnet.__file__.startswith(tree), (pyconvnet.__file__, tree)
print(json.dumps({"ready": pyconvnet.__file__}), flush=True)
models = {}
for line in sys.stdin:
    cmd = json.loads(line)
    key = (cmd["arch"], cmd["batch"], cmd["threads"])
    shape = tuple(cmd["shape"])
    rng = np.random.default_rng(0)
    X = rng.random((cmd["n_images"],) + shape, dtype=np.float32)
    y = np.arange(cmd["n_images"]) % 10
    if key not in models:
        model = ConvNetClassifier(
            conv_layers=tuple(map(tuple, cmd["conv"])), padding=cmd["padding"],
            hidden_layer_sizes=(cmd["dense"],), batch_norm=cmd["bn"],
            solver="sgd", learning_rate_init=0.01, batch_size=cmd["batch"],
            n_threads=cmd["threads"], max_iter=1, random_state=0, tol=0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X[:cmd["batch"] * 4], y[:cmd["batch"] * 4])
        models[key] = model
    model = models[key]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        model.partial_fit(X, y)
        train = time.perf_counter() - start
    start = time.perf_counter()
    model.predict_proba(X)
    predict = time.perf_counter() - start
    print(json.dumps({"train": train, "predict": predict}), flush=True)
'''


class Worker:
    def __init__(self, tree):
        tree = os.path.abspath(tree)
        env = dict(os.environ, PYTHONPATH=tree)
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER, os.path.join(tree, "")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
            cwd=tempfile.gettempdir())
        ready = json.loads(self.process.stdout.readline())
        self.module = ready["ready"]

    def run(self, command):
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def compare(workers, command, rounds):
    """Per version, the seconds of each round (the mean of its workers'),
    timed in alternation."""
    names = list(workers)
    for name in names:                    # warm-up: not timed
        workers[name].run(command)
    times = {label: [] for label in ("A", "B")}
    for r in range(rounds):
        this_round = {}
        for name in names[r % len(names):] + names[:r % len(names)]:
            this_round[name] = workers[name].run(command)
        for label in times:
            runs = [t for name, t in this_round.items() if name[0] == label]
            times[label].append({part: sum(t[part] for t in runs) / len(runs)
                                 for part in runs[0]})
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="source tree A (built in place)")
    parser.add_argument("b", help="source tree B (built in place)")
    parser.add_argument("--arch", nargs="+", default=list(ARCHITECTURES),
                        choices=list(ARCHITECTURES))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--n-images", type=int, default=2048)
    args = parser.parse_args(argv)
    workers = {}
    for name in ("A1", "B1", "A2", "B2"):
        workers[name] = Worker(args.a if name[0] == "A" else args.b)
    try:
        print(f"A: {workers['A1'].module}\nB: {workers['B1'].module}")
        print(f"batch {args.batch}, {args.threads} threads, {args.n_images} "
              f"images, {args.rounds} rounds in alternation; images/s "
              "(median), B/A (median of per-round ratios)")
        for name in args.arch:
            shape, conv, padding, dense, bn = ARCHITECTURES[name]
            command = dict(arch=name, shape=shape, conv=conv, padding=padding,
                           dense=dense, bn=bn, batch=args.batch,
                           threads=args.threads, n_images=args.n_images)
            times = compare(workers, command, args.rounds)
            line = f"{name:8s}"
            for part in ("train", "predict"):
                a = [t[part] for t in times["A"]]
                b = [t[part] for t in times["B"]]
                ratio = statistics.median(x / y for x, y in zip(a, b))
                line += (f"  {part} A {args.n_images / statistics.median(a):8,.0f}"
                         f" B {args.n_images / statistics.median(b):8,.0f}"
                         f" ({ratio:.3f})")
            print(line, flush=True)
    finally:
        for worker in workers.values():
            worker.close()


if __name__ == "__main__":
    main()
