import pickle
import warnings

import joblib
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from pyconvnet import ConvNetClassifier

# A small, fast network for the behavioural tests.
SMALL = dict(conv_layers=((4, 3),), hidden_layer_sizes=(16,), max_iter=5,
             learning_rate_init=0.01,
             random_state=0)


@pytest.fixture(scope="module")
def digits_split(digits):
    X, y = digits
    return train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)


def _quiet_fit(model, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(*args, **kwargs)


def test_digits_accuracy_with_defaults(digits_split):
    X_train, X_test, y_train, y_test = digits_split
    model = ConvNetClassifier(random_state=0).fit(X_train, y_train)
    assert model.score(X_test, y_test) >= 0.97
    proba = model.predict_proba(X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(model.classes_[proba.argmax(1)], model.predict(X_test))


def test_float32_input_is_not_upcast(digits):
    X, y = digits
    model = _quiet_fit(ConvNetClassifier(**SMALL), X[:200], y[:200])
    assert all(c.dtype == np.float32 for c in model.coefs_)
    assert model.predict_proba(X[:10]).dtype == np.float32
    model64 = _quiet_fit(ConvNetClassifier(**SMALL), X[:200].astype(np.float64), y[:200])
    assert all(c.dtype == np.float64 for c in model64.coefs_)
    model_forced = _quiet_fit(ConvNetClassifier(dtype="float32", **SMALL),
                              X[:200].astype(np.float64), y[:200])
    assert all(c.dtype == np.float32 for c in model_forced.coefs_)


def test_fitted_attributes(digits):
    X, y = digits
    model = _quiet_fit(ConvNetClassifier(**SMALL), X[:300], y[:300])
    assert model.n_features_in_ == 64
    assert model.image_shape_ == (1, 8, 8)
    assert model.n_iter_ == 5 and model.t_ == 5 * 300
    assert len(model.loss_curve_) == 5 and model.loss_ == model.loss_curve_[-1]
    assert model.best_loss_ == min(model.loss_curve_)
    assert model.validation_scores_ is None and model.best_validation_score_ is None
    assert model.coefs_[0].shape == (4, 1, 3, 3)     # filters, plottable
    assert model.coefs_[1].shape == (4 * 4 * 4, 16)  # 8x8 -> pool -> 4x4
    assert [b.shape for b in model.intercepts_] == [(4,), (16,), (10,)]
    assert model.n_layers_ == 5
    kinds = [row["kind"] for row in model.layers_]
    assert kinds == ["input", "conv", "pool", "flatten", "dense",
                     "activation", "dense", "softmax"]
    assert model.layers_[1]["layer"] == "conv 4@3x3 pad 1x1, relu"
    total = sum(row["n_params"] for row in model.layers_)
    assert total == sum(c.size for c in model.coefs_) + sum(b.size for b in model.intercepts_)


def test_loss_decreases_and_convergence_warning(digits):
    X, y = digits
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        model = ConvNetClassifier(**SMALL).fit(X[:300], y[:300])
    assert model.loss_curve_[-1] < model.loss_curve_[0]


def test_image_shapes_3d_4d_and_explicit(digits):
    X, y = digits
    X, y = X[:200], y[:200]
    flat = _quiet_fit(ConvNetClassifier(**SMALL), X, y)
    as3d = _quiet_fit(ConvNetClassifier(**SMALL), X.reshape(-1, 8, 8), y)
    as4d = _quiet_fit(ConvNetClassifier(**SMALL), X.reshape(-1, 1, 8, 8), y)
    explicit = _quiet_fit(ConvNetClassifier(image_shape=(8, 8), **SMALL), X, y)
    p = flat.predict_proba(X)
    for other in (as3d, as4d, explicit):
        np.testing.assert_array_equal(other.predict_proba(X), p)
    np.testing.assert_array_equal(as4d.predict_proba(X.reshape(-1, 1, 8, 8)), p)
    assert as4d.n_features_in_ == 64 and as4d.image_shape_ == (1, 8, 8)
    # two channels of 4x8
    two = _quiet_fit(ConvNetClassifier(image_shape=(2, 4, 8), **SMALL), X, y)
    assert two.coefs_[0].shape[1] == 2
    # a non-square row length becomes a 1 x n strip
    strip = _quiet_fit(ConvNetClassifier(**SMALL), X[:, :10], y)
    assert strip.image_shape_ == (1, 1, 10)
    with pytest.raises(ValueError, match="images of shape"):
        as4d.predict(X.reshape(-1, 1, 4, 16))


def test_string_integer_and_boolean_labels(digits):
    X, y = digits
    X, y = X[:200], y[:200]
    for labels in (np.array(["zero", "one"])[(y % 2)], (y % 2).astype(bool),
                   y + 100):
        model = _quiet_fit(ConvNetClassifier(**SMALL), X, labels)
        assert set(model.predict(X)) <= set(labels)
        assert list(model.classes_) == sorted(set(labels))


def test_pipeline_and_grid_search(digits):
    X, y = digits
    pipe = make_pipeline(MinMaxScaler(), ConvNetClassifier(**{**SMALL, "max_iter": 20}))
    search = GridSearchCV(
        pipe,
        {"convnetclassifier__pooling": ["max", "l2"],
         "convnetclassifier__learning_rate_init": [1e-3, 1e-2]},
        cv=2, n_jobs=2, error_score="raise",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X[:600], y[:600])
    assert search.best_score_ > 0.8
    assert search.predict(X[600:700]).shape == (100,)
    assert len(search.cv_results_["params"]) == 4
    scores = cross_val_score(ConvNetClassifier(**{**SMALL, "max_iter": 20}),
                             X[:400], y[:400], cv=2)
    assert np.all(scores > 0.5)


def test_pickle_and_joblib_round_trips(digits, tmp_path):
    X, y = digits
    model = _quiet_fit(ConvNetClassifier(dropout=0.2, **SMALL), X[:300], y[:300])
    expected = model.predict_proba(X)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict_proba(X), expected)
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    np.testing.assert_array_equal(joblib.load(path).predict_proba(X), expected)
    # a restored model keeps training
    _quiet_fit(restored.set_params(warm_start=True), X[:300], y[:300])
    assert restored.n_iter_ == 5 and len(restored.loss_curve_) == 10
    assert restored.t_ == 2 * model.t_


@pytest.mark.parametrize("pooling", ["max", "l2", "avg"])
def test_same_random_state_same_weights_whatever_the_threads(digits, pooling):
    X, y = digits
    # 70 hidden units: the dense products span more than one tile.
    params = dict(conv_layers=((6, 3), (8, 3)), hidden_layer_sizes=(70,),
                  pooling=pooling, dropout=0.3, max_iter=3, random_state=7,
                  batch_size=37)
    one = _quiet_fit(ConvNetClassifier(n_threads=1, **params), X[:500], y[:500])
    two = _quiet_fit(ConvNetClassifier(n_threads=2, **params), X[:500], y[:500])
    again = _quiet_fit(ConvNetClassifier(n_threads=2, **params), X[:500], y[:500])
    for a, b, c in zip(one.coefs_ + one.intercepts_, two.coefs_ + two.intercepts_,
                       again.coefs_ + again.intercepts_):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(b, c)
    assert one.loss_curve_ == two.loss_curve_
    other_seed = _quiet_fit(ConvNetClassifier(n_threads=1, **{**params, "random_state": 8}),
                            X[:500], y[:500])
    assert not np.array_equal(other_seed.coefs_[0], one.coefs_[0])


def test_predict_in_batches_is_batch_independent(digits):
    X, y = digits
    model = _quiet_fit(ConvNetClassifier(**SMALL), X[:300], y[:300])
    big = np.concatenate([X] * 2)  # > one prediction batch
    proba = model.predict_proba(big)
    np.testing.assert_allclose(proba[:10], model.predict_proba(big[:10]), rtol=1e-6)
    np.testing.assert_allclose(proba[-10:], model.predict_proba(big[-10:]), rtol=1e-6)


def test_early_stopping_keeps_best_weights(digits):
    X, y = digits
    params = {**SMALL, "early_stopping": True, "n_iter_no_change": 3,
              "validation_fraction": 0.2, "max_iter": 40, "learning_rate_init": 0.03}
    model = _quiet_fit(ConvNetClassifier(**params), X[:500], y[:500])
    assert model.best_loss_ is None
    assert len(model.validation_scores_) == model.n_iter_
    assert model.best_validation_score_ == max(model.validation_scores_)
    best_epoch = int(np.argmax(model.validation_scores_)) + 1
    assert best_epoch < model.n_iter_  # it trained past its best epoch
    # The same run stopped at the best epoch ends with the weights the
    # early-stopped model restored.
    at_best = _quiet_fit(ConvNetClassifier(**{**params, "max_iter": best_epoch}),
                         X[:500], y[:500])
    for a, b in zip(model.coefs_ + model.intercepts_,
                    at_best.coefs_ + at_best.intercepts_):
        np.testing.assert_array_equal(a, b)


def test_sample_weight_changes_the_fit(digits):
    X, y = digits
    X, y = X[:300], y[:300]
    w = np.where(y == 3, 5.0, 1.0)
    plain = _quiet_fit(ConvNetClassifier(**SMALL), X, y)
    weighted = _quiet_fit(ConvNetClassifier(**SMALL), X, y, sample_weight=w)
    ones = _quiet_fit(ConvNetClassifier(**SMALL), X, y, sample_weight=np.ones(300))
    np.testing.assert_array_equal(ones.predict_proba(X), plain.predict_proba(X))
    assert (weighted.predict_proba(X)[:, 3].mean()
            > plain.predict_proba(X)[:, 3].mean())


def test_partial_fit_streams_batches_with_missing_classes(digits):
    X, y = digits
    model = ConvNetClassifier(**{**SMALL, "learning_rate_init": 0.01})
    classes = np.unique(y)
    with pytest.raises(ValueError, match="classes"):
        ConvNetClassifier(**SMALL).partial_fit(X[:50], y[:50])
    for _ in range(3):
        for start in range(0, 600, 100):
            batch = slice(start, start + 100)
            keep = y[batch] != (start // 100)  # one class missing from each batch
            model.partial_fit(X[batch][keep], y[batch][keep], classes=classes)
    # as MLPClassifier (scikit-learn >= 1.9): n_iter_ is the last call's
    # epochs, t_ and loss_curve_ count them all
    assert model.n_iter_ == 1 and len(model.loss_curve_) == 18
    assert list(model.classes_) == list(classes)
    assert model.score(X[600:], y[600:]) > 0.5
    with pytest.raises(ValueError, match="not seen"):
        model.partial_fit(X[:10], np.full(10, 99))


def test_warm_start_continues(digits):
    X, y = digits
    model = _quiet_fit(ConvNetClassifier(warm_start=True, **SMALL), X[:300], y[:300])
    first = [c.copy() for c in model.coefs_]
    _quiet_fit(model, X[:300], y[:300])
    assert model.n_iter_ == 5 and len(model.loss_curve_) == 10
    assert model.t_ == 10 * 300
    assert not np.array_equal(first[0], model.coefs_[0])
    cold = _quiet_fit(ConvNetClassifier(**SMALL), X[:300], y[:300])
    _quiet_fit(cold, X[:300], y[:300])
    assert cold.n_iter_ == 5


def test_dataframe_feature_names(digits):
    pd = pytest.importorskip("pandas")
    X, y = digits
    frame = pd.DataFrame(X[:200], columns=[f"px{i}" for i in range(64)])
    model = _quiet_fit(ConvNetClassifier(**SMALL), frame, y[:200])
    np.testing.assert_array_equal(model.feature_names_in_, frame.columns)
    with pytest.warns(UserWarning, match="feature names"):
        model.predict(X[:5])


def test_verbose_prints_architecture_and_epochs(digits, capsys):
    X, y = digits
    _quiet_fit(ConvNetClassifier(verbose=1, **SMALL), X[:200], y[:200])
    out = capsys.readouterr().out
    assert "conv 4@3x3 pad 1x1, relu" in out and "max-pool 2x2" in out
    assert "dense 16" in out
    assert out.count("Epoch ") == 5 and "images/s" in out


def _interrupt_training_at(monkeypatch, call):
    """Make the ``call``-th training forward pass of a dense layer raise
    KeyboardInterrupt, as a user's Ctrl-C would."""
    from pyconvnet import _layers

    calls = {"n": 0}
    original = _layers.Dense.forward

    def interrupting_forward(self, x, training):
        if training:
            calls["n"] += 1
            if calls["n"] == call:
                raise KeyboardInterrupt
        return original(self, x, training)

    monkeypatch.setattr(_layers.Dense, "forward", interrupting_forward)


def test_keyboard_interrupt_leaves_a_usable_model(digits, monkeypatch):
    X, y = digits
    _interrupt_training_at(monkeypatch, 15)
    with pytest.warns(UserWarning, match="interrupted"):
        model = ConvNetClassifier(**{**SMALL, "batch_size": 50}).fit(X[:300], y[:300])
    monkeypatch.undo()
    assert model.n_iter_ == 1  # 6 batches an epoch, 2 forward calls a batch
    proba = model.predict_proba(X[:20])
    assert np.all(np.isfinite(proba))
    assert all(np.isfinite(c).all() for c in model.coefs_)


def test_interrupt_in_the_first_epoch_still_saves(digits, monkeypatch, tmp_path):
    import pyconvnet

    X, y = digits
    _interrupt_training_at(monkeypatch, 3)  # the second batch of the first epoch
    with pytest.warns(UserWarning, match="interrupted"):
        model = ConvNetClassifier(**{**SMALL, "batch_size": 50}).fit(X[:300], y[:300])
    monkeypatch.undo()
    assert model.n_iter_ == 0 and model.loss_ is None
    pyconvnet.save(model, tmp_path / "m.npz")
    loaded = pyconvnet.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.predict_proba(X[:20]),
                                  model.predict_proba(X[:20]))


def test_divergence_raises_and_keeps_finite_weights(digits):
    X, y = digits
    model = ConvNetClassifier(**{**SMALL, "max_iter": 20, "solver": "sgd",
                                 "learning_rate_init": 1e6})
    with pytest.raises(ValueError, match="diverged"):
        model.fit(X[:300] * 100, y[:300])
    assert all(np.isfinite(p).all() for p in model._network.params)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_overflowing_input_raises_for_every_seed(solver):
    """Inputs near float64's maximum overflow the gradients. Some seeds used
    to keep every weight finite while Adam's squared-gradient moment became
    infinite, which froze training into a constant model without an error."""
    rng = np.random.RandomState(0)
    X = np.finfo(np.float64).max * rng.uniform(size=(10, 4))
    y = np.arange(10) % 2
    for seed in range(100):
        model = ConvNetClassifier(conv_layers=((3, 3),), hidden_layer_sizes=(10,),
                                  solver=solver, max_iter=3, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(ValueError, match="diverged"):
                model.fit(X, y)
        assert np.isfinite(model._network.flat_params).all()


BAD_PARAMS = [
    (dict(pooling="median"), "pooling"),
    (dict(dropout=1.0), "dropout"),
    (dict(dropout=-0.1), "dropout"),
    (dict(conv_layers=((0, 3),)), r"ints in \[1, 2147483647\]"),
    (dict(conv_layers=((4, -3),)), r"ints in \[1, 2147483647\]"),
    (dict(conv_layers=((4, 3, 2**31),)), r"ints in \[1, 2147483647\]"),
    (dict(conv_layers=((10**30, 3),)), r"ints in \[1, 2147483647\]"),
    (dict(hidden_layer_sizes=(2**31,)), "hidden_layer_sizes"),
    (dict(n_threads=100000), "n_threads"),
    (dict(n_threads=2**31), "n_threads"),
    (dict(conv_layers=((4, 3, 1, 9),)), "conv_layers"),
    (dict(conv_layers=5), "conv_layers"),
    (dict(hidden_layer_sizes=(10, 0)), "hidden_layer_sizes"),
    (dict(pool_size=0), "pool_size"),
    (dict(activation="softplus"), "activation"),
    (dict(solver="lbfgs"), "solver"),
    (dict(batch_size=0), "batch_size"),
    (dict(learning_rate_init=0), "learning_rate_init"),
    (dict(max_iter=0), "max_iter"),
    (dict(image_shape=(3, 3)), "image_shape"),
    (dict(image_shape=(1, 2, 3, 4)), "image_shape"),
    (dict(padding="full"), "padding"),
    (dict(dtype="float16"), "dtype"),
]


@pytest.mark.parametrize("params, match", BAD_PARAMS)
def test_bad_hyperparameters_raise(digits, params, match):
    X, y = digits
    with pytest.raises(ValueError, match=match):
        ConvNetClassifier(**params).fit(X[:50], y[:50])


def test_bad_data_raises(digits):
    X, y = digits
    model = ConvNetClassifier(**SMALL)
    Xn = X[:50].copy()
    Xn[3, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit(Xn, y[:50])
    Xi = X[:50].copy()
    Xi[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        model.fit(Xi, y[:50])
    with pytest.raises(ValueError, match="0 sample"):
        model.fit(X[:0], y[:0])
    with pytest.raises(ValueError, match="one class"):
        model.fit(X[:50], np.zeros(50))
    with pytest.raises(ValueError):
        model.fit(X[:50], np.stack([y[:50], y[:50]], axis=1))
    with pytest.raises(ValueError, match="Unknown label type"):
        model.fit(X[:50], np.linspace(0, 1, 50))
    with pytest.raises(ValueError, match="image_shape .* holds 81 values .* 64 features"):
        ConvNetClassifier(image_shape=(9, 9)).fit(X[:50], y[:50])
    with pytest.raises(NotFittedError):
        model.predict(X[:5])
    fitted = _quiet_fit(model, X[:100], y[:100])
    with pytest.raises(ValueError, match="X has 63 features"):
        fitted.predict(X[:5, :63])
    with pytest.raises(ValueError, match="NaN"):
        fitted.predict(Xn)
    with pytest.raises(ValueError, match="sample_weight"):
        model.fit(X[:50], y[:50], sample_weight=-np.ones(50))
    with pytest.raises(ValueError, match="could not convert string"):
        model.fit(np.array([["a"] * 64] * 50), y[:50])


def test_readme_examples_run():
    """Every python block of the README runs as written."""
    from pathlib import Path

    readme = Path(__file__).resolve().parent.parent / "README.md"
    text = readme.read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    assert blocks, "the README has no python examples"
    for block in blocks:
        if 'if __name__ == "__main__":' in block:
            # A script that starts worker processes: run it as one, saved to
            # a file, as a user would.
            import subprocess
            import sys
            import tempfile

            with tempfile.TemporaryDirectory() as folder:
                script = Path(folder) / "example.py"
                script.write_text(block)
                proc = subprocess.run([sys.executable, str(script)], cwd=folder,
                                      capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, proc.stderr[-3000:]
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            exec(compile(block, "README.md", "exec"), {"__name__": "readme"})


def test_main_job_runs(capsys):
    from pyconvnet.__main__ import main

    assert main(["--epochs", "3", "--conv-layers", "4:3", "--hidden", "16",
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "conv 4@3x3" in out
    rows = [line.split() for line in out.splitlines()
            if line.startswith(("ConvNetClassifier", "MLPClassifier"))]
    assert [r[0] for r in rows] == ["ConvNetClassifier", "MLPClassifier"]
    assert all(0 <= float(r[1]) <= 1 for r in rows)
    with pytest.raises(SystemExit):
        main(["--conv-layers", "4x3"])


@pytest.mark.parametrize("option, text", [
    ("--conv-layers", ",,"), ("--conv-layers", ""), ("--conv-layers", ","),
    ("--conv-layers", "4:3,,pool"), ("--conv-layers", "4:3,"), ("--conv-layers", ",4:3"),
    ("--conv-layers", "4"), ("--conv-layers", "4:3:1:1"), ("--conv-layers", "4::3"),
    ("--conv-layers", "4:3,poll"), ("--conv-layers", " "), ("--hidden", "16,,8"),
    ("--hidden", "16,"), ("--hidden", "a"),
])
def test_malformed_entries_are_usage_errors(capsys, option, text):
    """Any empty or malformed entry is a usage error (exit status 2) naming
    the option, before anything trains."""
    from pyconvnet.__main__ import main

    with pytest.raises(SystemExit) as info:
        main([option, text, "--epochs", "1", "--quiet", "--no-mlp"])
    assert info.value.code == 2
    assert option in capsys.readouterr().err


def test_help_says_the_baseline_runs_more_epochs(capsys):
    from pyconvnet.__main__ import MLP_EPOCHS, main

    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"baseline runs up to {MLP_EPOCHS} times as many" in text


def test_main_job_regression(capsys):
    from pyconvnet.__main__ import main

    assert main(["--task", "regression", "--epochs", "2", "--conv-layers", "4:3,pool",
                 "--hidden", "16", "--quiet"]) == 0
    out = capsys.readouterr().out
    # the network reads 16x24 images, never 1x384 strips
    assert "digit-sums: 6000 training and 2000 test images of 16x24" in out
    assert "1x16x24" in out and "1x384" not in out
    rows = [line.split() for line in out.splitlines()
            if line.startswith(("ConvNetRegressor", "MLPRegressor"))]
    assert [r[0] for r in rows] == ["ConvNetRegressor", "MLPRegressor"]
    assert "test R²" in out and all(float(r[1]) <= 1 for r in rows)
    for argv in (["--task", "regression", "--dataset", "digits"],
                 ["--dataset", "digit-sums"],
                 ["--task", "regression", "--label-smoothing", "0.1"]):
        with pytest.raises(SystemExit):
            main(argv)
    assert "is not a" in capsys.readouterr().err


def test_digit_sums_are_sums_of_disjoint_scans():
    from sklearn.datasets import load_digits

    from pyconvnet.datasets import make_digit_sums

    data = make_digit_sums(n_train=300, n_test=100, random_state=3)
    assert data.images.shape == (300, 16, 24) and data.data.dtype == np.float32
    assert data.images_test.shape == (100, 16, 24)
    again = make_digit_sums(n_train=300, n_test=100, random_state=3, return_X_y=True)
    # images as the model reads them, not 1x384 strips; the rows' shape
    # travels with the Bunch
    assert again[0].shape == (300, 16, 24) and data.image_shape == (16, 24)
    np.testing.assert_array_equal(again[0].reshape(300, -1), data.data)
    np.testing.assert_array_equal(again[0], data.images)
    digits = load_digits()
    scans = {(digits.images[i] / 16).astype(np.float32).tobytes(): digits.target[i]
             for i in range(len(digits.target))}

    def read(images, targets):
        seen = set()
        for image, target in zip(images, targets):
            found = []
            for half in (image[:, :12], image[:, 12:]):
                rows, cols = np.nonzero(half)
                # the scan is the 8x8 window that holds all of the half's ink
                hits = [key for r in range(max(rows.max() - 7, 0), rows.min() + 1)
                        for c in range(max(cols.max() - 7, 0), cols.min() + 1)
                        if (key := half[r:r + 8, c:c + 8].tobytes()) in scans]
                assert hits
                found.append(hits[0])
            assert sum(scans[k] for k in found) == target
            seen.update(found)
        return seen

    assert not read(data.images, data.target) & read(data.images_test, data.target_test)
    assert 0 <= data.target.min() and data.target.max() <= 18
    with pytest.raises(ValueError, match="n_train"):
        make_digit_sums(n_train=0)


def test_progress_bar_for_long_epochs(digits, capsys):
    pytest.importorskip("tqdm")
    X, y = digits
    # 1,000 samples in batches of 5: 200 batches, a long epoch
    _quiet_fit(ConvNetClassifier(verbose=1, batch_size=5,
                                 **{**SMALL, "max_iter": 1}), X[:1000], y[:1000])
    err = capsys.readouterr().err
    assert "img/s" in err and "/1000" in err


def _translated(img, dy, dx):
    """img moved down by dy and right by dx pixels, zero fill (reference)."""
    out = np.zeros_like(img)
    h, w = img.shape[-2:]
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        img[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


@pytest.mark.parametrize("kind", ["shift", "flip", "shift+flip", "translate",
                                  "translate+flip"])
def test_augment_keeps_labels_shapes_and_is_reproducible(kind):
    from pyconvnet._augment import augment_batch

    rng = np.random.RandomState(0)
    x = rng.rand(200, 2, 6, 5).astype(np.float32)
    x.setflags(write=False)  # augmentation never writes into the data
    a = augment_batch(x, kind, np.random.RandomState(3))
    b = augment_batch(x, kind, np.random.RandomState(3))
    assert a.shape == x.shape and a.dtype == x.dtype
    np.testing.assert_array_equal(a, b)
    # every augmented image is the original, a one-pixel shift of it (zero
    # fill) and/or its mirror image
    candidates = []
    for img in x:
        views = [img]
        if "shift" in kind:
            up, down, left, right = (np.zeros_like(img) for _ in range(4))
            up[:, :-1], down[:, 1:] = img[:, 1:], img[:, :-1]
            left[:, :, :-1], right[:, :, 1:] = img[:, :, 1:], img[:, :, :-1]
            views += [up, down, left, right]
        if "translate" in kind:
            views = [_translated(img, dy, dx) for dy in range(-2, 3)
                     for dx in range(-2, 3)]
        if "flip" in kind:
            views += [v[..., ::-1] for v in views]
        candidates.append(views)
    for out, views in zip(a, candidates):
        assert any(np.array_equal(out, v) for v in views)
    changed = np.mean([not np.array_equal(o, i) for o, i in zip(a, x)])
    assert 0.3 < changed < 0.99
    if "translate" in kind:
        # all 25 offsets occur (each 1/25 of the time)
        seen = {next(i for i, v in enumerate(views[:25]) if np.array_equal(o, v)
                     or np.array_equal(o, v[..., ::-1]))
                for o, views in zip(a, candidates)}
        assert len(seen) == 25


def test_augment_kinds_are_every_combination_in_order():
    from pyconvnet._augment import AUGMENT_KINDS

    assert set(AUGMENT_KINDS) == {
        "shift", "translate", "flip", "erase", "shift+flip", "translate+flip",
        "shift+erase", "translate+erase", "flip+erase", "shift+flip+erase",
        "translate+flip+erase"}
    for bad in ("flip+shift", "shift+translate", "erase+erase", "rotate"):
        with pytest.raises(ValueError, match="augment"):
            ConvNetClassifier(augment=bad).check_params()


@pytest.mark.parametrize("kind", ["erase", "translate+flip+erase"])
def test_random_erasing_fills_one_rectangle_with_noise_in_half_the_samples(kind):
    from pyconvnet._augment import ERASE_AREA, augment_batch

    rng = np.random.RandomState(0)
    x = (2 + 3 * rng.rand(2000, 2, 12, 10)).astype(np.float32)   # values in [2, 5]
    x.setflags(write=False)
    before = augment_batch(x, kind.replace("erase", "").strip("+") or "flip",
                           np.random.RandomState(3)) if kind != "erase" else x
    a = augment_batch(x, kind, np.random.RandomState(3))
    np.testing.assert_array_equal(a, augment_batch(x, kind, np.random.RandomState(3)))
    assert a.shape == x.shape and a.dtype == x.dtype
    changed = a != before
    erased = changed.any(axis=(1, 2, 3))
    assert 0.45 < erased.mean() < 0.55
    low, high = before.min(), before.max()      # translations bring in zeros
    shares = []
    for out, was, mask in zip(a[erased], before[erased], changed[erased]):
        # one rectangle, the same in every channel, noise within the range
        rows, cols = np.flatnonzero(mask.any(axis=(0, 2))), np.flatnonzero(mask.any(axis=(0, 1)))
        box = np.zeros(mask.shape[1:], bool)
        box[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] = True
        assert not (mask.any(axis=0) & ~box).any()
        assert np.array_equal(out[:, ~box], was[:, ~box])
        assert out[:, box].min() >= low and out[:, box].max() <= high
        shares.append(box.mean())
    shares = np.array(shares)
    # the rectangle's share of the area, up to rounding and clipping
    assert shares.min() >= 1 / 120 and shares.max() <= 0.6
    assert ERASE_AREA[0] < np.median(shares) < ERASE_AREA[1]


def test_label_smoothing_keeps_probabilities_off_the_corners(digits):
    X, y = digits
    X, y = X[:300], y[:300]
    params = {**SMALL, "max_iter": 60, "tol": 0, "learning_rate_init": 0.01}
    sharp = _quiet_fit(ConvNetClassifier(**params), X, y)
    smooth = _quiet_fit(ConvNetClassifier(**params, label_smoothing=0.2), X, y)
    # Without smoothing training drives the right class's probability to 1;
    # with eps = 0.2 its target is 1 - eps + eps / 10 = 0.82.
    assert sharp.predict_proba(X).max(axis=1).mean() > 0.97
    top = smooth.predict_proba(X).max(axis=1)
    assert abs(np.median(top) - 0.82) < 0.05 and np.quantile(top, 0.9) < 0.9
    assert smooth.score(X, y) > 0.9
    # The loss is the smoothed one: its floor is the targets' entropy.
    q = np.full(10, 0.02)
    q[0] = 0.82
    assert smooth.loss_ > -np.sum(q * np.log(q)) - 1e-3
    # multi-label: each label's target is 0.1 or 0.9
    Y = np.stack([y % 2, y >= 5], axis=1)
    multi = _quiet_fit(ConvNetClassifier(**params, label_smoothing=0.2), X, Y)
    proba = multi.predict_proba(X)
    assert 0.75 < np.median(proba[Y == 1]) < 0.95 and 0.05 < np.median(proba[Y == 0]) < 0.25
    assert (multi.predict(X) == Y).mean() > 0.9
    for bad in (-0.1, 1.0, "0.1"):
        with pytest.raises((ValueError, TypeError), match="label_smoothing"):
            ConvNetClassifier(label_smoothing=bad).fit(X, y)


def test_cosine_schedule_in_fit_and_partial_fit(digits):
    """The step follows lr0 * (1 + cos(pi * epochs_done / max_iter)) / 2 per
    batch, for both solvers: each fit runs the whole schedule, partial_fit
    calls count as epochs of one."""
    from pyconvnet._optimizers import cosine_rate

    X, y = digits
    X, y = X[:256], y[:256]
    for solver in ("sgd", "adam"):
        params = {**SMALL, "solver": solver, "learning_rate": "cosine",
                  "learning_rate_init": 0.02, "max_iter": 4, "batch_size": 64,
                  "tol": 0, "n_iter_no_change": 100}
        model = _quiet_fit(ConvNetClassifier(**params), X, y)
        # the last of 16 batches ran at progress 15/16
        assert model._optimizer.base_rate == pytest.approx(cosine_rate(0.02, 15 / 16))
        assert model._optimizer.base_rate < 0.02 * 0.01
        constant = _quiet_fit(ConvNetClassifier(**{**params, "learning_rate": "constant"}),
                              X, y)
        assert not np.array_equal(constant.coefs_[0], model.coefs_[0])
        incremental = ConvNetClassifier(**params)
        for call in range(2):
            incremental.partial_fit(X, y, classes=np.unique(y))
        assert incremental._optimizer.base_rate == pytest.approx(cosine_rate(0.02, 1.75 / 4))
    assert cosine_rate(0.1, 0) == 0.1
    assert cosine_rate(0.1, 0.5) == pytest.approx(0.05)
    assert cosine_rate(0.1, 1) == cosine_rate(0.1, 7) == pytest.approx(0.0)


def test_augment_in_fit_is_seeded_and_grid_searchable(digits):
    X, y = digits
    params = {**SMALL, "augment": "shift"}
    one = _quiet_fit(ConvNetClassifier(**params), X[:300], y[:300])
    two = _quiet_fit(ConvNetClassifier(**params), X[:300], y[:300])
    plain = _quiet_fit(ConvNetClassifier(**SMALL), X[:300], y[:300])
    np.testing.assert_array_equal(one.coefs_[0], two.coefs_[0])
    assert not np.array_equal(one.coefs_[0], plain.coefs_[0])
    search = GridSearchCV(ConvNetClassifier(**SMALL),
                          {"augment": [None, "shift"]}, cv=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X[:300], y[:300])
    assert set(search.cv_results_["param_augment"]) == {None, "shift"}


def test_image_shape_that_disagrees_with_nd_X_raises(digits):
    X, y = digits
    images = X[:100].reshape(-1, 8, 8)
    with pytest.raises(ValueError, match="disagrees with the images"):
        ConvNetClassifier(image_shape=(4, 16), max_iter=1).fit(images, y[:100])
    with pytest.raises(ValueError, match="disagrees with the images"):
        ConvNetClassifier(image_shape=(2, 4, 8), max_iter=1).fit(
            images.reshape(-1, 1, 8, 8), y[:100])
    # agreeing shapes are fine, 2-D or 3-D
    for shape in ((8, 8), (1, 8, 8)):
        _quiet_fit(ConvNetClassifier(image_shape=shape, **SMALL),
                   images, y[:100]).predict(images)


def test_channels_last_images_warn():
    rng = np.random.default_rng(0)
    X = rng.random((6, 16, 16, 3))
    y = np.arange(6) % 2
    with pytest.warns(UserWarning, match="transpose"):
        _quiet_fit(ConvNetClassifier(**SMALL), X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        ConvNetClassifier(**SMALL).fit(X.transpose(0, 3, 1, 2), y)


def test_five_dimensional_X_raises():
    X = np.zeros((4, 1, 2, 8, 8))
    with pytest.raises(ValueError, match="got a 5-D array"):
        ConvNetClassifier().fit(X, [0, 1, 0, 1])


@pytest.mark.parametrize("params", [{}, {"conv_layers": ((20, 5, 2), (40, (3, 5))),
                                         "padding": "valid", "activation": "logistic",
                                         "dropout": 0.25}])
def test_architecture_summary_columns_line_up(digits, params):
    X, y = digits
    model = _quiet_fit(ConvNetClassifier(max_iter=1, **params), X[:60], y[:60])
    lines = model.architecture_summary().splitlines()
    shape_col = lines[0].index("output shape")
    assert all(len(line) == len(lines[0]) for line in lines)
    for line, row in zip(lines[1:], model.layers_):
        # each name ends before the shape column, with room to spare
        assert line[:shape_col].rstrip() == row["layer"]
        assert line[shape_col - 1] == " "


@pytest.mark.parametrize("argv", [
    ["--epochs", "0"], ["--threads", "0"], ["--threads", "100000"],
    ["--hidden", "0"], ["--batch-size", "0"], ["--learning-rate", "-1"],
    ["--learning-rate", "nan"], ["--dropout", "1.0"], ["--test-size", "2"],
    ["--test-size", "0"], ["--conv-layers", "0:5"], ["--conv-layers", "4x3"],
    ["--conv-layers", "4:3,Pool"], ["--conv-layers", "4:3,pool", "--pooling", "none"],
    ["--data-home", "no/such/folder", "--dataset", "fashion-mnist"],
])
def test_main_job_usage_errors_before_loading(argv, capsys, monkeypatch):
    import pyconvnet.__main__ as cli

    def no_load(*args):
        raise AssertionError("data loaded before the arguments were checked")

    monkeypatch.setattr(cli, "_load", no_load)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def test_explicit_data_home_never_falls_back(tmp_path):
    from pyconvnet.datasets import load_fashion_mnist

    with pytest.raises(FileNotFoundError, match="not a folder"):
        load_fashion_mnist(data_home=tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_fashion_mnist(data_home=tmp_path)  # an empty folder


# ----------------------------------------------------------------------
# Warm starts and partial_fit honour what changed
# ----------------------------------------------------------------------
@pytest.mark.parametrize("change", [
    {"batch_norm": True}, {"conv_layers": ((5, 3),)}, {"conv_layers": ((4, 5),)},
    {"hidden_layer_sizes": (17,)}, {"pooling": "l2"}, {"pooling": None},
    {"pool_size": 3}, {"padding": "valid"}, {"activation": "tanh"},
    {"dropout": 0.5}, {"dtype": "float64"}, {"image_shape": (2, 4, 8)},
])
@pytest.mark.parametrize("how", ["warm_start", "partial_fit", "save"])
def test_changed_architecture_is_refused_not_ignored(digits, tmp_path, change, how):
    import pyconvnet

    X, y = digits
    model = _quiet_fit(ConvNetClassifier(warm_start=True, **SMALL), X[:200], y[:200])
    before = model._network.flat_params.copy()
    model.set_params(**change)
    name = next(iter(change))
    with pytest.raises(ValueError, match=f"{how}.*{name}="):
        if how == "warm_start":
            _quiet_fit(model, X[:200], y[:200])
        elif how == "partial_fit":
            model.partial_fit(X[:200], y[:200])
        else:
            pyconvnet.save(model, tmp_path / "m.npz")
    np.testing.assert_array_equal(model._network.flat_params, before)


@pytest.mark.parametrize("same", [
    {"conv_layers": ((4, (3, 3), (1, 1)),)}, {"activation": "relu"},
    {"dtype": "float32"}, {"image_shape": (8, 8)}, {"hidden_layer_sizes": [16]},
    {"learning_rate_init": 0.02, "alpha": 0.1, "augment": "shift", "max_iter": 2},
])
def test_warm_start_accepts_what_does_not_change_the_network(digits, same):
    X, y = digits
    model = _quiet_fit(ConvNetClassifier(warm_start=True, **SMALL), X[:200], y[:200])
    _quiet_fit(model.set_params(**same), X[:200], y[:200])
    assert len(model.loss_curve_) == 5 + model.n_iter_


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_warm_start_takes_the_current_optimizer_hyperparameters(digits, solver):
    """As MLPClassifier: every fit builds its optimizer from the current
    hyperparameters; a vanishing step leaves the weights where they were."""
    X, y = digits
    model = _quiet_fit(ConvNetClassifier(warm_start=True, solver=solver,
                                         learning_rate="cosine", **SMALL),
                       X[:200], y[:200])
    before = model._network.flat_params.copy()
    _quiet_fit(model.set_params(learning_rate_init=1e-30), X[:200], y[:200])
    np.testing.assert_allclose(model._network.flat_params, before, atol=1e-20)
    # and a real step moves them again
    _quiet_fit(model.set_params(learning_rate_init=0.01), X[:200], y[:200])
    assert np.abs(model._network.flat_params - before).max() > 1e-3


def test_partial_fit_takes_changed_optimizer_hyperparameters(digits):
    X, y = digits
    model = ConvNetClassifier(**SMALL).partial_fit(X[:200], y[:200], classes=np.arange(10))
    before = model._network.flat_params.copy()
    model.set_params(learning_rate_init=1e-30).partial_fit(X[:200], y[:200])
    np.testing.assert_allclose(model._network.flat_params, before, atol=1e-20)
    model.set_params(solver="sgd", learning_rate_init=0.1).partial_fit(X[:200], y[:200])
    assert np.abs(model._network.flat_params - before).max() > 1e-3


def test_cosine_schedule_counts_zero_weight_batches(digits):
    """The schedule's position counts samples: after max_iter epochs it is
    at its end (step 0) even when whole batches had zero weight, so further
    partial_fit calls leave the weights alone."""
    X, y = digits
    X, y = X[:256], y[:256]
    weights = np.ones(len(y))
    weights[:64] = 0                          # the first batch, unshuffled
    model = ConvNetClassifier(**{**SMALL, "learning_rate": "cosine", "max_iter": 2,
                                 "batch_size": 64, "shuffle": False})
    for _ in range(2):
        model.partial_fit(X, y, classes=np.arange(10), sample_weight=weights)
    assert model._optimizer.epochs_done == 2
    before = model._network.flat_params.copy()
    model.partial_fit(X, y, sample_weight=weights)
    np.testing.assert_array_equal(model._network.flat_params, before)


# ----------------------------------------------------------------------
# Targets outside what the loss can take
# ----------------------------------------------------------------------
@pytest.mark.parametrize("values", [(-1, 1), (0, 2), (-1.0, 1.0), (1, 2)])
def test_multilabel_y_outside_zero_and_one_is_refused(digits, values):
    X, y = digits
    Y = np.stack([y % 2, y > 4, y == 0], axis=1)
    bad = np.where(Y, values[1], values[0])
    for call in (lambda m: m.fit(X[:100], bad[:100]),
                 lambda m: m.partial_fit(X[:100], bad[:100])):
        with pytest.raises(ValueError, match="0s and 1s"):
            call(ConvNetClassifier(**SMALL))
    ok = _quiet_fit(ConvNetClassifier(**SMALL), X[:100], Y[:100].astype(bool))
    assert ok.loss_ > 0


@pytest.mark.parametrize("classes", [[0, 1], [0, 1, 2, 3], [1, 2, 3], ["a", "b", "c"]])
def test_partial_fit_multilabel_checks_classes(digits, classes):
    X, y = digits
    Y = np.stack([y % 2, y > 4, y == 0], axis=1).astype(int)
    with pytest.raises(ValueError, match="classes"):
        ConvNetClassifier(**SMALL).partial_fit(X[:100], Y[:100], classes=classes)
    model = ConvNetClassifier(**SMALL).partial_fit(X[:100], Y[:100], classes=[2, 0, 1])
    assert list(model.classes_) == [0, 1, 2]


# ----------------------------------------------------------------------
# Batch norm and the memory limits
# ----------------------------------------------------------------------
@pytest.mark.parametrize("n_samples, batch_size", [(10, 1), (9, 4), (1, "auto")])
def test_batch_norm_with_one_value_per_map_is_refused(n_samples, batch_size):
    rng = np.random.RandomState(0)
    X = rng.rand(n_samples, 1, 2, 2).astype(np.float32)   # pooled to 1x1 maps
    y = np.arange(n_samples) % 2
    model = ConvNetClassifier(conv_layers=((4, 3), (4, 3)), batch_norm=True,
                              batch_size=batch_size, hidden_layer_sizes=(4,),
                              max_iter=1, random_state=0)
    with pytest.raises(ValueError, match="more than one value per feature map"):
        if n_samples == 1:
            model.partial_fit(X, y, classes=[0, 1])
        else:
            model.fit(X, y)
    # two samples per batch are enough
    _quiet_fit(model.set_params(batch_size=2), np.concatenate([X, X]),
               np.tile([0, 1], n_samples))


def test_public_batch_norm_op_refuses_one_value_per_channel():
    from pyconvnet import ops

    x = np.ones((1, 3, 1, 1), np.float32)
    with pytest.raises(ValueError, match="more than one value per channel"):
        ops.batch_norm(x, np.ones(3), np.zeros(3))
    y, _, _ = ops.batch_norm(np.ones((2, 3, 1, 1)), np.ones(3), np.zeros(3))
    assert y.shape == (2, 3, 1, 1)


def test_dense_layers_too_large_are_refused_before_allocating():
    X = np.random.RandomState(0).rand(10, 64).astype(np.float32)
    y = np.arange(10) % 2
    for hidden, match in [((2**26,), "dense layer 1.*exceed"),
                          ((8, 2**28), "dense layer 2.*exceed")]:
        with pytest.raises(ValueError, match=match):
            ConvNetClassifier(hidden_layer_sizes=hidden).fit(X, y)


def test_layers_and_batches_larger_than_memory_are_refused(monkeypatch):
    """Activations and parameters are checked against the machine's memory
    before anything is allocated (the machine is made small here)."""
    from pyconvnet import _geometry

    monkeypatch.setattr(_geometry, "physical_memory", lambda: 64 * 2**20)
    X = np.zeros((64, 1, 64, 64), np.float32)
    y = np.arange(64) % 2
    # 512 maps of 64x64, a batch of 64, output and gradient: 1 GiB
    with pytest.raises(ValueError, match=r"layer 1 \(conv\).*batch of 64.*GiB"):
        ConvNetClassifier(conv_layers=((512, 3),), hidden_layer_sizes=(4,)).fit(X, y)
    # three layers of 32 MiB each (two convolutions and the flatten): none
    # alone, but all together
    with pytest.raises(ValueError, match="the network's layers"):
        ConvNetClassifier(conv_layers=((16, 3), (16, 3)), pooling=None,
                          hidden_layer_sizes=(4,)).fit(X, y)
    # parameters: 4 * 2**24 float32 values, with gradients and moments 1 GiB
    with pytest.raises(ValueError, match="parameters"):
        ConvNetClassifier(conv_layers=(), hidden_layer_sizes=(4096,)).fit(X, y)
    # a model that fits trains, and predicts in batches small enough
    model = ConvNetClassifier(conv_layers=((32, 3),), hidden_layer_sizes=(4,),
                              batch_size=2, max_iter=1, random_state=0)
    _quiet_fit(model, X[:4], y[:4])
    assert model.predict_proba(X).shape == (64, 2)


def test_prediction_batches_shrink_for_large_images(monkeypatch):
    import pyconvnet._base as base

    X = np.random.RandomState(0).rand(40, 1, 16, 16).astype(np.float32)
    y = np.arange(40) % 2
    model = _quiet_fit(ConvNetClassifier(conv_layers=((8, 3),), hidden_layer_sizes=(4,),
                                         max_iter=1, random_state=0), X, y)
    expected = model.predict_proba(X)
    seen = []
    original = model._network.predict_output
    monkeypatch.setattr(model._network, "predict_output",
                        lambda x: (seen.append(len(x)), original(x))[1])
    # room for the largest layer (8 maps of 16x16) of 3 samples at a time
    monkeypatch.setattr(base, "PREDICT_BYTES", 3 * 8 * 16 * 16 * 4)
    np.testing.assert_allclose(model.predict_proba(X), expected, rtol=1e-5)
    assert max(seen) == 3 and sum(seen) == 40


# ----------------------------------------------------------------------
# The command line
# ----------------------------------------------------------------------
@pytest.mark.parametrize("argv, option", [
    (["--learning-rate", "inf"], "--learning-rate"),
    (["--alpha", "nan"], "--alpha"), (["--dropout", "inf"], "--dropout"),
    (["--threads", "0"], "--threads"), (["--pool-size", "0"], "--pool-size"),
    (["--conv-layers", "0:3"], "--conv-layers"), (["--hidden", "0"], "--hidden"),
    (["--schedule", "warp"], "--schedule"), (["--augment", "rotate"], "--augment"),
    (["--conv-layers", "4:3,pool", "--pooling", "none"], "--pooling none"),
    (["--label-smoothing", "1"], "--label-smoothing"),
])
def test_main_job_names_the_bad_option_before_loading(argv, option, capsys, monkeypatch):
    import pyconvnet.__main__ as cli

    monkeypatch.setattr(cli, "_load", lambda *a: pytest.fail("data loaded"))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert option in err and "Traceback" not in err
    assert "None" not in err.split("error:")[1]     # nothing that cannot be typed


def test_main_job_passes_every_new_option_to_the_estimator(monkeypatch):
    import pyconvnet.__main__ as cli

    seen = {}

    def fit(self, X, y):
        seen.update(self.get_params())
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.ConvNetClassifier, "fit", fit)
    argv = ["--augment", "translate+flip", "--batch-norm", "--solver", "sgd",
            "--conv-layers", "8:3,8:3:2,pool,16:3", "--label-smoothing", "0.1",
            "--schedule", "cosine", "--padding", "valid", "--pool-size", "3",
            "--alpha", "0.01", "--early-stopping", "--no-mlp", "--quiet"]
    with pytest.raises(KeyboardInterrupt):
        cli.main(argv)
    assert {k: seen[k] for k in ("augment", "batch_norm", "solver", "learning_rate",
                                 "padding", "pool_size", "alpha", "early_stopping",
                                 "conv_layers", "label_smoothing")} == {
        "label_smoothing": 0.1,
        "conv_layers": ((8, 3), (8, 3, 2), "pool", (16, 3)),
        "augment": "translate+flip", "batch_norm": True, "solver": "sgd",
        "learning_rate": "cosine", "padding": "valid", "pool_size": 3,
        "alpha": 0.01, "early_stopping": True}


def test_unbuilt_source_tree_says_what_to_do(tmp_path):
    """Run from a clone next to a non-editable install, Python imports the
    source folder, which has no compiled modules."""
    import shutil
    import subprocess
    import sys

    import pyconvnet

    source = tmp_path / "pyconvnet"
    # A clone: no compiled modules, nor the .pyx files the build generates.
    shutil.copytree(pyconvnet.__path__[0], source,
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__",
                                                  "*_generic.pyx", "*_avx2.pyx",
                                                  "*_avx512.pyx"))
    # Editable installs resolve submodules through a finder of their own;
    # drop it so that only the source folder is seen, as after `pip install .`.
    code = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path "
            "if 'editable' not in repr(f).lower()]; import pyconvnet")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "compiled modules are not built" in result.stderr
    assert "circular import" not in result.stderr.splitlines()[-1]


def test_switching_early_stopping_between_fits(digits):
    """A warm start or partial_fit after early_stopping was switched runs the
    other stopping rule from its start."""
    X, y = digits
    model = _quiet_fit(ConvNetClassifier(warm_start=True, **SMALL), X[:300], y[:300])
    _quiet_fit(model.set_params(early_stopping=True), X[:300], y[:300])
    assert len(model.validation_scores_) == model.n_iter_ and model.best_loss_ is None
    _quiet_fit(model.set_params(early_stopping=False), X[:300], y[:300])
    assert model.validation_scores_ is None and model.best_loss_ == min(model.loss_curve_[-5:])
    model.set_params(early_stopping=True)
    _quiet_fit(model, X[:300], y[:300])
    model.set_params(early_stopping=False).partial_fit(X[:300], y[:300])
    assert model.best_loss_ == model.loss_curve_[-1]
