"""Pictures of a fitted ConvNetClassifier or ConvNetRegressor: its filters, the feature maps one
image produces, and its learning curves.

Each function returns a ``matplotlib.figure.Figure`` built without pyplot, so
it works headless (no display, no global figure state); show it in a
notebook by leaving it as the cell's value, or write it with
``fig.savefig("filters.png")``. Needs the ``plot`` extra:
``pip install "pyconvnet[plot]"``.
"""
import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._threads import blas_single_threaded, effective_n_threads

__all__ = ["plot_filters", "plot_feature_maps", "plot_learning_curves"]


def _figure(**kwargs):
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - exercised without the extra
        raise ImportError(
            "pyconvnet.plot needs matplotlib: pip install 'pyconvnet[plot]'"
        ) from exc
    return Figure(**kwargs)


def _grid(n, max_cols=8):
    cols = min(n, max_cols)
    return (n + cols - 1) // cols, cols


def _conv_layers(model):
    """The layers whose weights are filters: (n_filters, channels, kh, kw)."""
    return [layer for layer in model.network_.layers
            if layer.weight_layer and layer.weight.ndim == 4]


def plot_filters(model, layer=0, *, channel=None, max_filters=64):
    """Draw the filters of a convolutional layer as a grid of images.

    Parameters
    ----------
    model : fitted ConvNetClassifier or ConvNetRegressor
    layer : int, default=0
        Which convolutional layer (0 is the first; negative counts from the
        last).
    channel : int or None, default=None
        The input channel whose kernels to draw. None draws one-channel
        kernels as they are, three-channel kernels as RGB images, and for
        any other channel count the mean over the input channels.
    max_filters : int, default=64
        Draw at most this many filters (the first ones).

    Returns
    -------
    matplotlib.figure.Figure
        One axes per filter, titled with its index; a shared colour scale
        (grey: 0, red: positive, blue: negative) except for RGB kernels.
    """
    convs = _conv_layers(model)
    if not convs:
        raise ValueError("the model has no convolutional layer")
    if not isinstance(layer, (int, np.integer)) or isinstance(layer, bool):
        raise TypeError(f"layer must be an int, got {layer!r}")
    if not -len(convs) <= layer < len(convs):
        raise ValueError(f"layer must be in [{-len(convs)}, {len(convs) - 1}] "
                         f"(the model has {len(convs)} conv layers), got {layer}")
    if not isinstance(max_filters, (int, np.integer)) or max_filters < 1:
        raise ValueError(f"max_filters must be an int >= 1, got {max_filters!r}")
    weight = np.asarray(convs[layer].weight, dtype=np.float64)
    n_filters, n_channels = weight.shape[:2]
    rgb = False
    if channel is not None:
        if not isinstance(channel, (int, np.integer)) or not 0 <= channel < n_channels:
            raise ValueError(f"channel must be an int in [0, {n_channels - 1}], "
                             f"got {channel!r}")
        kernels, what = weight[:, channel], f"input channel {channel}"
    elif n_channels == 1:
        kernels, what = weight[:, 0], "one input channel"
    elif n_channels == 3:
        # Each filter scaled to [0, 1] on its own: colour shows which input
        # channel it weighs most.
        kernels, what, rgb = weight.transpose(0, 2, 3, 1), "RGB", True
    else:
        kernels, what = weight.mean(axis=1), f"mean over {n_channels} input channels"
    shown = min(n_filters, max_filters)
    rows, cols = _grid(shown)
    fig = _figure(figsize=(1.3 * cols, 1.3 * rows + 0.6), layout="constrained")
    fig.suptitle(f"conv layer {layer % len(convs)}: {shown} of {n_filters} "
                 f"{weight.shape[2]}x{weight.shape[3]} filters ({what})")
    limit = float(np.abs(kernels[:shown]).max()) or 1.0
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if i >= shown:
            continue
        if rgb:
            k = kernels[i]
            span = k.max() - k.min()
            ax.imshow((k - k.min()) / (span if span > 0 else 1.0), interpolation="nearest")
        else:
            ax.imshow(kernels[i], cmap="RdBu_r", vmin=-limit, vmax=limit,
                      interpolation="nearest")
        ax.set_title(str(i), fontsize=8)
    return fig


def plot_feature_maps(model, image, *, max_maps=8):
    """Draw the feature maps one image produces at each convolutional and
    pooling layer (after batch norm and the activation, as the next layer
    sees them).

    Parameters
    ----------
    model : fitted ConvNetClassifier or ConvNetRegressor
    image : array-like
        One sample: a row of ``n_features`` values, or an image of shape
        (height, width) or (channels, height, width).
    max_maps : int, default=8
        Draw at most this many maps per layer (the first ones).

    Returns
    -------
    matplotlib.figure.Figure
        The input in the first row, then one row per conv and pooling layer,
        each titled with the layer's description and output shape.
    """
    check_is_fitted(model)
    if not isinstance(max_maps, (int, np.integer)) or max_maps < 1:
        raise ValueError(f"max_maps must be an int >= 1, got {max_maps!r}")
    image = np.asarray(image)
    n_features = int(np.prod(model.image_shape_))
    # The shapes predict reads one sample as: a row of n_features values, or
    # the image itself. A (5, 5, 3) array for a (3, 5, 5) model has the right
    # size, but read as (3, 5, 5) it is a scrambled picture.
    shapes = [tuple(model.image_shape_)]
    if model.image_shape_[0] == 1:
        shapes.append(tuple(model.image_shape_[1:]))
    if image.shape not in shapes + [(n_features,), (1, n_features)]:
        raise ValueError(
            f"image must be one sample: a row of {n_features} values or an "
            "image of shape " + " or ".join(str(s) for s in shapes)
            + f"; got an array of shape {image.shape}")
    x = model.as_images(image.reshape(1, -1))
    rows = [("input", x[0])]
    network = model.network_
    network.set_threads(effective_n_threads(model.n_threads))
    for i, layer in enumerate(network.layers):
        if len(layer.out_shape) != 3:
            break               # past the feature maps (flatten, dense layers)
        with blas_single_threaded():
            x = layer.forward(x, training=False)
        nxt = network.layers[i + 1] if i + 1 < len(network.layers) else None
        # A convolution that batch norm folds into is shown after the norm
        # (and its activation), as the rest of the network sees it.
        if nxt is None or not layer.folds(nxt):
            rows.append((layer.describe(), x[0]))
    cols = min(max_maps, max(m.shape[0] for _, m in rows))
    fig = _figure(figsize=(1.4 * cols, 1.5 * len(rows) + 0.4), layout="constrained")
    fig.suptitle("feature maps of one image")
    axes = fig.subplots(len(rows), cols, squeeze=False)
    for r, (name, maps) in enumerate(rows):
        for c in range(cols):
            ax = axes[r, c]
            ax.set_axis_off()
            if c < min(max_maps, maps.shape[0]):
                ax.imshow(maps[c], cmap="gray" if r == 0 else "viridis",
                          interpolation="nearest")
        axes[r, 0].set_title(f"{name}: {'x'.join(str(s) for s in maps.shape)}",
                             fontsize=8, loc="left")
    return fig


def plot_learning_curves(model):
    """Draw the training loss per epoch and, with early stopping, the
    validation score on a second axis.

    Returns
    -------
    matplotlib.figure.Figure
        One axes: "epoch" against "training loss" (and a twin axes with
        "validation accuracy", or a regressor's "validation R²", when
        ``validation_scores_`` exist).
    """
    check_is_fitted(model)
    score_name = f"validation {model.score_name}"
    losses = list(model.loss_curve_)
    if not losses:
        raise ValueError("the model has no finished epoch to draw")
    fig = _figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    epochs = np.arange(1, len(losses) + 1)
    (line,) = ax.plot(epochs, losses, "o-", color="tab:blue", label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    handles = [line]
    scores = getattr(model, "validation_scores_", None)
    if scores:
        twin = ax.twinx()
        (vline,) = twin.plot(np.arange(1, len(scores) + 1), scores, "s-",
                             color="tab:orange", label=score_name)
        twin.set_ylabel(score_name)
        handles.append(vline)
    ax.legend(handles=handles, loc="center right")
    ax.set_title(f"learning curves ({len(losses)} epochs)")
    return fig
