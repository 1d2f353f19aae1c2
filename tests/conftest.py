import os
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

import pyconvnet

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    # CI tests the installed wheel: importing the source tree instead would
    # hide a packaging mistake (a module missing from the wheel, say).
    if os.environ.get("PYCONVNET_REQUIRE_INSTALLED"):
        where = Path(pyconvnet.__file__).resolve()
        if REPO in where.parents:
            raise pytest.UsageError(
                f"pyconvnet was imported from the source tree ({where}), "
                "not from the installed package"
            )


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's 8x8 digits as float32 pixels in [0, 1], and labels."""
    X, y = load_digits(return_X_y=True)
    return (X / 16).astype(np.float32), y
