"""On-the-fly data augmentation for training batches.

Nielsen's expansion of the training data — each image also shifted by one
pixel up, down, left or right, with zero fill — applied per batch instead of
as a 5x larger copy: every sample of every batch is, with equal chance, left
as it is or shifted one pixel in one of the four directions. "translate" is
the pad-and-crop of modern small-CNN recipes: each image moved by a random
offset of up to TRANSLATE_PIXELS pixels along each axis independently (zero
fill), which suits clothing and digits alike. "flip" mirrors each sample
left-right with probability 1/2 (right for clothing, wrong for digits).
"erase" is random erasing (Zhong et al. 2017): with probability 1/2 a
rectangle of random size and shape is filled with noise, so the network
cannot lean on any one part of an object (an occluded sleeve, a hidden
collar). Kinds combine with "+", in the order shift or translate, flip,
erase — the order they are applied in. Only training batches are
augmented, so cross-validation and the early-stopping split see the data as
given.
"""
import itertools

import numpy as np

# Each kind is a "+"-joined choice of at most one part of each group, in
# this order (shift and translate are alternatives).
_GROUPS = (("shift", "translate"), ("flip",), ("erase",))
AUGMENT_KINDS = tuple(
    "+".join(part for part in choice if part)
    for choice in itertools.product(*[(None,) + group for group in _GROUPS])
    if any(choice))

# Largest translation of "translate", in pixels along each axis.
TRANSLATE_PIXELS = 2

# Random erasing's settings, those of Zhong et al. for Fashion-MNIST: the
# chance that a sample is erased, the rectangle's share of the image's area
# (uniform in [low, high]) and its aspect ratio (log-uniform in [r, 1 / r]).
ERASE_PROBABILITY = 0.5
ERASE_AREA = (0.02, 0.4)
ERASE_RATIO = 0.3


def translate_batch(images, rng, pixels=TRANSLATE_PIXELS):
    """Each image moved by (dy, dx), each uniform in [-pixels, pixels], with
    zero fill: a crop of the zero-padded batch at a random offset."""
    n, c, h, w = images.shape
    padded = np.zeros((n, c, h + 2 * pixels, w + 2 * pixels), images.dtype)
    padded[:, :, pixels:pixels + h, pixels:pixels + w] = images
    offsets = rng.randint(0, 2 * pixels + 1, size=(n, 2))
    rows = offsets[:, :1, None] + np.arange(h)[None, :, None]     # (n, h, 1)
    cols = offsets[:, 1:, None] + np.arange(w)[None, None, :]     # (n, 1, w)
    # Advanced indices first, so the result is (n, h, w, c).
    crop = padded.transpose(0, 2, 3, 1)[np.arange(n)[:, None, None], rows, cols]
    return np.ascontiguousarray(crop.transpose(0, 3, 1, 2))


def erase_batch(images, rng, probability=ERASE_PROBABILITY, area=ERASE_AREA,
                ratio=ERASE_RATIO):
    """``images`` with, in each sample chosen with ``probability``, one
    rectangle (all channels) replaced by noise uniform over the batch's own
    range of values, so that the noise looks like pixels whatever the
    data's scale; a new array.

    The rectangle covers a share of the image's area uniform in ``area``,
    its height / width ratio log-uniform in [ratio, 1 / ratio]; its sides
    are at least one pixel and at most the image's (where Zhong et al. draw
    again, the side is clipped), and it lies at a uniform position inside
    the image. Every draw is made for every sample, erased or not, so a
    batch always takes the same numbers from ``rng``."""
    n, c, h, w = images.shape
    erased = rng.rand(n) < probability
    share = rng.uniform(area[0], area[1], n)
    log_ratio = rng.uniform(np.log(ratio), -np.log(ratio), n)
    eh = np.clip(np.rint(np.sqrt(share * h * w * np.exp(log_ratio))), 1, h).astype(int)
    ew = np.clip(np.rint(np.sqrt(share * h * w / np.exp(log_ratio))), 1, w).astype(int)
    top = (rng.rand(n) * (h - eh + 1)).astype(int)
    left = (rng.rand(n) * (w - ew + 1)).astype(int)
    noise = rng.rand(n, c, h, w)
    rows = np.arange(h)[None, :, None]
    cols = np.arange(w)[None, None, :]
    mask = ((rows >= top[:, None, None]) & (rows < (top + eh)[:, None, None])
            & (cols >= left[:, None, None]) & (cols < (left + ew)[:, None, None])
            & erased[:, None, None])[:, None]
    low, high = (images.min(), images.max()) if images.size else (0, 0)
    noise = (low + (high - low) * noise).astype(images.dtype)
    return np.where(mask, noise, images)


def augment_batch(images, kind, rng):
    """A new, augmented copy of ``images`` (n, C, H, W); ``rng`` is a
    numpy RandomState, the estimator's only source of randomness; ``kind``
    one of AUGMENT_KINDS."""
    parts = kind.split("+")
    n = images.shape[0]
    out = images
    if "shift" in parts:
        out = np.zeros_like(images)
        choice = rng.randint(0, 5, size=n)
        # target region <- source region, one pair per direction
        moves = (
            ((slice(None), slice(None)), (slice(None), slice(None))),   # none
            ((slice(None, -1), slice(None)), (slice(1, None), slice(None))),  # up
            ((slice(1, None), slice(None)), (slice(None, -1), slice(None))),  # down
            ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),  # left
            ((slice(None), slice(1, None)), (slice(None), slice(None, -1))),  # right
        )
        for direction, (dst, src) in enumerate(moves):
            rows = np.flatnonzero(choice == direction)
            if rows.size:
                out[rows, :, dst[0], dst[1]] = images[rows][:, :, src[0], src[1]]
    if "translate" in parts:
        out = translate_batch(images, rng)
    if "flip" in parts:
        if out is images:
            out = images.copy()
        flip = np.flatnonzero(rng.rand(n) < 0.5)
        out[flip] = out[flip][..., ::-1]
    if "erase" in parts:
        out = erase_batch(out, rng)
    return out
