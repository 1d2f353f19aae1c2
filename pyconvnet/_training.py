"""The training loop, shared by every estimator (``BaseConvNet``) and so
by ``pyconvnet.dask``'s out-of-core training, which calls ``partial_fit``.

``fit_epochs`` runs epochs of mini-batches over the estimator's network:
shuffling, on-the-fly augmentation, the thread governor, the optimizer's
schedule position, rollback to the last finite weights on divergence, early
stopping on a held-out split (scored by the estimator's
``_validation_score``) or on the training loss, per-epoch output and
progress bars. It reads the estimator's hyperparameters and keeps the
training history on the estimator (``n_iter_``, ``t_``, ``loss_curve_``,
...), as scikit-learn's MLP estimators do; how a batch's rows are read
(``_images``, ``_rows``) is the estimator's.
"""
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from ._augment import augment_batch
from ._threads import ThreadGovernor


def fit_epochs(model, X, y, sample_weight, incremental, n_threads):
    """Train ``model``'s network on validated X (2-D rows), encoded targets
    and sample weights: ``max_iter`` epochs, or one for ``partial_fit``
    (``incremental``)."""
    rng = model._random_state
    early_stopping = model.early_stopping and not incremental
    if (model.validation_scores_ is not None) != early_stopping:
        # A warm start or partial_fit after early_stopping was switched:
        # the other rule starts afresh.
        model._start_stopping_rule(early_stopping)
    if early_stopping:
        X, X_val, y, y_val, sample_weight, sw_val = _validation_split(
            X, y, sample_weight, model.validation_fraction, rng,
            stratify=model._stratify_validation and y.ndim == 1)
        model._best_params = model._network.flat_params.copy()
    # As in scikit-learn >= 1.9, n_iter_ counts the epochs of this call;
    # t_ counts every sample seen since the first fit.
    model.n_iter_ = 0
    n_samples = X.shape[0]
    if model.batch_size != "auto" and model.batch_size > n_samples:
        warnings.warn(
            "Got `batch_size` less than 1 or larger than sample size. "
            "It is going to be clipped"
        )
    batch_size = model._batch_size(n_samples)

    network = model._network
    # The full batches and the last one, which is smaller unless batches
    # divide the samples evenly.
    for size in {batch_size, n_samples % batch_size or batch_size}:
        network.check_batch(size, training=True)
    params = network.flat_params
    optimizer = model._optimizer
    images = model._images(X)
    max_epochs = 1 if incremental else model.max_iter
    total_weight = float(sample_weight.sum())
    # A classifier's (an estimator without it trains on its targets as given).
    smoothing = float(getattr(model, "label_smoothing", 0.0))
    progress = _progress_factory(model.verbose, n_samples, batch_size)
    snapshot = params.copy()
    governor = model.__dict__.get("_governor")
    if governor is None or governor.n_threads != n_threads:
        governor = model._governor = ThreadGovernor(network.set_threads, n_threads)
    else:
        governor.resume(network.set_threads)
    epoch = 0
    try:
        for epoch in range(max_epochs):
            start = time.perf_counter()
            order = rng.permutation(n_samples) if model.shuffle else np.arange(n_samples)
            _check_weighted_batches(network, sample_weight[order] > 0, batch_size)
            epoch_loss = 0.0
            epoch_start = optimizer.epochs_done
            bar = progress()
            for lo in range(0, n_samples, batch_size):
                idx = order[lo:lo + batch_size]
                sw = sample_weight[idx]
                progress_before = optimizer.epochs_done
                # The schedule's position counts samples, not steps: a
                # batch skipped for zero weights is still part of the
                # epoch, and an epoch ends at a whole number exactly.
                optimizer.epochs_done = epoch_start + (lo + len(idx)) / n_samples
                if sw.sum() <= 0:
                    continue
                batch = model._rows(images, idx)
                if model.augment is not None:
                    batch = augment_batch(batch, model.augment, rng)
                governor.start()
                optimizer.set_progress(progress_before / model.max_iter)
                loss = network.train_step_grads(batch, y[idx], sw, model._l2_alpha,
                                                smoothing)
                if not np.isfinite(loss):
                    params[...] = snapshot
                    raise _diverged(f"the training loss became {loss}",
                                    model.n_iter_ + 1)
                optimizer.update(params, network.flat_grads,
                                 network.n_threads)
                governor.stop(len(idx))
                epoch_loss += loss * float(sw.sum())
                if bar is not None:
                    bar.update(len(idx))
            if bar is not None:
                bar.close()
            if not np.isfinite(params).all():
                params[...] = snapshot
                raise _diverged("the weights became non-finite", model.n_iter_ + 1)
            if not model._optimizer.state_is_finite():
                params[...] = snapshot
                raise _diverged("the gradients overflowed (the optimizer's "
                                "state became non-finite)", model.n_iter_ + 1)
            snapshot[...] = params
            model.n_iter_ += 1
            model.t_ += n_samples
            model.loss_ = epoch_loss / total_weight
            model.loss_curve_.append(model.loss_)
            model._optimizer.iteration_ends(model.t_)
            elapsed = time.perf_counter() - start
            if early_stopping:
                score = model._validation_score(X_val, y_val, sw_val)
                model.validation_scores_.append(score)
            if model.verbose:
                msg = f"Epoch {model.n_iter_}, loss = {model.loss_:.8f}"
                if early_stopping:
                    msg += f", validation score = {score:.4f}"
                msg += f", {elapsed:.2f} s, {n_samples / max(elapsed, 1e-9):,.0f} images/s"
                print(msg)
            _update_no_improvement_count(model, early_stopping)
            if model._no_improvement_count > model.n_iter_no_change:
                if early_stopping:
                    msg = (
                        "Validation score did not improve more than "
                        f"tol={model.tol:f} for {model.n_iter_no_change} "
                        "consecutive epochs."
                    )
                else:
                    msg = (
                        "Training loss did not improve more than "
                        f"tol={model.tol:f} for {model.n_iter_no_change} "
                        "consecutive epochs."
                    )
                if model._optimizer.trigger_stopping(msg, model.verbose):
                    break
                model._no_improvement_count = 0
            if incremental:
                break
            if epoch + 1 == model.max_iter:
                warnings.warn(
                    f"Stochastic Optimizer: Maximum iterations "
                    f"({model.max_iter}) reached and the optimization "
                    "hasn't converged yet.",
                    ConvergenceWarning,
                )
    except KeyboardInterrupt:
        # A half-applied update is still a valid (finite) model; restore
        # the last finished epoch only if something went wrong.
        if not np.isfinite(params).all():
            params[...] = snapshot
        if not hasattr(model, "loss_"):
            # Interrupted in the first epoch: no epoch's loss exists yet,
            # and a model that predicts must also save.
            model.loss_ = None
        warnings.warn(
            f"Training interrupted by the user after {model.n_iter_} "
            "epochs; the model keeps the weights it had reached.",
            UserWarning,
        )
    if early_stopping:
        params[...] = model._best_params
        del model._best_params


def _update_no_improvement_count(model, early_stopping):
    """The stopping rule after an epoch (MLPClassifier's): epochs without an
    improvement by ``tol`` of the validation score, or of the loss."""
    if early_stopping:
        score = model.validation_scores_[-1]
        if score < model.best_validation_score_ + model.tol:
            model._no_improvement_count += 1
        else:
            model._no_improvement_count = 0
        if score > model.best_validation_score_:
            model.best_validation_score_ = score
            model._best_params[...] = model._network.flat_params
    else:
        if model.loss_curve_[-1] > model.best_loss_ - model.tol:
            model._no_improvement_count += 1
        else:
            model._no_improvement_count = 0
        if model.loss_curve_[-1] < model.best_loss_:
            model.best_loss_ = model.loss_curve_[-1]


def _check_weighted_batches(network, weighted, batch_size):
    """Refuse, before an epoch starts, a batch of it that the layers cannot
    train on once its samples of zero weight are left out (batch norm
    averages only the others): ``weighted`` says which samples, in the
    epoch's order, have a positive weight. A batch with none is skipped."""
    if weighted.all():
        return          # every batch as large as the batch sizes checked
    starts = np.arange(0, weighted.shape[0], batch_size)
    counts = np.add.reduceat(weighted.astype(np.intp), starts)
    for count in np.unique(counts[counts > 0]):
        network.check_weighted_batch(int(count))


def _diverged(what, epoch):
    return ValueError(
        f"Training diverged in epoch {epoch}: {what}. The weights of the last "
        "finite epoch were kept. Try a smaller learning_rate_init."
    )




def _validation_split(X, y, sample_weight, fraction, rng, stratify=True):
    """Hold out a stratified ``fraction`` of the data, as MLPClassifier does:
    a class with a single member, or a split too small to hold every class,
    is a ValueError rather than a silently unstratified split. (A multi-label
    problem is split without stratification, as MLPClassifier does.)"""
    X, X_val, y, y_val, sample_weight, sw_val = train_test_split(
        X, y, sample_weight, random_state=rng, test_size=fraction,
        stratify=y if stratify else None)
    if X_val.shape[0] < 2:
        raise ValueError(
            "The validation set is too small. Increase 'validation_fraction' "
            "or the size of your dataset."
        )
    # Either part with no weight leaves nothing to learn from or to score.
    for part, weights in (("training", sample_weight), ("validation", sw_val)):
        if not weights.sum() > 0:
            raise ValueError(
                f"early_stopping: the sample weights of the {part} part of the "
                f"split ({weights.shape[0]} samples, validation_fraction="
                f"{fraction}) sum to zero; give those samples weight, or fit "
                "without early_stopping")
    return X, X_val, y, y_val, sample_weight, sw_val


def _progress_factory(verbose, n_samples, batch_size):
    """A function that opens a progress bar for an epoch, or returns None.

    Bars appear with ``verbose`` for epochs of at least 100 batches, when tqdm
    is installed (it is an optional dependency).
    """
    if not verbose or n_samples < 100 * batch_size:
        return lambda: None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return lambda: None
    return lambda: tqdm(total=n_samples, unit="img", leave=False)
