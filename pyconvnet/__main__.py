"""python -m pyconvnet: a small demonstration of the ops on digits."""
import numpy as np
from sklearn.datasets import load_digits

from pyconvnet import ops, openmp_enabled


def main():
    digits = load_digits()
    x = digits.images[:, None].astype(np.float32) / 16.0
    weight = np.random.default_rng(0).standard_normal((8, 1, 3, 3)).astype(np.float32)
    y = ops.conv2d(x, weight, padding=1)
    p = ops.pool2d(np.maximum(y, 0), 2, kind="max")
    print(f"OpenMP: {openmp_enabled()}")
    print(f"digits {x.shape} -> conv 8@3x3 {y.shape} -> max-pool 2x2 {p.shape}")


if __name__ == "__main__":
    main()
