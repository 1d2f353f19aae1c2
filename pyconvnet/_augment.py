"""On-the-fly data augmentation for training batches.

Nielsen's expansion of the training data — each image also shifted by one
pixel up, down, left or right, with zero fill — applied per batch instead of
as a 5x larger copy: every sample of every batch is, with equal chance, left
as it is or shifted one pixel in one of the four directions. Optionally each
sample is also flipped left-right with probability 1/2 (right for clothing,
wrong for digits). Only training batches are augmented, so cross-validation
and the early-stopping split see the data as given.
"""
import numpy as np

AUGMENT_KINDS = ("shift", "flip", "shift+flip")


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
    if kind in ("flip", "shift+flip"):
        if out is images:
            out = images.copy()
        flip = np.flatnonzero(rng.rand(n) < 0.5)
        out[flip] = out[flip][..., ::-1]
    return out
