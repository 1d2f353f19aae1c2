"""Helpers shared by the benchmarks: timing, machine description, output."""
import json
import os
import platform
import statistics
import time


def median_time(fn, repeats=7, warmup=2, min_time=0.05):
    """Median wall time of one call of fn, over `repeats` timed rounds.

    Each round repeats fn until it has run for at least `min_time` seconds, so
    short calls are not lost in the timer's resolution.
    """
    for _ in range(warmup):
        fn()
    rounds = []
    for _ in range(repeats):
        count = 0
        start = time.perf_counter()
        while True:
            fn()
            count += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
        rounds.append(elapsed / count)
    return statistics.median(rounds)


def machine():
    """A short description of this machine for the report."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        n_cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        n_cpus = os.cpu_count()
    return {"cpu": cpu, "cores": n_cpus, "python": platform.python_version()}


def write_json(path, payload):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)


def markdown_table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)
