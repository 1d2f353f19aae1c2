"""pyconvnet under joblib's backends (loky, threads, Dask) and Python threads."""
import warnings
from concurrent.futures import ThreadPoolExecutor

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

import pyconvnet
from pyconvnet import ConvNetClassifier
from pyconvnet._threads import effective_n_threads

PARAMS = dict(conv_layers=((4, 3),), hidden_layer_sizes=(16,), max_iter=4,
              learning_rate_init=0.01, random_state=0)
GRID = {"pooling": ["max", "l2"], "learning_rate_init": [0.003, 0.01]}


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X[:400] / 16).astype(np.float32), y[:400]


def _search(X, y, **kwargs):
    search = GridSearchCV(ConvNetClassifier(**PARAMS), GRID, cv=2, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
    return search


def _worker_threads():
    from threadpoolctl import threadpool_info

    from pyconvnet._threads import effective_n_threads as resolve

    blas = [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]
    return resolve(None), blas


def test_loky_workers_share_the_cores():
    # joblib's loky backend limits each of k workers to cores // k OpenMP
    # threads; n_threads=None follows that limit, so a search never puts more
    # threads than cores on the machine.
    n_cpus = joblib.cpu_count()
    results = joblib.Parallel(n_jobs=2, backend="loky")(
        joblib.delayed(_worker_threads)() for _ in range(2)
    )
    for omp_threads, _ in results:
        assert omp_threads * 2 <= max(n_cpus, 2)


def test_grid_search_with_processes_equals_sequential(digits):
    X, y = digits
    seq = _search(X, y, n_jobs=1)
    par = _search(X, y, n_jobs=2)
    np.testing.assert_array_equal(par.cv_results_["mean_test_score"],
                                  seq.cv_results_["mean_test_score"])


def test_predict_proba_from_four_threads(digits):
    X, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = ConvNetClassifier(**PARAMS).fit(X, y)
    expected = model.predict_proba(X)
    with ThreadPoolExecutor(max_workers=4) as pool:
        outputs = list(pool.map(lambda _: model.predict_proba(X), range(8)))
    for out in outputs:
        np.testing.assert_array_equal(out, expected)


def test_grid_search_on_a_dask_cluster_equals_sequential(digits):
    pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    X, y = digits
    seq = _search(X, y, n_jobs=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        # Dask's nanny gives each worker OMP_NUM_THREADS=1: n_threads=None
        # follows it, n_threads=2 is used as given (a serial build runs 1).
        workers = client.run(lambda: (effective_n_threads(None), effective_n_threads(2)))
        two = 2 if pyconvnet.openmp_enabled() else 1
        assert all(v == (1, two) for v in workers.values())
        with joblib.parallel_backend("dask"):
            on_dask = _search(X, y, n_jobs=-1)
            cv_dask = _cross_validate(X, y, n_jobs=-1)
            vote_dask = _voting(X, y, n_jobs=-1)
    for key in ("mean_test_score", "split0_test_score", "split1_test_score"):
        np.testing.assert_array_equal(on_dask.cv_results_[key], seq.cv_results_[key])
    assert on_dask.best_params_ == seq.best_params_
    np.testing.assert_array_equal(cv_dask, _cross_validate(X, y, n_jobs=1))
    np.testing.assert_array_equal(vote_dask, _voting(X, y, n_jobs=1))


def _cross_validate(X, y, n_jobs):
    from sklearn.model_selection import cross_validate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return cross_validate(ConvNetClassifier(**PARAMS), X, y, cv=3,
                              n_jobs=n_jobs)["test_score"]


def _voting(X, y, n_jobs):
    from sklearn.ensemble import VotingClassifier

    vote = VotingClassifier(
        [(f"net{s}", ConvNetClassifier(**{**PARAMS, "random_state": s}))
         for s in range(3)], voting="soft", n_jobs=n_jobs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        vote.fit(X, y)
    return vote.predict_proba(X)


def _drive(n_threads, seconds_per_image, steps):
    """Run a ThreadGovernor on a fake clock where a step at k threads takes
    seconds_per_image[k] per image (or seconds_per_image[k](i) for the i-th
    step at k threads); returns the thread count of each step."""
    from pyconvnet._threads import ThreadGovernor

    now = [0.0]
    current = []
    counts = {}
    governor = ThreadGovernor(current.append, n_threads, clock=lambda: now[0])
    used = []
    for _ in range(steps):
        governor.start()
        k = current[-1]
        used.append(k)
        cost = seconds_per_image[k]
        counts[k] = counts.get(k, 0) + 1
        now[0] += 10 * (cost(counts[k]) if callable(cost) else cost)
        governor.stop(10)
    return used


def test_thread_governor_keeps_the_faster_count():
    # quiet machine: more threads are faster, and are used almost always
    used = _drive(2, {2: 1.0, 1: 1.8}, 1000)
    assert used[0] == 2 and used.count(2) > 0.97 * len(used)
    # a busy machine: one thread fewer is faster, and wins after one probe
    used = _drive(2, {2: 3.0, 1: 1.8}, 1000)
    assert used[-1] == 1 and used[10:].count(1) > 0.97 * len(used[10:])
    # the probes come back, so a change of load is noticed
    assert used[10:].count(2) > 0
    # one thread: nothing to choose
    assert set(_drive(1, {1: 1.0}, 50)) == {1}


def test_thread_governor_counts_the_stalls_of_a_busy_machine():
    # Beside a busy process most steps at 2 threads run at quiet speed and
    # one in three waits at a barrier for a descheduled thread: the typical
    # step is faster at 2 threads, the throughput is higher at 1. The
    # governor must go by throughput.
    stalls = {2: lambda i: 0.6 if i % 3 else 6.0, 1: 1.0}
    used = _drive(2, stalls, 1000)
    assert used[10:].count(1) > 0.9 * len(used[10:])
    # and stalls that are rare enough leave 2 threads ahead
    rare = {2: lambda i: 0.6 if i % 50 else 6.0, 1: 1.0}
    used = _drive(2, rare, 1000)
    assert used[10:].count(2) > 0.9 * len(used[10:])


def test_thread_governor_carries_over_between_calls():
    """partial_fit in a loop: the second call resumes with the count the first
    one found faster, without probing again from scratch."""
    from pyconvnet._threads import ThreadGovernor

    now = [0.0]
    current = []
    governor = ThreadGovernor(current.append, 2, clock=lambda: now[0])
    cost = {2: 3.0, 1: 1.8}  # a busy machine: one thread is faster
    for _ in range(12):
        governor.start()
        now[0] += cost[current[-1]]
        governor.stop(1)
    assert current[-1] == 1
    resumed = []
    governor.resume(resumed.append)
    assert resumed == [1]
    for _ in range(10):
        governor.start()
        now[0] += cost[resumed[-1]]
        governor.stop(1)
    assert set(resumed) == {1}


def test_governor_is_not_pickled_and_partial_fit_reuses_it():
    import pickle

    from sklearn.datasets import load_digits

    from pyconvnet import ConvNetClassifier

    X, y = load_digits(return_X_y=True)
    model = ConvNetClassifier(conv_layers=((4, 3),), n_threads=2, random_state=0)
    model.partial_fit(X[:200], y[:200], classes=np.unique(y))
    governor = model._governor
    model.partial_fit(X[:200], y[:200])
    assert model._governor is governor
    assert "_governor" not in pickle.loads(pickle.dumps(model)).__dict__
