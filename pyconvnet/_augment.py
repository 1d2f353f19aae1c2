"""On-the-fly data augmentation for training batches.

Nielsen's expansion of the training data — each image also shifted by one
pixel up, down, left or right, with zero fill — applied per batch instead of
as a 5x larger copy: every sample of every batch is, with equal chance, left
as it is or shifted one pixel in one of the four directions. "translate" is
the pad-and-crop of modern small-CNN recipes: each image moved by a random
offset of up to TRANSLATE_PIXELS pixels along each axis independently (zero
fill), which suits clothing and digits alike. Optionally each sample is also
flipped left-right with probability 1/2 (right for clothing, wrong for
digits). Only training batches are augmented, so cross-validation and the
early-stopping split see the data as given.
"""
import numpy as np

AUGMENT_KINDS = ("shift", "flip", "shift+flip", "translate", "translate+flip")

# Largest translation of "translate", in pixels along each axis.
TRANSLATE_PIXELS = 2


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


def augment_batch(images, kind, rng):
    """A new, augmented copy of ``images`` (n, C, H, W); ``rng`` is a
    numpy RandomState, the estimator's only source of randomness."""
    n = images.shape[0]
    out = images
    if kind in ("shift", "shift+flip"):
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
    if kind in ("translate", "translate+flip"):
        out = translate_batch(images, rng)
    if kind in ("flip", "shift+flip", "translate+flip"):
        if out is images:
            out = images.copy()
        flip = np.flatnonzero(rng.rand(n) < 0.5)
        out[flip] = out[flip][..., ::-1]
    return out
